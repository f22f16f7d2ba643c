package spec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// Data is what action templates see, as {{ .Message.Text }} and so on.
// It holds plain values only: templates cannot reach methods that do
// anything.
type Data struct {
	Rule    RuleData
	Trigger TriggerData
	Message MessageData
	Sender  UserData
	Chat    ChatData
	// Command and its arguments (command trigger).
	Command string
	Args    []string
	ArgText string
	// Match is the regex match and its numbered groups; Groups the named
	// ones (regex trigger).
	Match  []string
	Groups map[string]string
	// Now is when the run started, in the rule's time zone.
	Now time.Time
}

// RuleData describes the running rule.
type RuleData struct{ ID, Alias string }

// TriggerData describes what fired.
type TriggerData struct {
	// Kind is the trigger kind (message, command, schedule, ...); ID its id.
	Kind, ID string
	// ScheduledAt is the planned time of a schedule run.
	ScheduledAt time.Time
	// Missed is true for a run caught up after the runner was down.
	Missed bool
	// Emoji of a reaction; Member is joined or left.
	Emoji, Member string
}

// MessageData is the triggering message.
type MessageData struct {
	ID       int64
	Text     string
	Date     time.Time
	Outgoing bool
	ReplyTo  int64
}

// UserData is the sender (or the actor of a reaction or member event).
type UserData struct {
	ID                            int64
	FirstName, LastName, Username string
	// Name is the full name; Mention is @username, or the name.
	Name, Mention            string
	IsContact, IsBot, IsSelf bool
}

// ChatData is the chat of the trigger.
type ChatData struct {
	// ID is Bot API style: users positive, basic groups negative, channels
	// -100...
	ID              int64
	Title, Username string
	// Kind is private, group, supergroup, channel or self.
	Kind string
}

// MaxTemplateOutput bounds what one template execution may write; longer
// output is an error (a runaway range), not a truncation.
const MaxTemplateOutput = 64 << 10

// MaxMessageRunes is Telegram's limit of a message's text; longer texts
// are truncated with "…".
const MaxMessageRunes = 4096

// Template is a compiled action text.
type Template struct {
	src  string
	tmpl *template.Template
	// static is set when the text has no actions: no execution needed.
	static bool
}

// Funcs is the template function set: pure string and time helpers, no
// file, environment or network access.
var Funcs = template.FuncMap{
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"trim":     strings.TrimSpace,
	"truncate": truncate,
	"default":  dflt,
	"join":     join,
	"replace":  func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"contains": func(sub, s string) bool { return strings.Contains(s, sub) },
	"nth":      nth,
	"date":     func(layout string, t time.Time) string { return t.Format(layout) },
	"in":       in,
	"unix":     func(t time.Time) int64 { return t.Unix() },
}

func truncate(n int, s string) string {
	if n < 1 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// dflt is {{ .X | default "none" }}: def when v is empty.
func dflt(def string, v any) any {
	switch x := v.(type) {
	case nil:
		return def
	case string:
		if x == "" {
			return def
		}
	case int64:
		if x == 0 {
			return def
		}
	case int:
		if x == 0 {
			return def
		}
	case []string:
		if len(x) == 0 {
			return def
		}
	}
	return v
}

func join(sep string, list []string) string { return strings.Join(list, sep) }

// nth is the i-th item of a list, or "" when there is none (index fails
// instead).
func nth(i int, list []string) string {
	if i < 0 || i >= len(list) {
		return ""
	}
	return list[i]
}

func in(zone string, t time.Time) (time.Time, error) {
	loc, err := LoadLocation(zone)
	if err != nil {
		return t, err
	}
	return t.In(loc), nil
}

// LoadLocation is time.LoadLocation with "" meaning the local zone.
func LoadLocation(zone string) (*time.Location, error) {
	if zone == "" || zone == "Local" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name such as Europe/Berlin, or UTC", zone)
	}
	return loc, nil
}

// sampleData fills every field so that a dry run reaches every field a
// template names.
func sampleData() *Data {
	now := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	return &Data{
		Rule:    RuleData{ID: "rule", Alias: "Rule"},
		Trigger: TriggerData{Kind: TriggerMessage, ID: "t", ScheduledAt: now, Emoji: "👍", Member: MemberJoined},
		Message: MessageData{ID: 1, Text: "text", Date: now, ReplyTo: 0},
		Sender:  UserData{ID: 1, FirstName: "A", Username: "a", Name: "A", Mention: "@a"},
		Chat:    ChatData{ID: 1, Title: "Chat", Kind: "private"},
		Command: "cmd", Args: []string{"a"}, ArgText: "a",
		Match: []string{"m", "g"}, Groups: map[string]string{"g": "g"},
		Now: now,
	}
}

// ParseTemplate compiles an action text and checks it against Data: an
// unknown field or function is an error here, at config load, not when
// the rule first runs.
func ParseTemplate(name, src string) (*Template, error) {
	if !strings.Contains(src, "{{") {
		return &Template{src: src, static: true}, nil
	}
	t, err := template.New(name).Funcs(Funcs).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, cleanTemplateError(name, err)
	}
	tp := &Template{src: src, tmpl: t}
	if _, err := tp.execute(sampleData()); err != nil {
		var ee template.ExecError
		// Only what a dry run can know: fields that do not exist and
		// wrong argument types. Index errors depend on the real data.
		if errors.As(err, &ee) && (strings.Contains(err.Error(), "can't evaluate field") ||
			strings.Contains(err.Error(), "wrong type for value") || strings.Contains(err.Error(), "wrong number of args")) {
			return nil, cleanTemplateError(name, err)
		}
	}
	return tp, nil
}

// cleanTemplateError drops the template name text/template prefixes, since
// the problem's path already says where.
func cleanTemplateError(name string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	msg = strings.TrimPrefix(msg, name+":")
	msg = strings.Replace(msg, fmt.Sprintf("executing %q ", name), "", 1)
	return fmt.Errorf("template: %s", strings.TrimSpace(msg))
}

// Source is the template text as written.
func (t *Template) Source() string { return t.src }

// Execute renders the template; texts longer than Telegram allows are
// truncated.
func (t *Template) Execute(d *Data) (string, error) {
	s, err := t.execute(d)
	if err != nil {
		return "", err
	}
	if utf8.RuneCountInString(s) > MaxMessageRunes {
		s = truncate(MaxMessageRunes, s)
	}
	return s, nil
}

func (t *Template) execute(d *Data) (string, error) {
	if t.static {
		return t.src, nil
	}
	w := &limitWriter{max: MaxTemplateOutput}
	if err := t.tmpl.Execute(w, d); err != nil {
		if errors.Is(err, errTooLong) {
			return "", fmt.Errorf("template output exceeds %d bytes", MaxTemplateOutput)
		}
		return "", err
	}
	return w.buf.String(), nil
}

var errTooLong = errors.New("template output too long")

type limitWriter struct {
	buf bytes.Buffer
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, errTooLong
	}
	return w.buf.Write(p)
}
