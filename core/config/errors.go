package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrPublishedAPIID marks a config that would use a published api_id (one
// whose api_hash is public, such as gotd's TestAppID or an official app's)
// against Telegram's production servers. Telegram limits these ids
// server-side and answers API_ID_PUBLISHED_FLOOD.
var ErrPublishedAPIID = errors.New("published api_id used against production")

// Problem is one thing wrong with a config, located as precisely as the
// decoder could.
type Problem struct {
	File string // config file name as given to Load/Parse
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Path string // key path such as "account.api_id" or "plugins[0].sha256"; may be empty
	Msg  string

	// Err is an optional cause callers can match with errors.Is, for
	// example ErrPublishedAPIID.
	Err error
}

// String formats the problem as file:line:col: path: msg.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is returned by Load, Parse and Validate when a config has problems.
// It lists every problem found, sorted by position.
type Error struct {
	Problems []Problem
}

// Error prints one line per problem.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the causes attached to problems, so that
// errors.Is(err, ErrPublishedAPIID) works on the whole error.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, p := range e.Problems {
		if p.Err != nil {
			errs = append(errs, p.Err)
		}
	}
	return errs
}

// sortProblems orders problems by position, keeping the order they were
// found in otherwise; problems without a line come first (they are about
// the file as a whole).
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// asError returns nil for no problems, else a sorted *Error.
func asError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	ps = append([]Problem(nil), ps...)
	sortProblems(ps)
	return &Error{Problems: ps}
}
