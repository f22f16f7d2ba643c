package pluginhost

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Options are the runner's pieces the host works with.
type Options struct {
	Logger   *zap.Logger
	Feeds    FeedSource
	Executor Executor
	Auditor  Auditor // optional; denials are logged either way
	// KV serves kv_* actions; without it they are answered UNAVAILABLE.
	KV KV
	// Resolver is needed for chat grants by kind or @username.
	Resolver ChatResolver
	// Account and Me are handed to each plugin's Configure.
	Account string
	Me      *pluginv1.User
	// SelfPath is the runner binary that serves builtin plugins as
	// `<SelfPath> plugin NAME`; default os.Executable().
	SelfPath string
	// DenyEnv names environment variables that never reach a plugin even if
	// allow-listed (the runner passes the variables its secrets came from).
	DenyEnv []string
	// ObserveLatency, when set, sees each handled event's latency (event
	// sent to ack received), for metrics. It must not block.
	ObserveLatency func(plugin string, d time.Duration)
}

// State is where an instance is in its life.
type State string

// Instance states.
const (
	StateStarting    State = "starting"
	StateRunning     State = "running"
	StateBackoff     State = "backoff"
	StateQuarantined State = "quarantined"
	StateStopped     State = "stopped"
	StateDisabled    State = "disabled"
)

// Status is a snapshot of one instance, for `runner plugins status` and
// metrics.
type Status struct {
	Name  string
	State State
	Since time.Time // when it entered State
	PID   int       // 0 when no process runs
	// Version and SDK are from the plugin's info, once it started.
	Version, SDK string
	// Restarts counts processes started after the first.
	Restarts int
	// Crashes counts crashes and hangs within the restart window.
	Crashes   int
	LastError string
	// QuarantineReason says why it is quarantined.
	QuarantineReason string
	// NextStart is when a plugin in backoff starts again.
	NextStart time.Time

	QueueDepth int // events read from the feed, not yet sent
	InFlight   int // events sent, not yet acked

	Delivered uint64 // acked by the plugin as handled
	Failed    uint64 // acked by the plugin with an error
	Dropped   uint64 // dropped by the drop_oldest policy
	Filtered  uint64 // acked by the host without delivery: not subscribed
	Actions   uint64 // action calls
	Denied    uint64 // action calls refused by permissions

	// Handler latency (event sent to ack received) over recent events.
	LatencyP50, LatencyP99 time.Duration
}

// Host runs and supervises the configured plugin instances.
type Host struct {
	opts    Options
	log     *zap.Logger
	denyEnv map[string]bool

	// mu guards the instance set, which Apply changes while running.
	mu        sync.RWMutex
	instances map[string]*instance
	order     []string

	selfOnce sync.Once
	selfSum  []byte
	selfErr  error

	ctx    context.Context
	cancel context.CancelFunc
}

// New checks the specs (defaults filled in) and prepares a host. Nothing
// starts until Start.
func New(opts Options, specs ...Spec) (*Host, error) {
	if opts.Feeds == nil || opts.Executor == nil {
		return nil, errors.New("pluginhost: Options.Feeds and Options.Executor are required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	h := &Host{opts: opts, log: opts.Logger, instances: map[string]*instance{}, denyEnv: map[string]bool{}}
	for _, n := range opts.DenyEnv {
		h.denyEnv[n] = true
	}
	for _, s := range specs {
		s = s.WithDefaults()
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if _, dup := h.instances[s.Name]; dup {
			return nil, &SpecError{Plugin: s.Name, Field: "name", Reason: "two plugins have this name"}
		}
		h.instances[s.Name] = newInstance(h, s)
		h.order = append(h.order, s.Name)
	}
	return h, nil
}

// Start opens each instance's feed and starts the supervisors. Plugins come
// up in the background; Status shows how far they got. ctx bounds the
// host's life: when it ends, the plugins are stopped as by Stop.
func (h *Host) Start(ctx context.Context) error {
	h.ctx, h.cancel = context.WithCancel(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range h.order {
		if err := h.startInstance(h.instances[name]); err != nil {
			h.cancel()
			return err
		}
	}
	return nil
}

// startInstance opens the instance's feed and starts its supervisor and
// acker on a context of its own, so Apply can stop it alone.
func (h *Host) startInstance(in *instance) error {
	feed, err := h.opts.Feeds(h.ctx, in.spec.Name)
	if err != nil {
		return fmt.Errorf("plugin %q: open feed: %w", in.spec.Name, err)
	}
	in.feed = feed
	in.acker = newAcker(feed, in.log)
	in.hostCtx = h.ctx
	ctx, cancel := context.WithCancel(h.ctx)
	in.stop = cancel
	in.wg.Add(2)
	go func() { defer in.wg.Done(); in.acker.run(ctx) }()
	go func() { defer in.wg.Done(); in.supervise(ctx) }()
	return nil
}

// stopInstance stops one instance gracefully and waits for it: its
// in-flight events are acked or left for redelivery, its actions finish.
func (h *Host) stopInstance(ctx context.Context, in *instance) error {
	if in.stop == nil {
		return nil
	}
	in.stop()
	done := make(chan struct{})
	go func() {
		in.wg.Wait()
		in.actionsWG.Wait()
		// Acks taken after the acker stopped.
		if err := in.acker.flush(context.WithoutCancel(ctx)); err != nil {
			in.log.Error("ack events in the feed at stop", zap.Error(err))
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop plugin %q: %w", in.spec.Name, ctx.Err())
	}
}

// Stop stops every plugin gracefully (each gets a Shutdown and its
// shutdown timeout) and waits for them, or until ctx ends.
func (h *Host) Stop(ctx context.Context) error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.mu.RLock()
	ins := make([]*instance, 0, len(h.instances))
	for _, in := range h.instances {
		ins = append(ins, in)
	}
	h.mu.RUnlock()
	var errs []error
	for _, in := range ins {
		errs = append(errs, h.stopInstance(ctx, in))
	}
	return errors.Join(errs...)
}

// Apply changes the running set of plugins to specs: instances no longer
// listed are stopped, new ones started, and changed ones stopped and
// started again with their new spec. Unchanged instances are not touched.
// Each instance resumes from its feed position, so no event is lost, and a
// graceful stop acks what the plugin handled, so none is doubled. It
// returns the names it removed, added and restarted.
func (h *Host) Apply(ctx context.Context, specs ...Spec) (removed, added, changed []string, err error) {
	next := map[string]Spec{}
	var order []string
	for _, s := range specs {
		s = s.WithDefaults()
		if err := s.Validate(); err != nil {
			return nil, nil, nil, err
		}
		if _, dup := next[s.Name]; dup {
			return nil, nil, nil, &SpecError{Plugin: s.Name, Field: "name", Reason: "two plugins have this name"}
		}
		next[s.Name] = s
		order = append(order, s.Name)
	}
	if h.ctx == nil {
		return nil, nil, nil, errors.New("pluginhost: not started")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range h.order {
		in := h.instances[name]
		s, keep := next[name]
		if keep && sameSpec(in.spec, s) {
			continue
		}
		if err := h.stopInstance(ctx, in); err != nil {
			return removed, added, changed, err
		}
		delete(h.instances, name)
		if keep {
			changed = append(changed, name)
		} else {
			removed = append(removed, name)
		}
	}
	for _, name := range order {
		if _, running := h.instances[name]; running {
			continue
		}
		in := newInstance(h, next[name])
		h.instances[name] = in
		if err := h.startInstance(in); err != nil {
			delete(h.instances, name)
			return removed, added, changed, err
		}
		if !slices.Contains(changed, name) {
			added = append(added, name)
		}
	}
	h.order = order
	return removed, added, changed, nil
}

// sameSpec compares specs; regexps compare by their source.
func sameSpec(a, b Spec) bool {
	pa, pb := a.Filter.Pattern, b.Filter.Pattern
	a.Filter.Pattern, b.Filter.Pattern = nil, nil
	if (pa == nil) != (pb == nil) || (pa != nil && pa.String() != pb.String()) {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// Status returns a snapshot of every instance, in config order.
func (h *Host) Status() []Status {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]Status, 0, len(h.order))
	for _, name := range h.order {
		out = append(out, h.instances[name].status())
	}
	return out
}

// StatusOf returns one instance's snapshot.
func (h *Host) StatusOf(name string) (Status, bool) {
	h.mu.RLock()
	in, ok := h.instances[name]
	h.mu.RUnlock()
	if !ok {
		return Status{}, false
	}
	return in.status(), true
}

// Infos returns what each plugin said about itself (name, version,
// commands...) in config order; plugins that never started are left out.
// The plugin's own name is replaced by its instance name.
func (h *Host) Infos() []*pluginv1.PluginInfo {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*pluginv1.PluginInfo
	for _, name := range h.order {
		in := h.instances[name]
		in.mu.Lock()
		info := in.info
		in.mu.Unlock()
		if info == nil {
			continue
		}
		c := proto.Clone(info).(*pluginv1.PluginInfo)
		c.Name = in.spec.Name
		out = append(out, c)
	}
	return out
}

// ErrNoSuchPlugin is returned by the control methods for unknown names.
var ErrNoSuchPlugin = errors.New("no such plugin")

// Restart stops the plugin gracefully and starts it again now, also out of
// backoff or quarantine (its crash history is cleared). It returns once
// the request is taken, before the plugin is up.
func (h *Host) Restart(name string) error { return h.control(name, cmdRestart) }

// Disable stops the plugin and keeps it stopped until Enable. It returns
// once the plugin is stopped.
func (h *Host) Disable(name string) error { return h.control(name, cmdDisable) }

// Enable starts a disabled or quarantined plugin.
func (h *Host) Enable(name string) error { return h.control(name, cmdEnable) }

func (h *Host) control(name string, kind cmdKind) error {
	h.mu.RLock()
	in, ok := h.instances[name]
	h.mu.RUnlock()
	if !ok {
		return fmt.Errorf("plugin %q: %w", name, ErrNoSuchPlugin)
	}
	if h.ctx == nil {
		return errors.New("pluginhost: not started")
	}
	c := command{kind: kind, done: make(chan struct{})}
	select {
	case in.cmds <- c:
	case <-h.ctx.Done():
		return fmt.Errorf("plugin %q: host stopped", name)
	}
	select {
	case <-c.done:
		return nil
	case <-h.ctx.Done():
		return fmt.Errorf("plugin %q: host stopped", name)
	}
}

// executable resolves what to run for a spec.
func (h *Host) executable(s *Spec) (executable, error) {
	if s.Path != "" {
		sum, _ := hex.DecodeString(s.SHA256) // checked by Validate
		return executable{path: s.Path, sum: sum}, nil
	}
	h.selfOnce.Do(func() {
		path := h.opts.SelfPath
		if path == "" {
			path, h.selfErr = os.Executable()
			if h.selfErr != nil {
				return
			}
		}
		h.opts.SelfPath = path
		sum, err := fileSHA256(path)
		if err != nil {
			h.selfErr = err
			return
		}
		h.selfSum, _ = hex.DecodeString(sum)
	})
	if h.selfErr != nil {
		return executable{}, fmt.Errorf("builtin plugins: the runner's own binary: %w", h.selfErr)
	}
	return executable{path: h.opts.SelfPath, args: []string{"plugin", s.Builtin}, sum: h.selfSum}, nil
}

type cmdKind int

const (
	cmdRestart cmdKind = iota
	cmdDisable
	cmdEnable
)

type command struct {
	kind cmdKind
	done chan struct{} // closed once handled
}

// instance is one configured plugin and its supervisor.
type instance struct {
	h       *Host
	spec    Spec
	perms   permissions
	log     *zap.Logger
	feed    Feed
	acker   *acker
	hostCtx context.Context
	cmds    chan command

	actionsWG sync.WaitGroup
	// stop ends this instance's supervisor and acker; wg waits for them.
	stop context.CancelFunc
	wg   sync.WaitGroup

	delivered, failed, dropped, filtered, actions, denied atomic.Uint64
	latency                                               latencies

	mu       sync.Mutex
	st       Status
	info     *pluginv1.PluginInfo // the latest the plugin gave; nil before
	crashes  []time.Time
	launches int
	cur      *run
	curProc  *process
}

func newInstance(h *Host, s Spec) *instance {
	return &instance{
		h: h, spec: s, perms: newPermissions(s.Grants),
		log:  h.log.With(zap.String("plugin", s.Name)),
		cmds: make(chan command),
		st:   Status{Name: s.Name, State: StateStopped, Since: time.Now()},
	}
}

func (in *instance) setState(s State, mut func(st *Status)) {
	in.mu.Lock()
	if in.st.State != s {
		in.st.State = s
		in.st.Since = time.Now()
	}
	if mut != nil {
		mut(&in.st)
	}
	in.mu.Unlock()
}

func (in *instance) status() Status {
	in.mu.Lock()
	st := in.st
	r := in.cur
	in.mu.Unlock()
	if r != nil {
		st.QueueDepth, st.InFlight = r.depth()
	}
	st.Delivered = in.delivered.Load()
	st.Failed = in.failed.Load()
	st.Dropped = in.dropped.Load()
	st.Filtered = in.filtered.Load()
	st.Actions = in.actions.Load()
	st.Denied = in.denied.Load()
	st.LatencyP50, st.LatencyP99 = in.latency.percentiles()
	return st
}

// supervise is the instance's life: start, watch, restart with backoff,
// quarantine, obey control commands.
func (in *instance) supervise(ctx context.Context) {
	held := in.spec.Disabled // disabled or quarantined: wait for a command
	if held {
		in.setState(StateDisabled, nil)
	}
	for {
		if held {
			select {
			case <-ctx.Done():
				in.setState(StateStopped, nil)
				return
			case c := <-in.cmds:
				switch c.kind {
				case cmdEnable, cmdRestart:
					held = false
					in.clearCrashes()
				case cmdDisable:
					in.setState(StateDisabled, nil)
				}
				close(c.done)
				continue
			}
		}

		if ctx.Err() != nil {
			in.setState(StateStopped, nil)
			return
		}
		in.setState(StateStarting, nil)
		r, proc, end := in.begin(ctx)
		if r == nil {
			if ctx.Err() != nil {
				in.setState(StateStopped, nil)
				return
			}
			held = in.failure(ctx, end)
			if !held {
				held = in.backoff(ctx)
			}
			continue
		}
		in.setState(StateRunning, func(st *Status) { st.PID = proc.pid })

		select {
		case end = <-r.ended:
			in.finish(r, proc, false, "")
			held = in.failure(ctx, end)
			if !held {
				held = in.backoff(ctx)
			}
		case <-ctx.Done():
			in.finish(r, proc, true, "runner stopping")
			in.setState(StateStopped, nil)
			return
		case c := <-in.cmds:
			switch c.kind {
			case cmdRestart:
				in.finish(r, proc, true, "restart requested")
				in.clearCrashes()
			case cmdDisable:
				in.finish(r, proc, true, "disabled")
				in.setState(StateDisabled, nil)
				held = true
			case cmdEnable: // already running
			}
			close(c.done)
		}
	}
}

// begin starts a process and its session. On failure it returns the
// reason.
func (in *instance) begin(ctx context.Context) (*run, *process, runEnd) {
	bin, err := in.h.executable(&in.spec)
	if err != nil {
		return nil, nil, runEnd{err: err, quarantine: true}
	}
	in.mu.Lock()
	if in.launches > 0 {
		in.st.Restarts++
	}
	in.launches++
	in.mu.Unlock()

	proc, err := launch(in.spec, bin, scrubbedEnv(in.spec.EnvAllow, in.h.denyEnv), in.log)
	if err != nil {
		// A wrong checksum or stdout noise will not fix itself.
		permanent := errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrStdoutNoise)
		return nil, nil, runEnd{err: err, quarantine: permanent}
	}
	fail := func(err error, quarantine bool) (*run, *process, runEnd) {
		proc.kill()
		return nil, nil, runEnd{err: err, quarantine: quarantine}
	}

	callCtx, cancel := context.WithTimeout(ctx, in.spec.StartTimeout)
	defer cancel()
	if _, err := proc.api.Info(callCtx, &pluginv1.InfoRequest{}); err != nil {
		return fail(fmt.Errorf("plugin %q: info: %w", in.spec.Name, err), false)
	}
	if _, err := proc.api.Configure(callCtx, in.configureRequest()); err != nil {
		// An invalid config is answered INVALID_ARGUMENT; restarting will
		// not help either way.
		return fail(fmt.Errorf("plugin %q: configure: %w", in.spec.Name, err), true)
	}
	// Ask again once configured: the subscription may depend on the config
	// (the command prefix, the chats a plugin watches).
	info, err := proc.api.Info(callCtx, &pluginv1.InfoRequest{})
	if err != nil {
		return fail(fmt.Errorf("plugin %q: info: %w", in.spec.Name, err), false)
	}
	m, err := newMatcher(in.spec.Filter, info.GetSubscription())
	if err != nil {
		return fail(fmt.Errorf("plugin %q: its subscription: %w", in.spec.Name, err), true)
	}
	in.noteInfo(info)

	r := newRun(in, nil, m, func() error {
		if proc.client.Exited() {
			return errors.New("the plugin process exited")
		}
		return nil
	})
	in.mu.Lock()
	if len(in.crashes) > 0 {
		r.window = 1
	}
	in.mu.Unlock()
	stream, err := proc.api.Session(r.ctx)
	if err != nil {
		r.cancel()
		return fail(fmt.Errorf("plugin %q: open session: %w", in.spec.Name, err), false)
	}
	r.stream = stream
	if err := in.resume(ctx, r); err != nil {
		r.cancel()
		return fail(err, false)
	}
	in.mu.Lock()
	in.cur, in.curProc = r, proc
	in.mu.Unlock()
	if in.spec.HealthInterval > 0 {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); in.healthLoop(r, proc) }()
	}
	in.log.Info("plugin running", zap.Int("pid", proc.pid), zap.String("version", info.GetVersion()))
	return r, proc, runEnd{}
}

// resume starts delivery from the feed's durable position, after writing
// any acks still pending, so only unacked events are redelivered.
func (in *instance) resume(ctx context.Context, r *run) error {
	if err := in.acker.flush(ctx); err != nil {
		return fmt.Errorf("plugin %q: ack pending events: %w", in.spec.Name, err)
	}
	pos, err := in.feed.Position(ctx)
	if err != nil {
		return fmt.Errorf("plugin %q: feed position: %w", in.spec.Name, err)
	}
	r.start(pos)
	return nil
}

func (in *instance) healthLoop(r *run, proc *process) {
	t := time.NewTicker(in.spec.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if err := proc.ping(r.ctx, max(in.spec.HealthInterval, 2*time.Second)); err != nil && r.ctx.Err() == nil {
			r.fail(fmt.Errorf("health check: %w", err), false)
			return
		}
	}
}

func (in *instance) noteInfo(info *pluginv1.PluginInfo) {
	in.mu.Lock()
	in.info = info
	in.mu.Unlock()
	in.setState(StateStarting, func(st *Status) { st.Version, st.SDK = info.GetVersion(), info.GetSdk() })
	var missing []string
	for _, a := range info.GetPermissions().GetActions() {
		if !in.perms.actions[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		in.log.Info("plugin asks for actions its config does not grant; they will be refused", zap.Strings("actions", missing))
	}
}

func (in *instance) configureRequest() *pluginv1.ConfigureRequest {
	granted := &pluginv1.Permissions{Actions: in.spec.Grants.Actions}
	for _, c := range in.spec.Grants.Chats {
		granted.Chats = append(granted.Chats, c.String())
	}
	return &pluginv1.ConfigureRequest{
		Instance: in.spec.Name, ConfigJson: in.spec.Config, Account: in.h.opts.Account,
		Me: in.h.opts.Me, CommandPrefix: in.spec.CommandPrefix, Granted: granted,
	}
}

// finish ends a run: gracefully (Shutdown, then go-plugin's close) or by
// killing the process group at once.
func (in *instance) finish(r *run, proc *process, graceful bool, reason string) {
	if graceful {
		r.shutdown(reason)
		proc.stop()
	} else {
		proc.kill()
	}
	r.close()
	in.mu.Lock()
	in.cur, in.curProc = nil, nil
	in.mu.Unlock()
	// The process is gone: never "running" without a PID, even for the
	// moment before the caller says what comes next.
	in.setState(StateStopped, func(st *Status) { st.PID = 0 })
	// Write the acks taken so far now, so a restart redelivers only what
	// the plugin did not handle.
	if err := in.acker.flush(context.WithoutCancel(in.hostCtx)); err != nil {
		in.log.Error("ack events in the feed", zap.Error(err))
	}
}

// failure records a crash, hang or start failure. It returns true when the
// instance is now quarantined.
func (in *instance) failure(ctx context.Context, end runEnd) bool {
	now := time.Now()
	in.mu.Lock()
	keep := in.crashes[:0]
	for _, t := range in.crashes {
		if now.Sub(t) < in.spec.Restart.Window {
			keep = append(keep, t)
		}
	}
	in.crashes = append(keep, now)
	n := len(in.crashes)
	in.st.Crashes = n
	in.st.LastError = end.err.Error()
	in.mu.Unlock()

	reason := ""
	switch {
	case end.quarantine:
		reason = end.err.Error()
	case n >= in.spec.Restart.MaxCrashes:
		reason = fmt.Sprintf("%d crashes within %s; last: %v", n, in.spec.Restart.Window, end.err)
	}
	if reason == "" {
		in.log.Warn("plugin failed; restarting after backoff", zap.Error(end.err), zap.Int("crashes_in_window", n))
		return false
	}
	in.setState(StateQuarantined, func(st *Status) { st.QuarantineReason = reason })
	in.log.Error("plugin quarantined: it stays stopped until enabled", zap.String("reason", reason))
	in.audit(ctx, AuditEntry{Kind: AuditQuarantined, Reason: reason})
	return true
}

func (in *instance) clearCrashes() {
	in.mu.Lock()
	in.crashes = nil
	in.st.Crashes = 0
	in.st.QuarantineReason = ""
	in.mu.Unlock()
}

// backoff waits before the next start. It returns true if a command put the
// instance on hold meanwhile.
func (in *instance) backoff(ctx context.Context) bool {
	in.mu.Lock()
	n := len(in.crashes)
	in.mu.Unlock()
	d := backoffDelay(in.spec.Restart, n)
	in.setState(StateBackoff, func(st *Status) { st.NextStart = time.Now().Add(d) })
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false // the loop notices ctx at the next start
		case <-t.C:
			return false
		case c := <-in.cmds:
			switch c.kind {
			case cmdRestart, cmdEnable:
				in.clearCrashes()
				close(c.done)
				return false
			case cmdDisable:
				in.setState(StateDisabled, nil)
				close(c.done)
				return true
			}
		}
	}
}

// backoffDelay is min·2^(crashes-1), capped at max, randomized by ±jitter.
func backoffDelay(p RestartPolicy, crashes int) time.Duration {
	d := p.BackoffMin
	for i := 1; i < crashes && d < p.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.BackoffMax)
	if p.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + p.Jitter*(2*rand.Float64()-1)))
	}
	return d
}

func (in *instance) audit(ctx context.Context, e AuditEntry) {
	if in.h.opts.Auditor == nil {
		return
	}
	e.Plugin = in.spec.Name
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	in.h.opts.Auditor.Record(ctx, e)
}
