package pluginhost

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Spec is one configured plugin instance. The runner maps its config into
// it; Validate reports the first bad field by name.
type Spec struct {
	// Name is the instance name: unique, used in logs, audit, status and as
	// the KV namespace.
	Name string

	// Exactly one of Path (an external binary, pinned by SHA256) and Builtin
	// (a first-party plugin served by the runner binary itself as
	// `<runner> plugin NAME`, pinned by the runner's own sha256).
	Path    string
	SHA256  string // lowercase hex; required with Path
	Builtin string
	// Args are appended to the command line.
	Args []string

	// Config is the plugin's config section as JSON, handed to Configure.
	Config []byte
	// CommandPrefix is handed to Configure; default ".".
	CommandPrefix string

	Grants Grants
	// Filter narrows the events delivered, on top of what the plugin's info
	// subscribes to. Both are evaluated by the host.
	Filter Filter

	// EnvAllow names the environment variables copied from the runner's
	// environment into the plugin's. Nothing else is passed.
	EnvAllow []string
	// WorkDir is the plugin's own working directory (under the runner's
	// storage directory). It is created 0700.
	WorkDir string

	// StartTimeout bounds the process start and go-plugin handshake.
	StartTimeout time.Duration
	// EventDeadline is how long an event may stay unacked after it was sent
	// before the plugin counts as hung: it is killed and restarted, and the
	// event redelivered.
	EventDeadline time.Duration
	// ShutdownTimeout bounds a graceful stop (Shutdown message until the
	// plugin closes its stream).
	ShutdownTimeout time.Duration
	// HealthInterval is the period of the health ping.
	HealthInterval time.Duration

	Queue QueuePolicy
	// Window is the number of unacked events in flight to the plugin.
	Window int
	// MaxActionsInFlight caps the plugin's concurrent action calls; more are
	// answered THROTTLED.
	MaxActionsInFlight int

	Restart RestartPolicy

	// Disabled instances are not started until Enable.
	Disabled bool
}

// Grants are what the config allows a plugin to do, and where.
type Grants struct {
	// Actions are permission names: send, edit, delete, forward, react,
	// read_history, typing, history, resolve, download, upload, join, leave,
	// raw_invoke. kv_* and get_me need no grant.
	Actions []string
	// Chats the actions may target.
	Chats []ChatRef
}

// ChatKind is a class of chats usable in grants and filters.
type ChatKind string

// Chat kinds.
const (
	ChatPrivate ChatKind = "private"
	ChatGroup   ChatKind = "group" // basic groups and supergroups
	ChatChannel ChatKind = "channel"
	ChatSelf    ChatKind = "self"
	ChatAny     ChatKind = "*"
)

// ChatRef names chats: exactly one of Peer, Username and Kind is set.
type ChatRef struct {
	Peer     *pluginv1.Peer
	Username string // without the @, compared case-insensitively
	Kind     ChatKind
}

// String returns the text form accepted by ParseChatRef.
func (c ChatRef) String() string {
	switch {
	case c.Peer != nil:
		return PeerString(c.Peer)
	case c.Username != "":
		return "@" + c.Username
	}
	return string(c.Kind)
}

// ParseChatRef parses "user:123", "chat:45", "channel:678", "@username", a
// kind (private, group, channel, self, *), or a Bot API style numeric id
// ("123" a user, "-45" a basic group, "-100678" a channel).
func ParseChatRef(s string) (ChatRef, error) {
	switch k := ChatKind(s); k {
	case ChatPrivate, ChatGroup, ChatChannel, ChatSelf, ChatAny:
		return ChatRef{Kind: k}, nil
	}
	if name, ok := strings.CutPrefix(s, "@"); ok {
		if !usernameRe.MatchString(name) {
			return ChatRef{}, fmt.Errorf("chat %q: a username has 4-32 letters, digits or _", s)
		}
		return ChatRef{Username: name}, nil
	}
	if kind, id, ok := strings.Cut(s, ":"); ok {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= 0 {
			return ChatRef{}, fmt.Errorf("chat %q: the id after %q must be a positive number", s, kind+":")
		}
		switch kind {
		case "user":
			return ChatRef{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: n}}, nil
		case "chat":
			return ChatRef{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHAT, Id: n}}, nil
		case "channel":
			return ChatRef{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHANNEL, Id: n}}, nil
		}
		return ChatRef{}, fmt.Errorf("chat %q: unknown peer kind %q (want user, chat or channel)", s, kind)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return ChatRef{}, fmt.Errorf("chat %q: want user:ID, chat:ID, channel:ID, @username, a numeric id, or one of private, group, channel, self, *", s)
	}
	const channelBase = -1000000000000
	switch {
	case n > 0:
		return ChatRef{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: n}}, nil
	case n < channelBase:
		return ChatRef{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHANNEL, Id: channelBase - n}}, nil
	default:
		return ChatRef{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHAT, Id: -n}}, nil
	}
}

var usernameRe = regexp.MustCompile(`^[A-Za-z0-9_]{4,32}$`)

// PeerString formats a peer as "user:123", "chat:45" or "channel:678".
func PeerString(p *pluginv1.Peer) string {
	if p == nil {
		return ""
	}
	switch p.GetKind() {
	case pluginv1.PeerKind_PEER_KIND_USER:
		return "user:" + strconv.FormatInt(p.GetId(), 10)
	case pluginv1.PeerKind_PEER_KIND_CHAT:
		return "chat:" + strconv.FormatInt(p.GetId(), 10)
	case pluginv1.PeerKind_PEER_KIND_CHANNEL:
		return "channel:" + strconv.FormatInt(p.GetId(), 10)
	}
	return "unknown:" + strconv.FormatInt(p.GetId(), 10)
}

// Filter narrows the events a plugin receives. Empty fields match anything.
type Filter struct {
	Events    []pluginv1.EventKind
	ChatTypes []pluginv1.ChatType
	Chats     []ChatRef
	Direction pluginv1.Direction
	// TextPrefixes and Pattern only match message events (new and edited).
	TextPrefixes []string
	Pattern      *regexp.Regexp
}

// Overflow is what happens when a plugin's queue is full.
type Overflow string

// Overflow policies.
const (
	// OverflowBlock stops reading the plugin's feed until there is room; the
	// journal keeps the events.
	OverflowBlock Overflow = "block"
	// OverflowDropOldest acks the oldest queued event as dropped (counted
	// and logged) to make room.
	OverflowDropOldest Overflow = "drop_oldest"
	// OverflowQuarantine stops the plugin and quarantines it; its events
	// stay in the feed.
	OverflowQuarantine Overflow = "quarantine"
)

// QueuePolicy bounds a plugin's event queue (events read from its feed and
// not yet sent).
type QueuePolicy struct {
	Size     int
	Overflow Overflow
}

// RestartPolicy governs restarts after crashes and hangs: exponential
// backoff from BackoffMin to BackoffMax, each delay randomized by ±Jitter
// (a fraction); MaxCrashes within Window quarantines the plugin.
type RestartPolicy struct {
	BackoffMin time.Duration
	BackoffMax time.Duration
	Jitter     float64
	MaxCrashes int
	Window     time.Duration
}

// Defaults filled in by WithDefaults. DefaultWindow was chosen by
// measurement (docs/plugin-protocol.md).
const (
	DefaultStartTimeout       = 10 * time.Second
	DefaultEventDeadline      = 30 * time.Second
	DefaultShutdownTimeout    = 5 * time.Second
	DefaultHealthInterval     = 5 * time.Second
	DefaultQueueSize          = 256
	DefaultWindow             = 64
	DefaultMaxActionsInFlight = 64
	DefaultBackoffMin         = 500 * time.Millisecond
	DefaultBackoffMax         = time.Minute
	DefaultJitter             = 0.2
	DefaultMaxCrashes         = 5
	DefaultCrashWindow        = 10 * time.Minute
)

// WithDefaults returns s with zero fields set to their defaults.
func (s Spec) WithDefaults() Spec {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.StartTimeout, DefaultStartTimeout)
	def(&s.EventDeadline, DefaultEventDeadline)
	def(&s.ShutdownTimeout, DefaultShutdownTimeout)
	def(&s.HealthInterval, DefaultHealthInterval)
	def(&s.Restart.BackoffMin, DefaultBackoffMin)
	def(&s.Restart.BackoffMax, DefaultBackoffMax)
	def(&s.Restart.Window, DefaultCrashWindow)
	if s.Restart.Jitter == 0 {
		s.Restart.Jitter = DefaultJitter
	}
	if s.Restart.MaxCrashes == 0 {
		s.Restart.MaxCrashes = DefaultMaxCrashes
	}
	if s.Queue.Size == 0 {
		s.Queue.Size = DefaultQueueSize
	}
	if s.Queue.Overflow == "" {
		s.Queue.Overflow = OverflowBlock
	}
	if s.Window == 0 {
		s.Window = DefaultWindow
	}
	if s.MaxActionsInFlight == 0 {
		s.MaxActionsInFlight = DefaultMaxActionsInFlight
	}
	if s.CommandPrefix == "" {
		s.CommandPrefix = "."
	}
	return s
}

// knownActions are the permission names a grant may use.
var knownActions = map[string]bool{
	"send": true, "edit": true, "delete": true, "forward": true, "react": true,
	"read_history": true, "typing": true, "history": true, "resolve": true,
	"download": true, "upload": true, "join": true, "leave": true, "raw_invoke": true,
	// Granted in config for the guard's daily limits; no contract action
	// needs them yet.
	"invite": true, "import_contacts": true,
	// Runner control (status, pause, resume, plugin list): the admin plugin.
	"runner_control": true,
}

var instanceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Validate checks a spec after WithDefaults; the error names the field.
func (s Spec) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &SpecError{Plugin: s.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if !instanceNameRe.MatchString(s.Name) {
		return bad("name", "%q must be 1-64 lowercase letters, digits, _ . -, starting with a letter or digit", s.Name)
	}
	switch {
	case s.Path != "" && s.Builtin != "":
		return bad("path", "set either path or builtin, not both")
	case s.Path == "" && s.Builtin == "":
		return bad("path", "set path (an external plugin binary) or builtin")
	case s.Path != "":
		if !filepath.IsAbs(s.Path) {
			return bad("path", "%q must be absolute", s.Path)
		}
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 {
			return bad("sha256", "an external plugin needs its sha256 as 64 hex digits (runner plugins pin writes it)")
		}
	}
	if len(s.Config) > 0 && !json.Valid(s.Config) {
		return bad("config", "not valid JSON")
	}
	if s.WorkDir == "" || !filepath.IsAbs(s.WorkDir) {
		return bad("workdir", "%q must be an absolute directory", s.WorkDir)
	}
	for _, a := range s.Grants.Actions {
		if !knownActions[a] {
			return bad("permissions.actions", "unknown action %q", a)
		}
	}
	for _, c := range append(append([]ChatRef(nil), s.Grants.Chats...), s.Filter.Chats...) {
		if err := c.validate(); err != nil {
			return bad("chats", "%v", err)
		}
	}
	for _, name := range s.EnvAllow {
		if looksLikeRunnerSecret(name) {
			return bad("env", "%s looks like one of the runner's secrets; it is never passed to plugins", name)
		}
	}
	switch s.Queue.Overflow {
	case OverflowBlock, OverflowDropOldest, OverflowQuarantine:
	default:
		return bad("queue.overflow", "%q: want block, drop_oldest or quarantine", s.Queue.Overflow)
	}
	switch {
	case s.Queue.Size < 1:
		return bad("queue.size", "must be at least 1")
	case s.Window < 1:
		return bad("window", "must be at least 1")
	case s.Restart.BackoffMin <= 0 || s.Restart.BackoffMax < s.Restart.BackoffMin:
		return bad("restart.backoff", "need 0 < backoff_min <= backoff_max")
	case s.Restart.Jitter < 0 || s.Restart.Jitter >= 1:
		return bad("restart.jitter", "must be in [0, 1)")
	case s.Restart.MaxCrashes < 1:
		return bad("restart.max_crashes", "must be at least 1")
	case s.StartTimeout < 0 || s.EventDeadline < 0 || s.ShutdownTimeout < 0 || s.HealthInterval < 0:
		return bad("timeouts", "must not be negative")
	}
	return nil
}

func (c ChatRef) validate() error {
	n := 0
	if c.Peer != nil {
		n++
		if c.Peer.GetId() <= 0 || c.Peer.GetKind() == pluginv1.PeerKind_PEER_KIND_UNSPECIFIED {
			return fmt.Errorf("chat %s: bad peer", PeerString(c.Peer))
		}
	}
	if c.Username != "" {
		n++
	}
	if c.Kind != "" {
		n++
		switch c.Kind {
		case ChatPrivate, ChatGroup, ChatChannel, ChatSelf, ChatAny:
		default:
			return fmt.Errorf("chat kind %q: want private, group, channel, self or *", c.Kind)
		}
	}
	if n != 1 {
		return fmt.Errorf("chat ref %+v: set exactly one of peer, username, kind", c)
	}
	return nil
}

// runnerSecretMarkers are substrings of environment variable names that
// hold the runner's own secrets. They never reach a plugin, whatever the
// allow-list says.
var runnerSecretMarkers = []string{"API_HASH", "API_ID", "SESSION", "AUTH_KEY", "2FA", "PHONE", "TGRUNNER_"}

func looksLikeRunnerSecret(name string) bool {
	up := strings.ToUpper(name)
	for _, m := range runnerSecretMarkers {
		if strings.Contains(up, m) {
			return true
		}
	}
	return false
}

// SpecError is a bad field in a Spec.
type SpecError struct {
	Plugin, Field, Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("plugin %q: %s: %s", e.Plugin, e.Field, e.Reason)
}
