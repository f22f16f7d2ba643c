package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/store"
)

func newAuditCmd() *cobra.Command {
	var (
		plugin, source, label, chat string
		outcome                     string
		since, until                string
		asJSON                      bool
		limit                       int
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show what the runner did on the account's behalf",
		Long: `audit prints the guard's audit log: every action a plugin, a rule, the
owner or the runner itself asked for, with its outcome (ok, error,
throttled, denied, dry_run, queued), the chat, and the time it waited or
the reason it was held back. Message texts are never recorded.

A plugin may label its actions: the rules plugin labels each with the id
of the rule that made it, shown after the source as "plugin:rules (greet)"
and selected with --label greet.

While the runner runs, the log is read through its control socket;
otherwise from the storage directory.

--since and --until take a date (2024-05-01), a time (2024-05-01T08:00:00Z)
or a duration back from now (24h, 90m).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if outcome != "" && !slices.Contains(guard.Outcomes, outcome) {
				return fmt.Errorf("--outcome %q: want one of %s", outcome, strings.Join(guard.Outcomes, ", "))
			}
			now := time.Now()
			f := guard.AuditFilter{Plugin: plugin, Source: source, Label: label, Chat: chat, Outcome: outcome, Limit: limit}
			var err error
			if f.Since, err = parseWhen(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if f.Until, err = parseWhen(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			recs, live, err := auditThroughRunner(cmd, f)
			if live {
				if err != nil {
					return err
				}
				return printAudit(cmd, recs, asJSON)
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			dir, err := accountStorageDir(cmd, cfg)
			if err != nil {
				return err
			}
			// store.Open would create an empty storage; a typo should not.
			if _, err := os.Stat(filepath.Join(dir, store.DBFileName)); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no storage in %s (storage.dir): the runner has not run with this config yet, so nothing was audited", dir)
			}
			st, err := store.Open(cmd.Context(), dir, store.Options{LockTimeout: 300 * time.Millisecond})
			if err != nil {
				var locked *store.LockedError
				if errors.As(err, &locked) {
					return fmt.Errorf("%w: the running runner holds the storage and its control socket did not answer (is ops.socket set differently?); stop it to read the audit log from the storage", err)
				}
				return fmt.Errorf("open storage: %w", err)
			}
			defer st.Close()
			recs, err = guard.ReadAudit(cmd.Context(), st, f)
			if err != nil {
				return err
			}
			return printAudit(cmd, recs, asJSON)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&plugin, "plugin", "", "only actions of this plugin (or rule) name")
	fl.StringVar(&source, "source", "", `only this exact source: "owner", "runner", "plugin:NAME", "rule:NAME"`)
	fl.StringVar(&label, "label", "", `only actions the plugin labelled so, e.g. a rule's id ("greet")`)
	fl.StringVar(&chat, "chat", "", `only this chat, e.g. "user:42", "channel:7"`)
	fl.StringVar(&since, "since", "", "from this time (date, RFC 3339 time, or a duration back from now such as 24h)")
	fl.StringVar(&until, "until", "", "before this time (same forms as --since)")
	fl.StringVar(&outcome, "outcome", "", "only this outcome: "+strings.Join(guard.Outcomes, ", "))
	fl.BoolVar(&asJSON, "json", false, "one JSON record per line")
	fl.IntVar(&limit, "limit", 100, "show the most recent N matching records (0: all)")
	addSocketFlag(cmd)
	return cmd
}

// parseWhen reads a date, an RFC 3339 time or a duration back from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: give a positive duration back from now, such as 24h", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want a date (2024-05-01), a time (2024-05-01T08:00:00Z) or a duration back from now (24h)", s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func waitString(r guard.AuditRecord) string {
	if r.Wait <= 0 {
		return "-"
	}
	return r.Wait.Round(time.Millisecond).String()
}

func detail(r guard.AuditRecord) string {
	var parts []string
	if r.Code != "" {
		c := r.Code
		if r.RPCError != "" && r.RPCError != r.Code {
			c += " (" + r.RPCError + ")"
		}
		parts = append(parts, c)
	}
	if r.RetryAfter > 0 {
		parts = append(parts, fmt.Sprintf("retry after %ds", r.RetryAfter))
	}
	if r.MessageID != 0 {
		parts = append(parts, fmt.Sprintf("message %d", r.MessageID))
	}
	if r.Reason != "" && r.Outcome != guard.OutcomeOK {
		parts = append(parts, r.Reason)
	}
	if r.Duration > 0 {
		parts = append(parts, "took "+r.Duration.Round(time.Millisecond).String())
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// sourceString is the record's source with its label, if any:
// "plugin:rules (greet)".
func sourceString(r guard.AuditRecord) string {
	if r.Label == "" {
		return r.Source
	}
	return r.Source + " (" + r.Label + ")"
}

// printAudit prints audit records as a table or JSON lines.
func printAudit(cmd *cobra.Command, recs []guard.AuditRecord, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	if len(recs) == 0 {
		fmt.Fprintln(out, "No audit records match.")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSOURCE\tACTION\tCHAT\tOUTCOME\tWAIT\tDETAIL")
	for _, r := range recs {
		what := r.Kind
		if r.Method != "" {
			what += " " + r.Method
		}
		source := sourceString(r)
		if r.Account != "" {
			source = r.Account + "/" + source
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05"),
			source, what, dash(r.Chat), r.Outcome, waitString(r), detail(r))
	}
	return tw.Flush()
}
