package sdk

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Version is the SDK's version, reported to the runner as "go/<Version>".
const Version = "0.1.0"

// DefaultCommandPrefix is the command prefix until the runner's config says
// otherwise.
const DefaultCommandPrefix = "."

// Plugin is a plugin being built: its description, handlers and jobs.
// Register everything before Serve (or sdktest.New); handlers cannot be
// added once the plugin runs. Jobs can be added and stopped at any time.
type Plugin struct {
	name, version, description string
	perms                      Permissions
	rawTL                      bool
	concurrency                int
	maxProcs                   int
	shutdownGrace              time.Duration

	mu     sync.Mutex
	frozen bool
	routes []*Route
	groups [][]*Route
	clock  Clock
	logger hclog.Logger

	jobs        []*Job
	configs     []configDecoder
	onConfigure []func(Settings) error
	settings    atomic.Pointer[Settings]
	configured  atomic.Bool
	configureMu sync.Mutex
	server      *server
	exec        *executor
	seen        *dedupe
	cur         atomic.Pointer[session]
	sessionMu   sync.Mutex
	jobsRunning bool
}

// Permissions are what a plugin asks for; the runner's config decides what
// it gets.
type Permissions struct {
	// Action names: send, edit, delete, forward, react, read_history,
	// typing, history, resolve, download, upload, join, leave, raw_invoke.
	Actions []string
	// Chats: "user:123", "@username", or a kind: private, group, channel,
	// self.
	Chats []string
}

func (p Permissions) proto() *pluginv1.Permissions {
	return &pluginv1.Permissions{Actions: slices.Clone(p.Actions), Chats: slices.Clone(p.Chats)}
}

func permissionsFromProto(p *pluginv1.Permissions) Permissions {
	return Permissions{Actions: slices.Clone(p.GetActions()), Chats: slices.Clone(p.GetChats())}
}

// Option configures a Plugin in New.
type Option func(*Plugin)

// WithDescription sets the one-line description shown by the runner.
func WithDescription(s string) Option { return func(p *Plugin) { p.description = s } }

// WithPermissions declares the actions and chats the plugin needs, so the
// runner's operator can grant them knowingly.
func WithPermissions(perms Permissions) Option { return func(p *Plugin) { p.perms = perms } }

// WithRawTL asks the runner to attach the TL-encoded update to each event.
func WithRawTL() Option { return func(p *Plugin) { p.rawTL = true } }

// WithConcurrency bounds how many chats are handled at once (default 32).
// Events of one chat are always handled one after another, in order.
func WithConcurrency(n int) Option { return func(p *Plugin) { p.concurrency = n } }

// WithGOMAXPROCS sets GOMAXPROCS in Serve. The default is 1, which
// measured 30-60% faster for plugins on a 2-core machine; a GOMAXPROCS
// environment variable wins over it. Pass a negative n to keep Go's own
// default.
func WithGOMAXPROCS(n int) Option { return func(p *Plugin) { p.maxProcs = n } }

// WithShutdownGrace bounds how long in-flight handlers may run after the
// runner asks the plugin to stop; then their contexts are cancelled
// (default 10s).
func WithShutdownGrace(d time.Duration) Option { return func(p *Plugin) { p.shutdownGrace = d } }

// WithLogger replaces the default logger (hclog JSON on stderr, which the
// runner forwards into its log).
func WithLogger(l hclog.Logger) Option { return func(p *Plugin) { p.logger = l } }

// New starts a plugin description. The name is the plugin's, not the
// instance's: the runner's config may run it several times under
// different instance names.
func New(name, version string, opts ...Option) *Plugin {
	p := &Plugin{
		name:          name,
		version:       version,
		concurrency:   32,
		maxProcs:      1,
		shutdownGrace: 10 * time.Second,
		clock:         systemClock{},
		seen:          newDedupe(1 << 16),
	}
	for _, o := range opts {
		o(p)
	}
	if p.logger == nil {
		p.logger = defaultLogger(name)
	}
	if p.concurrency < 1 {
		p.concurrency = 1
	}
	p.exec = newExecutor(p.concurrency)
	p.settings.Store(&Settings{CommandPrefix: DefaultCommandPrefix})
	p.server = &server{p: p}
	return p
}

func defaultLogger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("TGRUNNER_LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// Name is the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Log is the plugin's logger.
func (p *Plugin) Log() hclog.Logger { return p.logger }

// SetClock replaces the clock that schedules jobs; for tests (see
// sdktest.Clock). Call it before the plugin runs.
func (p *Plugin) SetClock(c Clock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clock = c
}

// SetLogger replaces the logger; for tests. Call it before the plugin runs.
func (p *Plugin) SetLogger(l hclog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logger = l
}

// Route is a registered handler. Its methods refine it and return it, so
// they chain: p.Command("ping", h).Describe("Replies pong").
type Route struct {
	p       *Plugin
	filter  Filter
	fn      HandlerFunc
	group   int
	name    string
	command *pluginv1.Command
}

func (p *Plugin) addRoute(r *Route) *Route {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		panic("sdk: handlers must be registered before the plugin runs")
	}
	p.routes = append(p.routes, r)
	return r
}

func (r *Route) mutate(fn func()) *Route {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if r.p.frozen {
		panic("sdk: handlers must be changed before the plugin runs")
	}
	fn()
	return r
}

// Handle registers a handler for the events f matches, in group 0.
func (p *Plugin) Handle(f Filter, fn HandlerFunc) *Route {
	if f == nil {
		f = Any
	}
	return p.addRoute(&Route{p: p, filter: f, fn: fn, name: fmt.Sprintf("handler #%d", len(p.routes)+1)})
}

// Command registers a handler for a command: the prefix (default ".", set
// by the runner's config), then name. The runner lists it in its help.
func (p *Plugin) Command(name string, fn HandlerFunc) *Route {
	if !validCommandName(name) {
		panic(fmt.Sprintf("sdk: command name %q must be non-empty and contain no white space", name))
	}
	return p.addRoute(&Route{
		p: p, filter: Command(name), fn: fn, name: "command " + name,
		command: &pluginv1.Command{Name: name},
	})
}

// Describe sets a command's description for the runner's help.
func (r *Route) Describe(description string) *Route {
	return r.mutate(func() {
		if r.command != nil {
			r.command.Description = description
		}
	})
}

// Usage sets a command's usage line, e.g. "<text>".
func (r *Route) Usage(usage string) *Route {
	return r.mutate(func() {
		if r.command != nil {
			r.command.Usage = usage
		}
	})
}

// Where narrows the route with more filters: the handler runs only when
// its own filter and all of these match.
func (r *Route) Where(fs ...Filter) *Route {
	return r.mutate(func() { r.filter = And(append([]Filter{r.filter}, fs...)...) })
}

// InGroup moves the route to a handler group. Groups run in ascending
// order; in each group, the first matching handler runs (see HandlerFunc
// for Continue and Stop).
func (r *Route) InGroup(group int) *Route { return r.mutate(func() { r.group = group }) }

// Named names the route in logs and errors.
func (r *Route) Named(name string) *Route { return r.mutate(func() { r.name = name }) }

// freeze fixes the routes into groups the first time the plugin runs.
func (p *Plugin) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		return
	}
	p.frozen = true
	routes := slices.Clone(p.routes)
	slices.SortStableFunc(routes, func(a, b *Route) int { return a.group - b.group })
	for i, r := range routes {
		if i == 0 || routes[i-1].group != r.group {
			p.groups = append(p.groups, nil)
		}
		p.groups[len(p.groups)-1] = append(p.groups[len(p.groups)-1], r)
	}
}

// dispatch runs the event in c through the handler groups.
func (p *Plugin) dispatch(c *Context) error {
	for _, group := range p.groups {
		for _, r := range group {
			c.resetMatch()
			matched, err := safeMatch(r, c)
			if err != nil {
				return err
			}
			if !matched {
				continue
			}
			err = r.call(c)
			if err == nil {
				break
			}
			if err == Continue {
				continue
			}
			if err == Stop {
				return nil
			}
			return err
		}
	}
	return nil
}

// PanicError is what a handler's panic becomes: the event is acknowledged
// as failed and the plugin keeps running.
type PanicError struct {
	Handler string
	Value   any
	Stack   []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("%s panicked: %v", e.Handler, e.Value) }

func safeMatch(r *Route, c *Context) (ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Handler: r.name + " (filter)", Value: v, Stack: debug.Stack()}
			c.Log().Error("filter panicked", "handler", r.name, "panic", fmt.Sprint(v), "stack", string(err.(*PanicError).Stack))
		}
	}()
	return r.filter.Match(c), nil
}

func (r *Route) call(c *Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Handler: r.name, Value: v, Stack: debug.Stack()}
			c.Log().Error("handler panicked", "handler", r.name, "panic", fmt.Sprint(v), "stack", string(pe.Stack))
			err = pe
		}
	}()
	err = r.fn(c)
	if err != nil && err != Continue && err != Stop {
		err = fmt.Errorf("%s: %w", r.name, err)
	}
	return err
}

// info describes the plugin from what is registered.
func (p *Plugin) info() *pluginv1.PluginInfo {
	p.freeze()
	prefix := ""
	if p.configured.Load() {
		prefix = p.prefix()
	}
	cons := neverEvent()
	var commands []*pluginv1.Command
	seen := map[string]bool{}
	for _, r := range p.routes {
		cons = or(cons, r.filter.constraint(prefix))
		if r.command != nil && !seen[r.command.Name] {
			seen[r.command.Name] = true
			commands = append(commands, &pluginv1.Command{
				Name: r.command.Name, Description: r.command.Description, Usage: r.command.Usage,
			})
		}
	}
	sub := cons.subscription()
	sub.RawTl = p.rawTL
	return &pluginv1.PluginInfo{
		Name:         p.name,
		Version:      p.version,
		Description:  p.description,
		Subscription: sub,
		Permissions:  p.perms.proto(),
		Commands:     commands,
		Sdk:          "go/" + Version,
	}
}

// Info returns the description the runner gets: name, version, commands,
// permissions, and the subscription computed from the handlers' filters.
// Commands narrow it to their text prefixes only once Configure has told
// the command prefix; before that they subscribe to every new message.
func (p *Plugin) Info() *pluginv1.PluginInfo { return p.info() }

func (p *Plugin) prefix() string { return p.settings.Load().CommandPrefix }

// Settings is what the runner told the plugin in its last Configure call.
type Settings struct {
	// Instance is the plugin's instance name in the runner's config.
	Instance string
	// Account is the name of the account in the runner's config.
	Account string
	// Me is the account the runner is logged in as, when known.
	Me *pluginv1.User
	// CommandPrefix starts commands; "." unless the config says otherwise.
	CommandPrefix string
	// Granted is what the runner's config allows the plugin.
	Granted Permissions
	// ConfigJSON is the plugin's config section as JSON ("{}" when absent).
	ConfigJSON []byte
}

// Settings returns the current settings; the zero value but for the
// default prefix before the first Configure.
func (p *Plugin) Settings() Settings { return *p.settings.Load() }

// OnConfigure registers a hook run at every Configure (start and config
// reload), after the typed configs were decoded. An error rejects the
// configuration: the runner gets INVALID_ARGUMENT with its message, and
// the previous settings stay in force.
func (p *Plugin) OnConfigure(fn func(s Settings) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onConfigure = append(p.onConfigure, fn)
}
