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
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/lease"
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

// LeaseHolders tells who holds an account's lease when accounts run under
// leases (storage in Redis): "" when no runner holds it.
type LeaseHolders interface {
	Current(ctx context.Context, account string) (holder string, token uint64, err error)
}

// FleetPauses are the per-account pause switches runners under leases
// share (*lease.Pauses). With them, pause and resume reach every account,
// including those other runners hold.
type FleetPauses interface {
	Set(ctx context.Context, account, reason string) error
	Clear(ctx context.Context, account string) (bool, error)
	Get(ctx context.Context, account string) (lease.PauseState, bool, error)
}

// Options are what Ops works with.
type Options struct {
	// Config is the loaded config (ops:, plugins:, accounts: and storage:
	// are read).
	Config *config.Config
	// Accounts are the accounts this process may run, in order; default:
	// Config.AccountNames().
	Accounts []string
	// Store and Stack, when Store is set, are the single account's storage
	// and stack: the first account is served with them at once (the
	// one-account runner). Otherwise each account is served through
	// Account(name).Serve when it starts.
	Store *store.Store
	Stack Stack
	// Dir is the storage directory the default control socket lives in;
	// default Store.Dir(), else Config.Storage.Dir.
	Dir string
	// Leases, when set, says the accounts run under leases shared with
	// other runners: an account not held here is shown with its holder and
	// does not count against readiness.
	Leases LeaseHolders
	// Holder is this runner's lease holder id, shown in the status.
	Holder string
	// Pauses, under leases, carry pause and resume to whichever runner
	// holds each account.
	Pauses FleetPauses
	// Relay, under leases, carries the other control requests about an
	// account another runner holds to that runner (Holder must be set).
	Relay Relay
	// Reloader serves `runner reload`; optional.
	Reloader Reloader
	Logger   *zap.Logger
	// Version is shown on the status page and in tgrunner_build_info;
	// default: the module version from the build info.
	Version string
	// Listen overrides Config.Ops.Listen (tests pass 127.0.0.1:0).
	Listen string
	// Socket overrides the control socket path; default
	// Config.Ops.SocketPath(Dir).
	Socket string
	// Notifier sends systemd notifications; default: the real sd_notify,
	// a no-op outside systemd.
	Notifier Notifier
}

// Ops serves metrics, health, the status page and the control socket for
// one runner process and every account it runs. Create it with New, serve
// each account through Account(name).Serve (or pass the single account's
// Store), Start it before the runners run and Close it after.
type Ops struct {
	opts     Options
	log      *zap.Logger
	version  string
	started  time.Time
	reg      *prometheus.Registry
	accounts []*AccountOps // config order; fixed after New

	mu         sync.Mutex // guards the accounts' state and the fields below
	readySent  bool
	listener   net.Listener
	socket     net.Listener
	socketLock *os.File
	servers    []*http.Server
	cancel     context.CancelFunc
	wg         sync.WaitGroup
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
	if opts.Config == nil {
		return nil, errors.New("ops: Options.Config is required")
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
	if len(opts.Accounts) == 0 {
		opts.Accounts = opts.Config.AccountNames()
	}
	if opts.Dir == "" {
		opts.Dir = opts.Config.Storage.Dir
		if opts.Store != nil {
			opts.Dir = opts.Store.Dir()
		}
	}
	if opts.Socket == "" {
		opts.Socket = opts.Config.Ops.SocketPath(opts.Dir)
	}
	v := opts.Version
	if v == "" {
		v = buildVersion()
	}
	o := &Ops{opts: opts, log: opts.Logger, version: v, started: time.Now(), reg: prometheus.NewRegistry()}
	o.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		processCollector{o: o},
	)
	seen := map[string]bool{}
	for _, name := range opts.Accounts {
		if seen[name] {
			return nil, fmt.Errorf("ops: account %q listed twice", name)
		}
		seen[name] = true
		a := &AccountOps{o: o, name: name, session: sessionInfo{Account: name}}
		acfg, err := opts.Config.ForAccount(name)
		if err != nil {
			return nil, fmt.Errorf("ops: %w", err)
		}
		m, err := newAccountMetrics(a, acfg, prometheus.WrapRegistererWith(prometheus.Labels{"account": name}, o.reg))
		if err != nil {
			return nil, fmt.Errorf("ops: metrics of account %s: %w", name, err)
		}
		a.metrics = m
		o.accounts = append(o.accounts, a)
	}
	if len(o.accounts) == 0 {
		return nil, errors.New("ops: no accounts")
	}
	if opts.Store != nil {
		o.accounts[0].Serve(nil, store.Bolt(opts.Store), opts.Stack)
	}
	return o, nil
}

func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "devel"
	}
	return info.Main.Version
}

// Account returns the ops of a configured account, or nil when name is not
// one of Options.Accounts.
func (o *Ops) Account(name string) *AccountOps {
	for _, a := range o.accounts {
		if a.name == name {
			return a
		}
	}
	return nil
}

// first is the single account's ops, for the one-account shortcuts below.
func (o *Ops) first() *AccountOps { return o.accounts[0] }

// Attach hooks the first account's ops into the runner's options (the
// one-account runner); see AccountOps.Serve.
func (o *Ops) Attach(ro *runner.Options) { o.first().attach(ro) }

// SessionUp records that the first account is logged in; see
// AccountOps.SessionUp.
func (o *Ops) SessionUp(account string, selfID int64, username, name string) {
	a := o.Account(account)
	if a == nil {
		a = o.first()
	}
	a.SessionUp(selfID, username, name)
}

// SessionDown records that the first account's session ended.
func (o *Ops) SessionDown(err error) { o.first().SessionDown(err) }

// ConnectionState records the first account's connection state; see
// AccountOps.ConnectionState.
func (o *Ops) ConnectionState(state string) { o.first().ConnectionState(state) }

// ConnectionDead records why the first account's connection died.
func (o *Ops) ConnectionDead(err error) { o.first().ConnectionDead(err) }

// notifyReady tells systemd the runner is ready when the first account
// comes up: the service has started its work.
func (o *Ops) notifyReady() {
	o.mu.Lock()
	sent := o.readySent
	o.readySent = true
	o.mu.Unlock()
	if sent {
		return
	}
	if err := o.opts.Notifier.Ready(); err != nil {
		o.log.Warn("Could not notify systemd that the runner is ready", zap.Error(err))
	}
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
		if o.opts.Leases != nil {
			// Runners sharing a config on one machine share the socket:
			// one serves it (its status shows who holds every account),
			// and another takes over when that one stops.
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				o.serveSharedSocket(ctx)
			}()
		} else {
			ln, err := listenSocket(o.opts.Socket)
			if err != nil {
				o.closeListeners()
				cancel()
				return err
			}
			o.socket = ln
			o.serve(ctx, ln, o.controlHandler())
		}
	}
	if o.opts.Relay != nil {
		if err := o.serveRelay(ctx); err != nil {
			// The runner works without it; requests about accounts held
			// elsewhere then say where they run.
			o.log.Warn("Other runners cannot relay control requests here", zap.Error(err))
		}
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.watchdog(ctx)
	}()
	if o.opts.Leases != nil {
		// Under leases a runner may hold no account for as long as the
		// others live: it is up and standing by, which is what systemd
		// waits for.
		o.notifyReady()
	}
	return nil
}

func (o *Ops) serve(ctx context.Context, ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          zap.NewStdLog(o.log.Named("http")),
	}
	o.mu.Lock()
	o.servers = append(o.servers, srv)
	o.mu.Unlock()
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
	o.mu.Lock()
	servers := slices.Clone(o.servers)
	o.mu.Unlock()
	for _, srv := range servers {
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
	o.mu.Lock()
	socket, lock := o.socket, o.socketLock
	o.socket, o.socketLock = nil, nil
	o.mu.Unlock()
	if socket != nil {
		_ = socket.Close()
		// net.UnixListener removes its file on Close; make sure.
		if err := os.Remove(o.opts.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.log.Debug("Remove control socket", zap.Error(err))
		}
	}
	if lock != nil {
		_ = lock.Close() // releases the flock: another runner may serve now
	}
}
