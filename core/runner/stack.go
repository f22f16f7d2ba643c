package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/event"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Stack is the standard action path and its consumers: the executor behind
// the guard, and the plugin host feeding every configured plugin from the
// journal. It is a Service.
type Stack struct {
	cfg   *config.Config
	store store.Backend
	log   *zap.Logger
	specs []pluginhost.Spec
	// SelfPath overrides the binary that serves builtin plugins.
	SelfPath string
	// PauseFile is where a pause survives restarts; NewStack sets it to
	// PAUSED in a bbolt store's directory. Empty: pauses last until exit.
	PauseFile string
	// PauseCheck, when set, is a pause switch outside this process (the
	// fleet's, in Redis) the guard polls; see guard.Options.PauseCheck.
	PauseCheck func(ctx context.Context) (reason string, paused bool, err error)

	account string
	started time.Time

	mu    sync.Mutex
	guard *guard.Guard
	exec  *guard.Guarded
	host  *pluginhost.Host
	ready chan struct{}

	latency atomic.Pointer[func(plugin string, d time.Duration)]
}

// ObserveLatency sets f to see each event a plugin handled, with its
// latency (sent to acked); ops feeds its histogram with it. f must not
// block.
func (s *Stack) ObserveLatency(f func(plugin string, d time.Duration)) { s.latency.Store(&f) }

// NewStack maps the config's plugins into host specs and checks them; it
// starts nothing.
func NewStack(cfg *config.Config, st store.Backend, log *zap.Logger) (*Stack, error) {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Stack{store: st, log: log, ready: make(chan struct{})}
	if bs, ok := store.BoltStore(st); ok {
		s.PauseFile = filepath.Join(bs.Dir(), "PAUSED")
	}
	cfg, specs, err := stackConfig(cfg)
	if err != nil {
		return nil, err
	}
	s.cfg, s.specs = cfg, specs
	return s, nil
}

// stackConfig adds the rules plugin, when the config has rules, and maps
// every plugin into a host spec. The caller's config is not changed.
func stackConfig(in *config.Config) (*config.Config, []pluginhost.Spec, error) {
	cfg := *in
	cfg.Plugins = slices.Clone(in.Plugins)
	// A config file cannot name a plugin "rules" when it has rules (Validate
	// refuses it); a config built in code may bring its own rules plugin.
	hasRules := slices.ContainsFunc(cfg.Plugins, func(p config.Plugin) bool { return p.Name == "rules" })
	if p, ok := config.RulesPlugin(&cfg); ok && !hasRules {
		cfg.Plugins = append(cfg.Plugins, p)
	}
	var specs []pluginhost.Spec
	for _, p := range cfg.Plugins {
		spec, err := PluginSpec(&cfg, p)
		if err != nil {
			return nil, nil, err
		}
		specs = append(specs, spec)
	}
	return &cfg, specs, nil
}

// ReloadFile loads and validates the config at path and applies it with
// Reload. A config with problems is rejected whole: the old one keeps
// running.
func (s *Stack) ReloadFile(ctx context.Context, path string, opts config.LoadOptions) (ReloadReport, error) {
	cfg, err := config.Load(ctx, path, opts)
	if err != nil {
		return ReloadReport{}, fmt.Errorf("reload rejected, the running config stays: %w", err)
	}
	return s.Reload(ctx, cfg)
}

// ReloadReport says what a reload changed.
type ReloadReport struct {
	Removed, Added, Restarted []string
	LimitsChanged             bool
}

// ErrRestartNeeded is returned by Reload for changes that cannot be applied
// to a live session (account, server, storage).
var ErrRestartNeeded = errors.New("this change needs a restart of the runner")

// Reload applies a new, already validated config to the running stack:
// the guard's limits at once, and the plugins (rules included) that were
// added, removed or changed; unchanged plugins and the MTProto session are
// not touched. A config that cannot be applied leaves the old one running.
func (s *Stack) Reload(ctx context.Context, in *config.Config) (ReloadReport, error) {
	var rep ReloadReport
	cfg, specs, err := stackConfig(in)
	if err != nil {
		return rep, err
	}
	s.mu.Lock()
	old := s.cfg
	g, host := s.guard, s.host
	s.mu.Unlock()
	if g == nil || host == nil {
		return rep, errors.New("the runner is not connected yet; try again in a moment")
	}
	var needRestart []string
	if cfg.Account.APIID != old.Account.APIID || cfg.Account.APIHash.Reveal() != old.Account.APIHash.Reveal() ||
		cfg.Account.Phone.Reveal() != old.Account.Phone.Reveal() {
		needRestart = append(needRestart, "account")
	}
	if cfg.Server.Type != old.Server.Type || cfg.Server.Address != old.Server.Address || cfg.Server.DC != old.Server.DC ||
		cfg.Server.Obfuscated != old.Server.Obfuscated {
		needRestart = append(needRestart, "server")
	}
	if cfg.Storage.Dir != old.Storage.Dir {
		needRestart = append(needRestart, "storage")
	}
	if len(needRestart) > 0 {
		return rep, fmt.Errorf("%s changed: %w; nothing was applied", strings.Join(needRestart, ", "), ErrRestartNeeded)
	}

	if !reflect.DeepEqual(cfg.Limits, old.Limits) || !reflect.DeepEqual(pluginLimitsOf(cfg), pluginLimitsOf(old)) {
		g.SetLimits(cfg.Limits, pluginLimitsOf(cfg))
		rep.LimitsChanged = true
	}
	s.mu.Lock()
	s.cfg, s.specs = cfg, specs
	s.mu.Unlock()
	rep.Removed, rep.Added, rep.Restarted, err = host.Apply(ctx, specs...)
	if err != nil {
		return rep, fmt.Errorf("apply plugins: %w", err)
	}
	for _, name := range rep.Removed {
		// A removed plugin's cursor would hold back journal compaction.
		if err := s.store.Journal().Unregister(ctx, "plugin:"+name); err != nil {
			s.log.Warn("Forget removed plugin's journal position", zap.String("plugin", name), zap.Error(err))
		}
	}
	s.log.Info("Config reloaded", zap.Strings("removed", rep.Removed), zap.Strings("added", rep.Added),
		zap.Strings("restarted", rep.Restarted), zap.Bool("limits_changed", rep.LimitsChanged))
	return rep, nil
}

// Ready is closed once the action path and the plugins are up.
func (s *Stack) Ready() <-chan struct{} { return s.ready }

// Guard returns the live guard, or nil before Run.
func (s *Stack) Guard() *guard.Guard {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.guard
}

// Host returns the live plugin host, or nil before Run.
func (s *Stack) Host() *pluginhost.Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

// Executor returns the guarded action executor, or nil before Run.
func (s *Stack) Executor() *guard.Guarded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exec
}

// Run implements Service.
func (s *Stack) Run(ctx context.Context, sess *Session) error {
	selfID := sess.Self.ID
	s.account, s.started = sess.Account, time.Now()
	self := func() int64 { return selfID }
	exec := action.New(sess.API, sess.Peers, self, action.Options{Logger: s.log.Named("action")})

	var guarded *guard.Guarded
	notify := func(ctx context.Context, text string) {
		if guarded == nil {
			return
		}
		res := guarded.Execute(ctx, action.Call{Source: "runner", Action: &pb.Action{Kind: &pb.Action_Send{
			Send: &pb.SendMessage{Chat: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: selfID}, Text: "tgrunner: " + text},
		}}})
		if res.GetError() != nil {
			s.log.Warn("Notify Saved Messages", zap.String("error", res.GetError().GetMessage()))
		}
	}
	g := guard.New(s.cfg.Limits, guard.Deps{
		Store:  s.store,
		Self:   self,
		Logger: s.log.Named("guard"),
		Notify: notify,
	}, guard.Options{
		PauseFile:  s.PauseFile,
		PauseCheck: s.PauseCheck,
		Plugins:    s.pluginLimits(),
	})
	guarded = g.Wrap(exec)
	if n, err := g.Recover(ctx, exec); err != nil {
		s.log.Warn("Resume waiting actions", zap.Error(err))
	} else if n > 0 {
		s.log.Info("Resumed waiting actions", zap.Int("count", n))
	}

	host, err := pluginhost.New(pluginhost.Options{
		Logger:   s.log.Named("plugins"),
		Feeds:    s.feed,
		Executor: hostExecutor{next: guarded, stack: s},
		Auditor:  hostAuditor{g: g},
		KV:       storeKV{st: s.store},
		Resolver: chatResolver{peers: sess.Peers, self: selfID},
		Account:  sess.Account,
		Me:       event.UserOf(sess.Self, selfID),
		SelfPath: s.SelfPath,
		DenyEnv:  s.cfg.SecretEnvNames(),
		ObserveLatency: func(plugin string, d time.Duration) {
			if f := s.latency.Load(); f != nil {
				(*f)(plugin, d)
			}
		},
	}, s.specs...)
	if err != nil {
		_ = g.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("plugins: %w", err)
	}
	s.mu.Lock()
	s.guard, s.exec, s.host = g, guarded, host
	s.mu.Unlock()

	if err := host.Start(ctx); err != nil {
		_ = g.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("start plugins: %w", err)
	}
	close(s.ready)
	<-ctx.Done()

	// Plugins get the Shutdown message and finish in-flight actions while
	// the client is still connected. After a lost lease there is nothing
	// to finish (the client is gone, another runner may be acting for the
	// account): plugins get a moment, then the runner lets go.
	drain := 10 * time.Second
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		drain = time.Second
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	errStop := host.Stop(stopCtx)
	errClose := g.Close(stopCtx)
	return errors.Join(errStop, errClose)
}

func (s *Stack) pluginLimits() map[string]config.PluginLimits { return pluginLimitsOf(s.cfg) }

func pluginLimitsOf(cfg *config.Config) map[string]config.PluginLimits {
	out := map[string]config.PluginLimits{}
	for _, p := range cfg.Plugins {
		out[p.Name] = p.Limits
	}
	return out
}

// feed gives each plugin instance its own durable journal consumer.
func (s *Stack) feed(ctx context.Context, instance string) (pluginhost.Feed, error) {
	c, err := s.store.Journal().Consumer(ctx, "plugin:"+instance, store.ConsumerOptions{})
	if err != nil {
		return nil, err
	}
	return journalFeed{c: c}, nil
}

type journalFeed struct{ c store.JournalConsumer }

func (f journalFeed) Read(ctx context.Context, after uint64, max int) ([]*pb.Event, error) {
	entries, err := f.c.Next(ctx, after, max)
	if err != nil {
		return nil, err
	}
	out := make([]*pb.Event, 0, len(entries))
	for _, e := range entries {
		ev, err := DecodeEntry(e)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

func (f journalFeed) Ack(ctx context.Context, seqs ...uint64) error { return f.c.Ack(ctx, seqs...) }

func (f journalFeed) Position(ctx context.Context) (uint64, error) {
	p, err := f.c.Position(ctx)
	return p.Low, err
}

type hostExecutor struct {
	next  *guard.Guarded
	stack *Stack
}

func (h hostExecutor) Execute(ctx context.Context, call pluginhost.Call) *pb.ActionResult {
	if res, ok := h.stack.control(ctx, call); ok {
		return res
	}
	return h.next.Execute(ctx, action.Call{Source: guard.PluginSource(call.Plugin), Action: call.Action, CauseSeq: call.CauseSeq, Delivery: call.Launch, Label: call.Label})
}

// control serves the runner-control actions (the host has already checked
// the runner_control permission). They never reach Telegram.
func (s *Stack) control(ctx context.Context, call pluginhost.Call) (*pb.ActionResult, bool) {
	g, host := s.Guard(), s.Host()
	switch k := call.Action.GetKind().(type) {
	case *pb.Action_RunnerStatus:
		return &pb.ActionResult{Result: &pb.ActionResult_RunnerStatus{RunnerStatus: s.Status(ctx)}}, true
	case *pb.Action_Pause:
		reason := k.Pause.GetReason()
		if reason == "" {
			reason = "paused by " + guard.PluginSource(call.Plugin)
		}
		g.Pause(reason)
		g.Record(guard.AuditRecord{Time: time.Now(), Source: guard.PluginSource(call.Plugin), Label: call.Label, Kind: "pause", Outcome: guard.OutcomeOK, Reason: reason})
		return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}, true
	case *pb.Action_Resume:
		g.Resume()
		g.Record(guard.AuditRecord{Time: time.Now(), Source: guard.PluginSource(call.Plugin), Label: call.Label, Kind: "resume", Outcome: guard.OutcomeOK})
		return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}, true
	case *pb.Action_ListPlugins:
		var infos []*pb.PluginInfo
		if host != nil {
			infos = host.Infos()
		}
		return &pb.ActionResult{Result: &pb.ActionResult_Plugins{Plugins: &pb.PluginList{Plugins: infos}}}, true
	}
	return nil, false
}

// Status describes the runner for the admin plugin, `runner status` and
// the status page.
func (s *Stack) Status(ctx context.Context) *pb.RunnerStatus {
	st := &pb.RunnerStatus{Account: s.account, UptimeSeconds: int64(time.Since(s.started).Seconds())}
	if g := s.Guard(); g != nil {
		snap := g.Snapshot(ctx)
		st.Paused, st.PauseReason, st.DryRun = snap.Paused, snap.PauseReason, snap.DryRun
	}
	if host := s.Host(); host != nil {
		for _, p := range host.Status() {
			st.Plugins = append(st.Plugins, &pb.PluginStatus{
				Name: p.Name, State: string(p.State), Version: p.Version,
				QueueDepth: int32(p.QueueDepth), InFlight: int32(p.InFlight), Restarts: int32(p.Restarts),
				LastError: p.LastError, Delivered: p.Delivered, Failed: p.Failed,
			})
		}
	}
	var lag uint64
	s.mu.Lock()
	plugins := s.cfg.Plugins
	s.mu.Unlock()
	for _, p := range plugins {
		c, err := s.store.Journal().Consumer(ctx, "plugin:"+p.Name, store.ConsumerOptions{})
		if err != nil {
			continue
		}
		if l, err := c.Lag(ctx); err == nil && l > lag {
			lag = l
		}
	}
	st.JournalLag = lag
	return st
}

type hostAuditor struct{ g *guard.Guard }

func (a hostAuditor) Record(_ context.Context, e pluginhost.AuditEntry) {
	rec := guard.AuditRecord{
		Time:     e.Time,
		Source:   guard.PluginSource(e.Plugin),
		Label:    e.Label,
		Kind:     e.Action,
		Chat:     e.Chat,
		Outcome:  guard.OutcomeDenied,
		Reason:   e.Reason,
		CauseSeq: e.CauseSeq,
	}
	switch e.Kind {
	case pluginhost.AuditDenied:
	case pluginhost.AuditRawInvoke:
		// Let through to the guard, which audits the call with its
		// method and outcome: a second record here would count it twice.
		return
	case pluginhost.AuditQuarantined:
		rec.Kind, rec.Outcome = "plugin_quarantined", guard.OutcomeError
	case pluginhost.AuditDropped:
		rec.Kind, rec.Outcome = "events_dropped", guard.OutcomeError
	default:
		rec.Kind, rec.Outcome, rec.Reason = string(e.Kind), guard.OutcomeError, e.Reason
	}
	a.g.Record(rec)
}

type storeKV struct{ st store.Backend }

func (k storeKV) Get(ctx context.Context, plugin, key string) ([]byte, bool, error) {
	v, err := k.st.PluginKV(plugin).Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

func (k storeKV) Set(ctx context.Context, plugin, key string, value []byte) error {
	return k.st.PluginKV(plugin).Set(ctx, key, value)
}

func (k storeKV) Delete(ctx context.Context, plugin, key string) error {
	err := k.st.PluginKV(plugin).Delete(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (k storeKV) List(ctx context.Context, plugin, prefix string) ([]string, error) {
	pairs, err := k.st.PluginKV(plugin).List(ctx, prefix, 0)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(pairs))
	for i, p := range pairs {
		keys[i] = p.Key
	}
	return keys, nil
}

type chatResolver struct {
	peers *peers.Cache
	self  int64
}

func (r chatResolver) Chat(_ context.Context, p *pb.Peer) (*pb.Chat, error) {
	switch p.GetKind() {
	case pb.PeerKind_PEER_KIND_USER:
		u := r.peers.User(p.Id)
		if u == nil && p.Id != r.self {
			return nil, fmt.Errorf("user:%d: %w", p.Id, pluginhost.ErrUnknownChat)
		}
		return event.ChatOfUser(u, p.Id, r.self), nil
	case pb.PeerKind_PEER_KIND_CHAT:
		c := r.peers.Chat(p.Id)
		if c == nil {
			return nil, fmt.Errorf("chat:%d: %w", p.Id, pluginhost.ErrUnknownChat)
		}
		return event.ChatOfChat(c, p.Id), nil
	case pb.PeerKind_PEER_KIND_CHANNEL:
		c := r.peers.Channel(p.Id)
		if c == nil {
			return nil, fmt.Errorf("channel:%d: %w", p.Id, pluginhost.ErrUnknownChat)
		}
		return event.ChatOfChannel(c, p.Id), nil
	}
	return nil, fmt.Errorf("%v: %w", p, pluginhost.ErrUnknownChat)
}

// PluginSpec maps one configured plugin onto the host's spec.
func PluginSpec(cfg *config.Config, p config.Plugin) (pluginhost.Spec, error) {
	spec := pluginhost.Spec{
		Name:          p.Name,
		Path:          p.Path,
		SHA256:        p.SHA256,
		Builtin:       p.Builtin,
		Args:          p.Args,
		EnvAllow:      p.Env,
		WorkDir:       filepath.Join(cfg.Storage.Dir, "plugins", p.Name),
		StartTimeout:  p.Timeouts.Start,
		EventDeadline: p.Timeouts.Event,
		Queue:         pluginhost.QueuePolicy{Size: p.Queue.Size, Overflow: pluginhost.Overflow(p.Queue.Overflow)},
		Restart: pluginhost.RestartPolicy{
			BackoffMin: p.Restart.BackoffMin,
			BackoffMax: p.Restart.BackoffMax,
			MaxCrashes: p.Restart.MaxCrashes,
			Window:     p.Restart.Window,
		},
		Disabled:      p.Disabled,
		CommandPrefix: p.CommandPrefix,
	}
	if p.Config != nil {
		var v any
		if err := p.Config.Decode(&v); err != nil {
			return spec, fmt.Errorf("plugins %s: config: %w", p.Name, err)
		}
		b, err := json.Marshal(jsonable(v))
		if err != nil {
			return spec, fmt.Errorf("plugins %s: config: %w", p.Name, err)
		}
		spec.Config = b
	}
	for _, a := range p.Permissions.Actions {
		spec.Grants.Actions = append(spec.Grants.Actions, string(a))
	}
	for _, c := range p.Permissions.Chats {
		spec.Grants.Chats = append(spec.Grants.Chats, hostChatRef(c))
	}
	for _, e := range p.Events {
		k, ok := pb.EventKind_value["EVENT_KIND_"+strings.ToUpper(e)]
		if !ok && e == "deleted_message" {
			k, ok = int32(pb.EventKind_EVENT_KIND_DELETED_MESSAGES), true
		}
		if !ok {
			return spec, fmt.Errorf("plugins %s: events: unknown kind %q", p.Name, e)
		}
		spec.Filter.Events = append(spec.Filter.Events, pb.EventKind(k))
	}
	for _, c := range p.Filter.Chats {
		spec.Filter.Chats = append(spec.Filter.Chats, hostChatRef(c))
	}
	switch p.Filter.Direction {
	case config.DirectionIncoming:
		spec.Filter.Direction = pb.Direction_DIRECTION_INCOMING
	case config.DirectionOutgoing:
		spec.Filter.Direction = pb.Direction_DIRECTION_OUTGOING
	}
	spec.Filter.Pattern = p.Filter.Pattern
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("plugins %s: %w", p.Name, err)
	}
	return spec, nil
}

// hostChatRef converts a config chat (Bot API style ids: users positive,
// basic groups negative, channels -100...) into the host's reference.
func hostChatRef(c config.ChatRef) pluginhost.ChatRef {
	switch {
	case c.Username != "":
		return pluginhost.ChatRef{Username: c.Username}
	case c.Kind != "":
		return pluginhost.ChatRef{Kind: pluginhost.ChatKind(c.Kind)}
	case c.ID > 0:
		return pluginhost.ChatRef{Peer: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: c.ID}}
	case c.ID < -1_000_000_000_000:
		return pluginhost.ChatRef{Peer: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: -c.ID - 1_000_000_000_000}}
	default:
		return pluginhost.ChatRef{Peer: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHAT, Id: -c.ID}}
	}
}

// jsonable turns YAML-decoded maps with interface keys into JSON-encodable
// ones.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	}
	return v
}

var _ = yaml.Node{}
