// Package ops owns what an operator uses to watch and steer a running
// runner: Prometheus metrics, the /healthz and /readyz checks, the status
// page and its JSON, the local control socket (status, pause, resume,
// reload, plugins, audit, backup) with its client, and the systemd
// notifications (ready, stopping, watchdog).
//
// Ops reads the runner through small hooks (Attach on runner.Options, the
// Stack's Guard and Host) and never changes what the runner does except
// through the same calls an owner could make: guard pause/resume, plugin
// restart/disable/enable, and reload.
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

// Stack is the live action path ops looks at. *runner.Stack implements it;
// both return nil until the stack runs.
type Stack interface {
	Guard() *guard.Guard
	Host() *pluginhost.Host
}

var _ Stack = (*runner.Stack)(nil)

// Reloader re-reads and applies the config in place. The control socket's
// reload request calls it; without one the request is answered "not
// supported by this runner yet".
type Reloader interface {
	Reload(ctx context.Context) error
}

// Options are what Ops works with.
type Options struct {
	// Config is the loaded config (ops:, plugins: and storage: are read).
	Config *config.Config
	// Store is the runner's open store.
	Store *store.Store
	// Stack is the guard and plugin host; nil when the runner runs without
	// one.
	Stack Stack
	// Reloader serves `runner reload`; optional.
	Reloader Reloader
	Logger   *zap.Logger
	// Version is shown on the status page and in tgrunner_build_info;
	// default: the module version from the build info.
	Version string
	// Listen overrides Config.Ops.Listen (tests pass 127.0.0.1:0).
	Listen string
	// Socket overrides the control socket path; default
	// Config.Ops.SocketPath(Store.Dir()).
	Socket string
	// Notifier sends systemd notifications; default: the real sd_notify,
	// a no-op outside systemd.
	Notifier Notifier
}

// Ops serves metrics, health, the status page and the control socket for
// one runner. Create it with New, hook it into the runner with Attach,
// Start it before the runner runs and Close it after.
type Ops struct {
	opts    Options
	log     *zap.Logger
	version string
	started time.Time
	metrics *metrics

	mu        sync.Mutex
	consumers map[string]*store.Consumer
	session   sessionInfo
	conn      connInfo
	listener  net.Listener
	socket    net.Listener
	servers   []*http.Server
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

type sessionInfo struct {
	Up       bool
	Account  string
	SelfID   int64
	Username string
	Name     string
	Since    time.Time
	// Ended is set when the session went down, with why.
	Ended    time.Time
	EndError string
}

type connInfo struct {
	// State is "connecting", "ready" or "disconnected"; "" until the
	// client reports one (the runner may not wire the callback).
	State      string
	Since      time.Time
	Reconnects int
	LastDead   string
}

// New prepares Ops; nothing listens until Start.
func New(opts Options) (*Ops, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("ops: Options.Config and Options.Store are required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Notifier == nil {
		opts.Notifier = SystemdNotifier{}
	}
	if opts.Listen == "" {
		opts.Listen = opts.Config.Ops.Listen
	}
	if opts.Socket == "" {
		opts.Socket = opts.Config.Ops.SocketPath(opts.Store.Dir())
	}
	v := opts.Version
	if v == "" {
		v = buildVersion()
	}
	o := &Ops{opts: opts, log: opts.Logger, version: v, started: time.Now()}
	o.metrics = newMetrics(o)
	return o, nil
}

func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "devel"
	}
	return info.Main.Version
}

// Attach hooks ops into the runner's options: every journaled update is
// counted and the session's up/down is tracked. Existing hooks are kept
// and called first.
func (o *Ops) Attach(ro *runner.Options) {
	prevObserve, prevReady := ro.Observe, ro.OnReady
	ro.Observe = func(entries []store.Entry) {
		if prevObserve != nil {
			prevObserve(entries)
		}
		o.ObserveEntries(entries)
	}
	ro.OnReady = func(s *runner.Session) {
		if prevReady != nil {
			prevReady(s)
		}
		name := ""
		if s.Self != nil {
			name = s.Self.FirstName
			if s.Self.LastName != "" {
				name += " " + s.Self.LastName
			}
			o.SessionUp(s.Account, s.Self.ID, s.Self.Username, name)
		}
	}
}

// ObserveEntries counts journaled updates by kind.
func (o *Ops) ObserveEntries(entries []store.Entry) {
	for _, e := range entries {
		o.metrics.updates.WithLabelValues(e.Kind).Inc()
	}
}

// SessionUp records that the account is logged in and updates flow; the
// first call also tells systemd the runner is ready.
func (o *Ops) SessionUp(account string, selfID int64, username, name string) {
	o.mu.Lock()
	o.session = sessionInfo{Up: true, Account: account, SelfID: selfID, Username: username, Name: name, Since: time.Now()}
	o.mu.Unlock()
	o.metrics.sessions.Inc()
	if err := o.opts.Notifier.Ready(); err != nil {
		o.log.Warn("Could not notify systemd that the runner is ready", zap.Error(err))
	}
}

// SessionDown records that the session ended (Runner.Run returned), with
// its error if any.
func (o *Ops) SessionDown(err error) {
	o.mu.Lock()
	o.session.Up = false
	o.session.Ended = time.Now()
	o.session.EndError = ""
	if err != nil {
		o.session.EndError = err.Error()
	}
	o.mu.Unlock()
}

// ConnectionState records the MTProto client's primary connection state
// ("connecting", "ready", "disconnected"), as gotd's
// telegram.Options.OnConnectionState reports it. A "connecting" after a
// "ready" or "disconnected" counts as a reconnect. It must not block.
func (o *Ops) ConnectionState(state string) {
	o.mu.Lock()
	prev := o.conn.State
	if state == "connecting" && (prev == "ready" || prev == "disconnected") {
		o.conn.Reconnects++
		o.metrics.reconnects.Inc()
	}
	if state != prev {
		o.conn.State, o.conn.Since = state, time.Now()
	}
	o.mu.Unlock()
}

// ConnectionDead records why the connection died (gotd's
// telegram.Options.OnDead).
func (o *Ops) ConnectionDead(err error) {
	o.mu.Lock()
	if err != nil {
		o.conn.LastDead = err.Error()
	}
	o.mu.Unlock()
}

// FloodWait counts a FLOOD_WAIT the client's floodwait.Waiter sat out
// (below limits.flood_wait.max_wait); the guard's own flood waits are
// counted from the audit log.
func (o *Ops) FloodWait(d time.Duration) {
	o.metrics.floodWaits.WithLabelValues(sourceClient).Inc()
	o.metrics.floodWaitSeconds.WithLabelValues(sourceClient).Add(d.Seconds())
}

// ObservePluginLatency feeds the handler latency histogram (event sent to
// ack received). The plugin host has no hook for it yet; see
// docs/operations.md.
func (o *Ops) ObservePluginLatency(plugin string, d time.Duration) {
	o.metrics.latency.WithLabelValues(plugin).Observe(d.Seconds())
}

// Start opens the HTTP listener (when configured) and the control socket,
// and starts the systemd watchdog. Errors here (address in use, a socket
// another runner serves) are returned at once. The servers run until Close
// or ctx ends.
func (o *Ops) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	o.cancel = cancel
	if o.opts.Listen != "" {
		ln, err := net.Listen("tcp", o.opts.Listen)
		if err != nil {
			cancel()
			return fmt.Errorf("ops.listen %s: %w", o.opts.Listen, err)
		}
		o.listener = ln
		o.serve(ctx, ln, o.httpHandler())
		o.log.Info("Status page, metrics and health checks", zap.String("url", "http://"+ln.Addr().String()+"/"))
	}
	if o.opts.Socket != "" {
		ln, err := listenSocket(o.opts.Socket)
		if err != nil {
			o.closeListeners()
			cancel()
			return err
		}
		o.socket = ln
		o.serve(ctx, ln, o.controlHandler())
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.watchdog(ctx)
	}()
	return nil
}

func (o *Ops) serve(ctx context.Context, ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          zap.NewStdLog(o.log.Named("http")),
	}
	o.servers = append(o.servers, srv)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Warn("Ops server stopped", zap.String("addr", ln.Addr().String()), zap.Error(err))
		}
	}()
}

// Addr is the HTTP listener's address, or "" when it is off.
func (o *Ops) Addr() string {
	if o.listener == nil {
		return ""
	}
	return o.listener.Addr().String()
}

// SocketPath is the control socket's path, or "" when it is off.
func (o *Ops) SocketPath() string { return o.opts.Socket }

// Stopping tells systemd the runner is shutting down.
func (o *Ops) Stopping() {
	if err := o.opts.Notifier.Stopping(); err != nil {
		o.log.Debug("Could not notify systemd of the stop", zap.Error(err))
	}
}

// Close stops the servers (in-flight requests get a few seconds), removes
// the socket and waits for the watchdog.
func (o *Ops) Close() error {
	if o.cancel == nil {
		return nil
	}
	o.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range o.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = srv.Close()
		}
	}
	o.closeListeners()
	o.wg.Wait()
	return errors.Join(errs...)
}

func (o *Ops) closeListeners() {
	if o.listener != nil {
		_ = o.listener.Close()
	}
	if o.socket != nil {
		_ = o.socket.Close()
		// net.UnixListener removes its file on Close; make sure.
		if err := os.Remove(o.opts.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.log.Debug("Remove control socket", zap.Error(err))
		}
	}
}

func (o *Ops) guard() *guard.Guard {
	if o.opts.Stack == nil {
		return nil
	}
	return o.opts.Stack.Guard()
}

func (o *Ops) host() *pluginhost.Host {
	if o.opts.Stack == nil {
		return nil
	}
	return o.opts.Stack.Host()
}
