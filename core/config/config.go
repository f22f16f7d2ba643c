package config

import (
	"crypto/rsa"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
)

// DefaultFileName is the config looked for in the working directory when
// neither --config nor $TGRUNNER_CONFIG is given.
const DefaultFileName = "tgrunner.yaml"

// EnvConfigPath names the environment variable that points at the config.
const EnvConfigPath = "TGRUNNER_CONFIG"

// CurrentVersion is the only schema version this runner reads.
const CurrentVersion = 1

// Config is a decoded, provisioned and validated tgrunner configuration.
type Config struct {
	// File is the name the config was loaded from (as given to Load or Parse).
	File string
	// Version is the schema version (the top-level "version" key).
	Version int

	// Account is the single account of account:. With accounts: it is
	// empty; ForAccount gives each account's own config.
	Account Account
	// Accounts is accounts: (several accounts in one runner).
	Accounts []AccountEntry
	Server   Server
	Storage  Storage
	Log      Log
	Limits   Limits
	Plugins  []Plugin
	Ops      Ops

	// Rules are the YAML automations of rules: and of the rules_files: the
	// config includes (RulesFiles, as named in problems), in that order.
	// RulesPlugin turns them into the plugin that runs them.
	Rules      []spec.Rule
	RulesFiles []string
	rulesSrc   []ruleSource

	// Warnings are things worth telling the user that do not stop the runner,
	// such as allow_literal_secrets being on.
	Warnings []Problem

	// pos maps key paths to where they were written, so that Validate can
	// point at the line it complains about.
	pos map[string]position
}

type position struct{ Line, Col int }

// Account is the Telegram account and application credentials.
type Account struct {
	// APIID and APIHash identify the application; every app needs its own
	// from my.telegram.org.
	APIID   int
	APIHash Secret
	// Phone is optional: runner login asks for it when it is not set.
	Phone Secret
	// Password is the 2FA (cloud) password, optional.
	Password Secret

	AllowPublishedAPIID bool
	AllowLiteralSecrets bool

	Device Device
}

// Device is what the account's session list shows for this runner. Empty
// fields keep gotd's defaults.
type Device struct {
	Model          string
	SystemVersion  string
	AppVersion     string
	LangCode       string
	SystemLangCode string
}

// ServerType selects which MTProto servers the runner talks to.
type ServerType string

// Server types.
const (
	ServerProduction ServerType = "production"
	ServerTest       ServerType = "test"
	ServerSandbox    ServerType = "sandbox"
	ServerCustom     ServerType = "custom"
)

var serverTypes = []string{string(ServerProduction), string(ServerTest), string(ServerSandbox), string(ServerCustom)}

// Server is where the runner connects.
type Server struct {
	Type ServerType

	// DC is the data center to start with: custom (required) and test
	// (optional, default 2).
	DC int
	// Address is host:port of a custom server.
	Address string
	// PublicKeyFile is the custom server's RSA public key (PEM); PublicKeys
	// holds the parsed keys.
	PublicKeyFile string
	PublicKeys    []*rsa.PublicKey
	// Obfuscated selects the obfuscated transport (custom only).
	Obfuscated bool

	// SeedFile optionally seeds the embedded sandbox (sandbox only).
	SeedFile string
}

// Storage is where the runner keeps its state.
type Storage struct {
	// Dir holds the bbolt database (session, peers, update state, journal)
	// and per-plugin working directories. Absolute after loading.
	Dir string
	// URL, when set (redis://, rediss:// or unix://), keeps everything
	// durable in Redis instead, and every account runs under a lease there.
	// A secret: it may carry a password.
	URL Secret
	// LeaseTTL is how long an account's lease lives without renewal: a dead
	// runner's accounts move to another within it (plus a margin).
	LeaseTTL time.Duration
}

// Log level names.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Log format names.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Phone-number redaction modes.
const (
	RedactPhonesPlus   = "plus"   // mask "+" followed by 7-15 digits
	RedactPhonesDigits = "digits" // also mask bare runs of MinDigits..15 digits
	RedactPhonesOff    = "off"
)

// Log configures the runner's logger.
type Log struct {
	Level  string // debug | info | warn | error
	Format string // text | json
	File   string // empty: stderr; absolute after loading
	Redact Redact
}

// Redact controls masking beyond the registered secrets, which are always
// masked.
type Redact struct {
	PhoneNumbers string // plus | digits | off
	MinDigits    int    // for digits mode
}

// RateLimit is a token bucket: Rate refills, Burst is its size.
type RateLimit struct {
	Rate  Rate
	Burst int
}

// Limits is the guard's policy. Defaults are safe for a normal account.
type Limits struct {
	DryRun bool

	Send          SendLimits
	FirstContacts FirstContacts
	DuplicateText DuplicateText
	Daily         DailyLimits
	QuietHours    *QuietHours // nil: no quiet hours
	FloodWait     FloodWait
	RPC           RPCLimit

	// PersistWaiting keeps throttled actions across restarts.
	PersistWaiting bool
}

// SendLimits are the message send budgets.
type SendLimits struct {
	PerChat  RateLimit // every chat
	PerGroup RateLimit // additionally, groups and channels
	Global   RateLimit // all chats together
	Plugin   RateLimit // default budget of each plugin
}

// FirstContacts limits first messages to people who never wrote to the
// account, which is what triggers PEER_FLOOD.
type FirstContacts struct {
	PerDay         int
	PeerFloodPause time.Duration
}

// DuplicateText holds back the same text sent to many chats.
type DuplicateText struct {
	MaxChats int
	Window   time.Duration
	// Allow lists sources (plugin names, later rule names) exempt from the
	// check.
	Allow []string
}

// DailyLimits caps joins, invites and contact imports per day.
type DailyLimits struct {
	Joins          int
	Invites        int
	ContactImports int
}

// QuietHours stops outgoing actions between From and To (minutes after
// midnight) in Location. From > To wraps midnight.
type QuietHours struct {
	From, To int
	TimeZone string
	Location *time.Location
}

// Flood-wait policies when a wait exceeds MaxWait.
const (
	OnExceedRetryLater = "retry_later"
	OnExceedFail       = "fail"
)

// FloodWait configures contrib's floodwait.Waiter.
type FloodWait struct {
	MaxWait    time.Duration
	MaxRetries int
	OnExceed   string // retry_later | fail
}

// RPCLimit configures contrib's ratelimit middleware:
// ratelimit.New(rate.Every(Interval), Burst).
type RPCLimit struct {
	Interval time.Duration
	Burst    int
}

// Action is a permission a plugin can be granted.
type Action string

// Actions is every action a plugin can be granted, in documentation order.
var Actions = []Action{
	"send", "edit", "delete", "forward", "react", "read_history", "resolve",
	"history", "download", "upload", "typing", "raw_invoke", "join", "leave",
	"invite", "import_contacts", "runner_control",
}

// EventKinds is every event kind a plugin can subscribe to.
var EventKinds = []string{
	"new_message", "edited_message", "deleted_message", "chat_action",
	"reaction", "read", "typing", "user_status",
}

// Chat kinds usable in chat lists.
const (
	ChatPrivate = "private"
	ChatGroup   = "group"
	ChatChannel = "channel"
	ChatSelf    = "self"
)

var chatKinds = []string{ChatPrivate, ChatGroup, ChatChannel, ChatSelf}

// ChatRef names chats in permissions and filters: exactly one field is set.
type ChatRef struct {
	ID       int64  // a numeric chat id (Bot API style, -100... for channels)
	Username string // without the @
	Kind     string // private | group | channel | self
}

// String returns the form it is written in the config.
func (c ChatRef) String() string {
	switch {
	case c.Username != "":
		return "@" + c.Username
	case c.Kind != "":
		return c.Kind
	}
	return formatInt(c.ID)
}

// Queue overflow policies.
const (
	OverflowBlock      = "block"
	OverflowDropOldest = "drop_oldest"
	OverflowQuarantine = "quarantine"
)

// Plugin is one configured plugin.
type Plugin struct {
	Name string
	// Exactly one of Path (an external binary, absolute after loading; SHA256
	// required) and Builtin (served by the runner binary itself).
	Path    string
	SHA256  string // lowercase hex
	Builtin string
	Args    []string

	// Config is the plugin's free-form "config:" mapping, untouched; nil when
	// absent. RawConfig re-encodes it.
	Config *yaml.Node

	Permissions Permissions
	// Events the plugin is subscribed to; empty means what the plugin
	// declares in its info.
	Events []string
	Filter Filter
	// Env lists environment variables passed through to the plugin; it gets
	// nothing else from the runner's environment.
	Env []string

	Timeouts PluginTimeouts
	Queue    PluginQueue
	Restart  PluginRestart
	Limits   PluginLimits

	Disabled bool
	// CommandPrefix starts the plugin's commands; default ".".
	CommandPrefix string
}

// Permissions are what a plugin may do and where. Empty means nothing.
type Permissions struct {
	Actions []Action
	Chats   []ChatRef
}

// Message directions for filters.
const (
	DirectionAny      = "any"
	DirectionIncoming = "incoming"
	DirectionOutgoing = "outgoing"
)

// Filter narrows the events delivered to a plugin, evaluated on the host.
type Filter struct {
	Chats     []ChatRef // empty: any chat the plugin may see
	Direction string    // any | incoming | outgoing
	Pattern   *regexp.Regexp
}

// PluginTimeouts bound a plugin's start and each event it handles.
type PluginTimeouts struct {
	Start time.Duration
	Event time.Duration
}

// PluginQueue is a plugin's bounded event queue.
type PluginQueue struct {
	Size     int
	Overflow string // block | drop_oldest | quarantine
}

// PluginRestart governs restarts after crashes: exponential backoff between
// BackoffMin and BackoffMax; MaxCrashes within Window quarantines the plugin.
type PluginRestart struct {
	BackoffMin time.Duration
	BackoffMax time.Duration
	MaxCrashes int
	Window     time.Duration
}

// PluginLimits are a plugin's own budgets. Send is always set (it defaults
// to limits.send.plugin); nil daily counts share the account-wide ones.
type PluginLimits struct {
	Send                 RateLimit
	FirstContactsPerDay  *int
	JoinsPerDay          *int
	InvitesPerDay        *int
	ContactImportsPerDay *int
}

// RawConfig returns the plugin's config: mapping re-encoded as YAML, or nil.
func (p Plugin) RawConfig() ([]byte, error) {
	if p.Config == nil {
		return nil, nil
	}
	return yaml.Marshal(p.Config)
}

// Can reports whether the plugin was granted action a.
func (p Permissions) Can(a Action) bool {
	for _, x := range p.Actions {
		if x == a {
			return true
		}
	}
	return false
}
