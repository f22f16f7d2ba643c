// Package spec owns the schema of YAML automations ("rules"): the types a
// rule is made of, their defaults, the checks that run when the config
// loads (templates, regular expressions, cron specs, chat references, rule
// calls), and what a set of rules needs from the runner (the event kinds it
// subscribes to and the actions and chats it must be granted).
//
// Both sides use it: core/config decodes the runner config's rules: into
// these types and reports problems at file:line; the rules plugin
// (plugins/rules) receives the same types as JSON and runs them.
package spec

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the rules plugin's config section.
type Config struct {
	Rules []Rule `json:"rules" yaml:"rules"`
}

// Rule is one automation: when a trigger fires and the conditions hold,
// the actions run.
type Rule struct {
	ID          string `json:"id" yaml:"id"`
	Alias       string `json:"alias,omitempty" yaml:"alias"`
	Description string `json:"description,omitempty" yaml:"description"`
	// Mode: single (default), queued, parallel or restart.
	Mode string `json:"mode,omitempty" yaml:"mode"`
	// Max bounds queued runs (queued) or concurrent runs (parallel).
	Max int `json:"max,omitempty" yaml:"max"`
	// CatchUp: skip (default) or run triggers missed while the runner was
	// down.
	CatchUp string `json:"catch_up,omitempty" yaml:"catch_up"`
	// TimeZone is the default zone of the rule's schedules, time
	// conditions and .Now; default the runner's local zone.
	TimeZone   string      `json:"time_zone,omitempty" yaml:"time_zone"`
	Disabled   bool        `json:"disabled,omitempty" yaml:"disabled"`
	Triggers   []Trigger   `json:"triggers,omitempty" yaml:"triggers"`
	Conditions []Condition `json:"conditions,omitempty" yaml:"conditions"`
	Actions    []Action    `json:"actions" yaml:"actions"`
}

// Modes.
const (
	ModeSingle   = "single"
	ModeQueued   = "queued"
	ModeParallel = "parallel"
	ModeRestart  = "restart"
)

// Modes lists the rule modes.
var Modes = []string{ModeSingle, ModeQueued, ModeParallel, ModeRestart}

// Catch-up policies.
const (
	CatchUpSkip = "skip"
	CatchUpRun  = "run"
)

// DefaultMax is the default bound of queued and parallel runs.
const DefaultMax = 10

// Trigger kinds.
const (
	TriggerMessage  = "message"
	TriggerEdited   = "edited"
	TriggerDeleted  = "deleted"
	TriggerCommand  = "command"
	TriggerRegex    = "regex"
	TriggerReaction = "reaction"
	TriggerMember   = "member"
	TriggerSchedule = "schedule"
	TriggerStarted  = "started"
)

// TriggerKeys lists, for each trigger kind, the keys it accepts.
var TriggerKeys = map[string][]string{
	TriggerMessage:  {"trigger", "id"},
	TriggerEdited:   {"trigger", "id"},
	TriggerDeleted:  {"trigger", "id"},
	TriggerCommand:  {"trigger", "id", "command"},
	TriggerRegex:    {"trigger", "id", "pattern", "edited"},
	TriggerReaction: {"trigger", "id", "emoji"},
	TriggerMember:   {"trigger", "id", "event"},
	TriggerSchedule: {"trigger", "id", "cron", "every", "at", "weekdays", "time_zone"},
	TriggerStarted:  {"trigger", "id"},
}

// Trigger starts a rule. Trigger names the kind; the other fields belong
// to the kinds listed in TriggerKeys.
type Trigger struct {
	Trigger string `json:"trigger" yaml:"trigger"`
	// ID names the trigger for templates (.Trigger.ID).
	ID string `json:"id,omitempty" yaml:"id"`
	// command: the command name without the prefix.
	Command string `json:"command,omitempty" yaml:"command"`
	// regex: the expression matched against new (and, with Edited, edited)
	// messages.
	Pattern string `json:"pattern,omitempty" yaml:"pattern"`
	Edited  bool   `json:"edited,omitempty" yaml:"edited"`
	// reaction: only this emoji (any when empty).
	Emoji string `json:"emoji,omitempty" yaml:"emoji"`
	// member: joined, left or any (default).
	Event string `json:"event,omitempty" yaml:"event"`
	// schedule: exactly one of Cron, Every and At.
	Cron     string   `json:"cron,omitempty" yaml:"cron"`
	Every    Duration `json:"every,omitempty" yaml:"every"`
	At       string   `json:"at,omitempty" yaml:"at"`
	Weekdays []string `json:"weekdays,omitempty" yaml:"weekdays"`
	TimeZone string   `json:"time_zone,omitempty" yaml:"time_zone"`
}

// Member events.
const (
	MemberJoined = "joined"
	MemberLeft   = "left"
	MemberAny    = "any"
)

// Condition kinds.
const (
	CondChat     = "chat"
	CondSender   = "sender"
	CondChatKind = "chat_kind"
	CondIncoming = "incoming"
	CondOutgoing = "outgoing"
	CondTime     = "time"
	CondText     = "text"
	CondContact  = "contact"
	CondCooldown = "cooldown"
	CondAnd      = "and"
	CondOr       = "or"
	CondNot      = "not"
)

// ConditionKeys lists, for each condition kind, the keys it accepts.
var ConditionKeys = map[string][]string{
	CondChat:     {"condition", "chats"},
	CondSender:   {"condition", "users"},
	CondChatKind: {"condition", "kinds"},
	CondIncoming: {"condition"},
	CondOutgoing: {"condition"},
	CondTime:     {"condition", "after", "before", "weekdays", "time_zone"},
	CondText:     {"condition", "contains", "equals", "starts_with", "ends_with", "regex", "case_sensitive"},
	CondContact:  {"condition"},
	CondCooldown: {"condition", "period", "per"},
	CondAnd:      {"condition", "conditions"},
	CondOr:       {"condition", "conditions"},
	CondNot:      {"condition", "conditions"},
}

// Condition must hold for a rule to run.
type Condition struct {
	Condition string `json:"condition" yaml:"condition"`
	// chat: the chats (ids, @usernames, or kinds private, group, channel,
	// self).
	Chats []Ref `json:"chats,omitempty" yaml:"chats"`
	// sender: user ids, @usernames, or self.
	Users []Ref `json:"users,omitempty" yaml:"users"`
	// chat_kind: private, group (basic and supergroups), channel, self.
	Kinds []string `json:"kinds,omitempty" yaml:"kinds"`
	// time: from After until Before (HH:MM, wrapping midnight when After is
	// later), on Weekdays.
	After    string   `json:"after,omitempty" yaml:"after"`
	Before   string   `json:"before,omitempty" yaml:"before"`
	Weekdays []string `json:"weekdays,omitempty" yaml:"weekdays"`
	TimeZone string   `json:"time_zone,omitempty" yaml:"time_zone"`
	// text: exactly one of these, case-insensitive unless CaseSensitive.
	Contains      string `json:"contains,omitempty" yaml:"contains"`
	Equals        string `json:"equals,omitempty" yaml:"equals"`
	StartsWith    string `json:"starts_with,omitempty" yaml:"starts_with"`
	EndsWith      string `json:"ends_with,omitempty" yaml:"ends_with"`
	Regex         string `json:"regex,omitempty" yaml:"regex"`
	CaseSensitive bool   `json:"case_sensitive,omitempty" yaml:"case_sensitive"`
	// cooldown: the rule runs at most once per Period, per Per (rule,
	// chat or sender).
	Period Duration `json:"period,omitempty" yaml:"period"`
	Per    string   `json:"per,omitempty" yaml:"per"`
	// and, or, not.
	Conditions []Condition `json:"conditions,omitempty" yaml:"conditions"`
}

// Cooldown scopes.
const (
	PerRule   = "rule"
	PerChat   = "chat"
	PerSender = "sender"
)

// Action kinds.
const (
	ActReply     = "reply"
	ActSend      = "send"
	ActNotify    = "notify"
	ActForward   = "forward"
	ActCopy      = "copy"
	ActEdit      = "edit"
	ActDelete    = "delete"
	ActDeleteOld = "delete_old"
	ActReact     = "react"
	ActMarkRead  = "mark_read"
	ActWait      = "wait"
	ActCall      = "call"
	ActStop      = "stop"
)

var sendKeys = []string{"action", "text", "parse_mode", "silent", "no_webpage"}

// ActionKeys lists, for each action kind, the keys it accepts.
var ActionKeys = map[string][]string{
	ActReply:     sendKeys,
	ActSend:      append([]string{"chat"}, sendKeys...),
	ActNotify:    sendKeys,
	ActForward:   {"action", "to", "silent"},
	ActCopy:      {"action", "to", "silent"},
	ActEdit:      {"action", "text", "parse_mode"},
	ActDelete:    {"action", "revoke"},
	ActDeleteOld: {"action", "chat", "older_than", "limit", "outgoing_only", "revoke"},
	ActReact:     {"action", "emoji"},
	ActMarkRead:  {"action"},
	ActWait:      {"action", "duration"},
	ActCall:      {"action", "rule"},
	ActStop:      {"action", "reason"},
}

// Action is one step of a rule.
type Action struct {
	Action string `json:"action" yaml:"action"`
	// reply, send, notify, edit: a template.
	Text      string `json:"text,omitempty" yaml:"text"`
	ParseMode string `json:"parse_mode,omitempty" yaml:"parse_mode"`
	Silent    bool   `json:"silent,omitempty" yaml:"silent"`
	NoWebpage bool   `json:"no_webpage,omitempty" yaml:"no_webpage"`
	// send, delete_old: the chat (id, @username or self).
	Chat Ref `json:"chat,omitempty" yaml:"chat"`
	// forward, copy: the target chat.
	To Ref `json:"to,omitempty" yaml:"to"`
	// delete, delete_old: delete for everyone (default true).
	Revoke *bool `json:"revoke,omitempty" yaml:"revoke"`
	// delete_old: messages older than this, at most Limit of them per
	// run, only the account's own unless OutgoingOnly is false.
	OlderThan    Duration `json:"older_than,omitempty" yaml:"older_than"`
	Limit        int      `json:"limit,omitempty" yaml:"limit"`
	OutgoingOnly *bool    `json:"outgoing_only,omitempty" yaml:"outgoing_only"`
	// react: the emoji ("" removes the reaction).
	Emoji string `json:"emoji,omitempty" yaml:"emoji"`
	// wait.
	Duration Duration `json:"duration,omitempty" yaml:"duration"`
	// call: the id of the rule to run.
	Rule string `json:"rule,omitempty" yaml:"rule"`
	// stop: why, for the log.
	Reason string `json:"reason,omitempty" yaml:"reason"`
}

// Parse modes.
const (
	ParseNone     = "none"
	ParseMarkdown = "markdown"
	ParseHTML     = "html"
)

// Duration is a time.Duration written as "90s", "5m", "24h" in YAML and
// JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("expected a duration such as \"90s\", \"5m\" or \"24h\", got %q", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML reads "90s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a duration such as \"90s\", got a %s", kindName(n))
	}
	if n.ShortTag() == "!!int" {
		return typeError(n, "expected a duration such as \"%ss\", got %s (add a unit: s, m or h)", n.Value, n.Value)
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return typeError(n, "%v", err)
	}
	*d = v
	return nil
}

// typeError is how an UnmarshalYAML reports a bad value so that yaml.v3
// carries on with the other fields and the line is known.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
}

// MarshalJSON writes "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "90s" (or nanoseconds, as encoding/json writes a
// plain time.Duration).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("expected a duration such as \"90s\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes "1m30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Ref names a chat or user: a numeric id (Bot API style for chats:
// -100... for channels and supergroups, negative for basic groups), an
// @username, or a word (self; for chats also private, group, channel).
type Ref string

// UnmarshalYAML takes numbers as well as strings.
func (r *Ref) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a chat id, @username or word, got a %s", kindName(n))
	}
	*r = Ref(strings.TrimSpace(n.Value))
	return nil
}

// UnmarshalJSON takes numbers as well as strings.
func (r *Ref) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*r = Ref(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("expected a chat id, @username or word")
	}
	*r = Ref(n.String())
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}
