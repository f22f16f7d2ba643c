package guard

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Sources of actions. Plugins and rules are "plugin:NAME" and "rule:NAME".
const (
	// SourceOwner is the account owner's own commands: exempt from the
	// forbidden-method list and from quiet hours, not from rate limits.
	SourceOwner = "owner"
	// SourceRunner is the runner itself (digests, notices).
	SourceRunner = "runner"
)

// PluginSource is the source string of a plugin's actions.
func PluginSource(name string) string { return "plugin:" + name }

// RuleSource is the source string of a YAML rule's actions.
func RuleSource(name string) string { return "rule:" + name }

// Executor runs an action; the action executor, the guard and anything that
// wraps them implement it.
type Executor interface {
	Execute(ctx context.Context, call action.Call) *pb.ActionResult
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, call action.Call) *pb.ActionResult

// Execute implements Executor.
func (f ExecutorFunc) Execute(ctx context.Context, call action.Call) *pb.ActionResult {
	return f(ctx, call)
}

// Deps are what the guard works with.
type Deps struct {
	// Store keeps the audit log, the durable queue (outbox), the daily
	// counters (plugin KV namespace "_guard") and the peers (who wrote
	// first, who is a contact). Required.
	Store store.Backend
	// Self returns the account's user id (0 while unknown); messages to
	// Saved Messages are never first contacts or spam.
	Self func() int64
	// Logger receives WARN lines for PEER_FLOOD, flood waits and refusals.
	Logger *zap.Logger
	// Notify tells the user something they must know (PEER_FLOOD, a pause
	// file). The runner wires it to Saved Messages. Optional; it is called
	// on its own goroutine.
	Notify func(ctx context.Context, text string)
	// Now is the clock for days, quiet hours and audit times. Default
	// time.Now. Rate limiting always uses the real clock.
	Now func() time.Time
}

// Options tune a Guard beyond the config.
type Options struct {
	// PauseFile, when set, pauses the guard while the file exists (for
	// example <storage>/PAUSED). It is checked at most every PauseFilePoll.
	PauseFile     string
	PauseFilePoll time.Duration // default 1s
	// PauseCheck, when set, is asked every PauseFilePoll whether a switch
	// outside this process holds writes (the fleet's pause key in Redis,
	// which any runner or redis-cli can set). An error counts as paused:
	// a switch that cannot be read is not assumed off.
	PauseCheck func(ctx context.Context) (reason string, paused bool, err error)
	// MaxQueueWait bounds how long a send may expect to wait for its rate
	// tokens; beyond it the send is refused THROTTLED with retry_after.
	// Pauses and quiet hours do not count. Default 15 minutes.
	MaxQueueWait time.Duration
	// Plugins are each plugin's own budgets by plugin name; a plugin not
	// listed gets limits.send.plugin and shares the account's daily counts.
	Plugins map[string]config.PluginLimits
	// ExecTimeout bounds one call to the wrapped executor once the action's
	// turn has come. Default 2 minutes.
	ExecTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.PauseFilePoll <= 0 {
		o.PauseFilePoll = time.Second
	}
	if o.MaxQueueWait <= 0 {
		o.MaxQueueWait = 15 * time.Minute
	}
	if o.ExecTimeout <= 0 {
		o.ExecTimeout = 2 * time.Minute
	}
}

// Guard is the policy layer. Create one per account with New, wrap the
// action executor with Wrap, call Recover once connected and Close at
// shutdown. It is safe for concurrent use.
type Guard struct {
	// pol is the policy in force; SetLimits swaps it while running.
	pol  atomic.Pointer[policy]
	deps Deps
	opts Options
	log  *zap.Logger
	now  func() time.Time
	kv   store.KV

	base    context.Context
	cancel  context.CancelFunc
	closing chan struct{}
	closed  atomic.Bool
	wg      sync.WaitGroup
	audit   *auditWriter
	dryRun  atomic.Bool
	seq     atomic.Uint64

	mu          sync.Mutex
	paused      bool
	pauseReason string
	pausedAt    time.Time
	resumed     chan struct{} // closed and replaced on every Resume
	pauseFile   struct {
		checked time.Time
		exists  bool
	}
	external struct { // PauseCheck's last answer
		paused bool
		reason string
		since  time.Time
	}
	lanes     map[string]*lane
	global    *rate.Limiter
	bySource  map[string]*rate.Limiter
	byChat    map[string]*rate.Limiter
	byGroup   map[string]*rate.Limiter
	slow      map[string]*slowMode
	sendHold  time.Time // a FLOOD_WAIT on sending: no sends before this
	dup       *dupTracker
	sameSends map[sameSend]int // identical sends per event delivery so far; see eventRandomID
	live      map[string]*item // queued or running, by outbox id
	throttles []AuditRecord    // most recent refusals, for Snapshot
	prunedDay string
}

type slowMode struct {
	seconds int
	next    time.Time
}

// New returns a guard enforcing cfg. The guard starts its audit writer;
// Close stops it.
func New(cfg config.Limits, deps Deps, opts Options) *Guard {
	opts.setDefaults()
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Self == nil {
		deps.Self = func() int64 { return 0 }
	}
	base, cancel := context.WithCancel(context.Background())
	g := &Guard{
		deps:     deps,
		opts:     opts,
		log:      deps.Logger,
		now:      deps.Now,
		kv:       deps.Store.PluginKV(kvNamespace),
		base:     base,
		cancel:   cancel,
		closing:  make(chan struct{}),
		resumed:  make(chan struct{}),
		lanes:    map[string]*lane{},
		bySource: map[string]*rate.Limiter{},
		byChat:   map[string]*rate.Limiter{},
		byGroup:  map[string]*rate.Limiter{},
		slow:     map[string]*slowMode{},
		dup:      newDupTracker(deps.Store.PluginKV(kvNamespace), deps.Logger),
		live:     map[string]*item{},
	}
	g.pol.Store(&policy{limits: cfg, plugins: opts.Plugins})
	g.global = newLimiter(cfg.Send.Global)
	g.dryRun.Store(cfg.DryRun)
	g.audit = newAuditWriter(deps.Store, deps.Logger)
	if opts.PauseCheck != nil {
		go g.pollExternalPause()
	}
	// Outbox ids must keep growing across restarts: start from the clock.
	g.seq.Store(uint64(time.Now().UnixNano()))
	return g
}

// policy is the configuration the guard enforces.
type policy struct {
	limits  config.Limits
	plugins map[string]config.PluginLimits
}

func (g *Guard) cfgNow() *config.Limits { return &g.pol.Load().limits }

func (g *Guard) pluginLimits() map[string]config.PluginLimits { return g.pol.Load().plugins }

// SetLimits puts new limits in force at once (a config reload). Buckets in
// use keep the tokens they have and refill at the new rate, so a reload is
// never a way to get a fresh burst; queued actions stay queued.
func (g *Guard) SetLimits(cfg config.Limits, plugins map[string]config.PluginLimits) {
	g.pol.Store(&policy{limits: cfg, plugins: plugins})
	g.dryRun.Store(cfg.DryRun)
	g.mu.Lock()
	defer g.mu.Unlock()
	retune := func(l *rate.Limiter, r config.RateLimit) {
		if l == nil {
			return
		}
		if r.Rate.IsZero() {
			l.SetLimit(rate.Inf)
			return
		}
		l.SetLimit(rate.Limit(r.Rate.PerSecond()))
		l.SetBurst(max(r.Burst, 1))
	}
	if g.global == nil {
		g.global = newLimiter(cfg.Send.Global)
	} else {
		retune(g.global, cfg.Send.Global)
	}
	for _, l := range g.byChat {
		retune(l, cfg.Send.PerChat)
	}
	for _, l := range g.byGroup {
		retune(l, cfg.Send.PerGroup)
	}
	for source, l := range g.bySource {
		budget := cfg.Send.Plugin
		if name, ok := sourcePlugin(source); ok {
			if pl, ok := plugins[name]; ok && !pl.Send.Rate.IsZero() {
				budget = pl.Send
			}
		}
		retune(l, budget)
	}
}

func newLimiter(r config.RateLimit) *rate.Limiter {
	if r.Rate.IsZero() {
		return nil
	}
	b := r.Burst
	if b < 1 {
		b = 1
	}
	return rate.NewLimiter(rate.Limit(r.Rate.PerSecond()), b)
}

// Close stops the guard: actions still waiting end with UNAVAILABLE (those
// in the durable queue stay there for the next Recover), in-flight calls
// finish, and the audit log is flushed. It waits at most until ctx ends.
func (g *Guard) Close(ctx context.Context) error {
	if !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(g.closing)
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("guard close: %w", ctx.Err())
	}
	g.cancel()
	if ferr := g.audit.close(ctx); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// FlushAudit waits until every audit record so far is written.
func (g *Guard) FlushAudit(ctx context.Context) error { return g.audit.flush(ctx) }

// DryRun reports whether dry-run mode is on.
func (g *Guard) DryRun() bool { return g.dryRun.Load() }

// SetDryRun turns dry-run mode on or off at run time.
func (g *Guard) SetDryRun(on bool) {
	if g.dryRun.Swap(on) != on {
		g.log.Warn("Dry-run mode changed", zap.Bool("dry_run", on))
	}
}

// Pause stops every outgoing write action until Resume: they wait, in
// order, without being lost. Reads still pass.
//
// The pause is kept in the account's storage until Resume: a restart, or
// the account's lease moving to another runner, does not lift it.
func (g *Guard) Pause(reason string) {
	if reason == "" {
		reason = "paused by the owner"
	}
	g.mu.Lock()
	was, before := g.paused, g.pauseReason
	g.paused, g.pauseReason = true, reason
	if !was {
		g.pausedAt = g.now()
	}
	since := g.pausedAt
	g.mu.Unlock()
	if !was || before != reason {
		g.storePause(&pausedRecord{Reason: reason, Since: since})
	}
	if !was {
		g.log.Warn("Guard paused: outgoing actions wait until resume", zap.String("reason", reason))
		g.audit.add(AuditRecord{Time: g.now(), Source: SourceOwner, Kind: "pause", Outcome: OutcomeOK, Reason: reason})
	}
}

// Resume lets waiting actions continue, in order.
func (g *Guard) Resume() {
	g.mu.Lock()
	was := g.paused
	g.paused, g.pauseReason = false, ""
	if was {
		close(g.resumed)
		g.resumed = make(chan struct{})
	}
	g.mu.Unlock()
	if was {
		g.storePause(nil)
		g.log.Info("Guard resumed")
		g.audit.add(AuditRecord{Time: g.now(), Source: SourceOwner, Kind: "resume", Outcome: OutcomeOK})
	}
}

// RefreshPause asks Options.PauseCheck now instead of at the next poll
// (after the switch was just set or cleared).
func (g *Guard) RefreshPause(ctx context.Context) { g.checkExternalPause(ctx) }

// checkExternalPause asks Options.PauseCheck once and applies the answer;
// a switch turned off wakes the waiting actions.
func (g *Guard) checkExternalPause(ctx context.Context) {
	if g.opts.PauseCheck == nil {
		return
	}
	reason, paused, err := g.opts.PauseCheck(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return // closing
		}
		paused, reason = true, "cannot read the fleet's pause switch: "+err.Error()
	}
	g.mu.Lock()
	was := g.external.paused
	changed := was != paused || (paused && reason != g.external.reason)
	if paused && !was {
		g.external.since = g.now()
	}
	g.external.paused, g.external.reason = paused, reason
	if was && !paused && !g.paused {
		close(g.resumed)
		g.resumed = make(chan struct{})
	}
	g.mu.Unlock()
	switch {
	case !changed:
	case paused:
		g.log.Warn("Paused from outside this runner: outgoing actions wait", zap.String("reason", reason))
		g.audit.add(AuditRecord{Time: g.now(), Source: SourceOwner, Kind: "pause", Outcome: OutcomeOK, Reason: "fleet switch: " + reason})
	default:
		g.log.Info("The outside pause was lifted")
		g.audit.add(AuditRecord{Time: g.now(), Source: SourceOwner, Kind: "resume", Outcome: OutcomeOK, Reason: "fleet switch"})
	}
}

// pollExternalPause runs checkExternalPause every PauseFilePoll until the
// guard closes.
func (g *Guard) pollExternalPause() {
	t := time.NewTicker(g.opts.PauseFilePoll)
	defer t.Stop()
	for {
		select {
		case <-g.base.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(g.base, g.opts.PauseFilePoll*5)
			g.checkExternalPause(ctx)
			cancel()
		}
	}
}

// pausedRecord is an owner pause as kept in storage.
type pausedRecord struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// storePause writes the pause (nil: its removal) to the account's storage.
func (g *Guard) storePause(p *pausedRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if p == nil {
		err = g.kv.Delete(ctx, keyPaused)
	} else {
		var b []byte
		if b, err = json.Marshal(p); err == nil {
			err = g.kv.Set(ctx, keyPaused, b)
		}
	}
	if err != nil {
		g.log.Error("The pause state could not be stored: a restart would not keep it", zap.Bool("paused", p != nil), zap.Error(err))
	}
}

// restorePause puts back an owner pause a previous run kept. When the
// storage cannot say, it pauses: a kill switch must never be lifted by
// a failed read.
func (g *Guard) restorePause(ctx context.Context) {
	v, err := g.kv.Get(ctx, keyPaused)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	var p pausedRecord
	if err == nil {
		err = json.Unmarshal(v, &p)
	}
	if err != nil {
		p = pausedRecord{Reason: "could not read whether the owner paused writes (" + err.Error() + "); `runner resume` lifts this", Since: g.now()}
	}
	g.mu.Lock()
	g.paused, g.pauseReason, g.pausedAt = true, p.Reason, p.Since
	g.mu.Unlock()
	g.log.Warn("Paused, as before the restart: outgoing actions wait until resume",
		zap.String("reason", p.Reason), zap.Time("since", p.Since))
}

// SetSlowMode records a chat's slow mode (0 turns it off); sends to the
// chat are then spaced by it. Results of get_chat that carry
// slow_mode_seconds are learnt the same way.
func (g *Guard) SetSlowMode(chat *pb.Peer, seconds int) {
	key := chatKey(chat)
	if key == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.slow[key]
	if seconds <= 0 {
		if s != nil && s.next.Before(time.Now()) {
			delete(g.slow, key)
		} else if s != nil {
			s.seconds = 0
		}
		return
	}
	if s == nil {
		s = &slowMode{}
		g.slow[key] = s
	}
	s.seconds = seconds
}

// Wrap returns next guarded by the policy.
func (g *Guard) Wrap(next Executor) *Guarded { return &Guarded{g: g, next: next} }

// Guarded is an executor behind the guard. It implements Executor.
type Guarded struct {
	g    *Guard
	next Executor
}

// Execute runs the action once the policy lets it, and returns its result
// or the reason it was held back. If ctx ends while the action waits, the
// action is dropped from the queue, unless limits.persist_waiting keeps it
// (the result then says so).
func (w *Guarded) Execute(ctx context.Context, call action.Call) *pb.ActionResult {
	res, it := w.g.submit(ctx, w.next, call)
	if res != nil {
		return res
	}
	if it == nil {
		return w.g.read(ctx, w.next, call)
	}
	select {
	case <-it.done:
		return it.result
	case <-ctx.Done():
		return w.g.abandon(it, ctx.Err())
	}
}

// Submit is Execute without blocking: the action takes its place in its
// chat's queue before Submit returns, so actions submitted one after the
// other reach Telegram in that order. The channel receives the result.
func (w *Guarded) Submit(ctx context.Context, call action.Call) <-chan *pb.ActionResult {
	out := make(chan *pb.ActionResult, 1)
	res, it := w.g.submit(ctx, w.next, call)
	switch {
	case res != nil:
		out <- res
	case it == nil:
		go func() { out <- w.g.read(ctx, w.next, call) }()
	default:
		go func() {
			select {
			case <-it.done:
				out <- it.result
			case <-ctx.Done():
				out <- w.g.abandon(it, ctx.Err())
			}
		}()
	}
	return out
}

// info is what the guard needs to know about an action.
type info struct {
	kind     string
	write    bool
	send     bool // counts against the send budgets
	chat     *pb.Peer
	chatKey  string
	group    bool // a basic group, supergroup or channel
	text     string
	reply    bool
	method   string // raw_invoke: the TL method
	class    string // daily-counted class, or classSend
	rawTL    []byte
	toUserID int64 // private chat target, for first contacts
}

func describe(a *pb.Action) info {
	in := info{kind: action.Kind(a), write: action.IsWrite(a), send: action.IsSend(a), chat: action.TargetChat(a)}
	in.chatKey = chatKey(in.chat)
	switch in.chat.GetKind() {
	case pb.PeerKind_PEER_KIND_CHAT, pb.PeerKind_PEER_KIND_CHANNEL:
		in.group = true
	case pb.PeerKind_PEER_KIND_USER:
		if in.send {
			in.toUserID = in.chat.GetId()
		}
	}
	switch k := a.GetKind().(type) {
	case *pb.Action_Send:
		in.text, in.reply = k.Send.GetText(), k.Send.GetReplyToMessageId() != 0
	case *pb.Action_SendMedia:
		in.text, in.reply = k.SendMedia.GetCaption(), k.SendMedia.GetReplyToMessageId() != 0
	case *pb.Action_Join:
		in.class = classJoin
	case *pb.Action_RawInvoke:
		in.rawTL = k.RawInvoke.GetRequestTl()
		in.method = MethodName(in.rawTL)
		in.class = methodClass(in.rawTL)
		if in.class == classSend {
			in.send = true
		}
	}
	return in
}

func chatKey(p *pb.Peer) string {
	if p == nil || p.GetId() == 0 {
		return ""
	}
	switch p.GetKind() {
	case pb.PeerKind_PEER_KIND_USER:
		return fmt.Sprintf("user:%d", p.GetId())
	case pb.PeerKind_PEER_KIND_CHAT:
		return fmt.Sprintf("chat:%d", p.GetId())
	case pb.PeerKind_PEER_KIND_CHANNEL:
		return fmt.Sprintf("channel:%d", p.GetId())
	}
	return ""
}

func sourcePlugin(source string) (string, bool) {
	return strings.CutPrefix(source, "plugin:")
}

// submit decides on an action: a final result (refused, dry run), nil and
// nil for a read to run now, or the queued item of a write.
func (g *Guard) submit(ctx context.Context, next Executor, call action.Call) (*pb.ActionResult, *item) {
	start := g.now()
	in := describe(call.Action)
	rec := AuditRecord{Time: start, Source: call.Source, Label: call.Label, Kind: in.kind, Chat: in.chatKey, Method: in.method, CauseSeq: call.CauseSeq}
	if in.kind == "raw_invoke" && call.Source != SourceOwner {
		if name, why := forbiddenReason(in.rawTL); why != "" {
			if name == "" {
				name = "raw_invoke"
			}
			return g.refuse(rec, pb.ErrorCode_ERROR_CODE_FORBIDDEN, 0,
				fmt.Sprintf("%s is never allowed: it %s", name, why), OutcomeDenied), nil
		}
	}
	if !in.write {
		return nil, nil
	}
	// Fix the random_id now, before the send can wait, be kept in the
	// durable queue or be retried: Telegram then drops a second copy.
	fixRandomID(call.Action, g.eventRandomID(call))
	dry := g.DryRun()
	if res := g.admit(ctx, call, in, rec, dry); res != nil {
		return res, nil
	}
	if dry {
		rec.Outcome = OutcomeDryRun
		rec.Reason = "dry run: not sent"
		g.audit.add(rec)
		return dryRunResult(call.Action, in, g.now()), nil
	}
	if wait := g.queueEstimate(call.Source, in); wait > g.opts.MaxQueueWait {
		return g.refuse(rec, pb.ErrorCode_ERROR_CODE_THROTTLED, wait, fmt.Sprintf(
			"%s already has so many sends queued that this one would wait about %s, more than the guard's maximum queue wait of %s",
			in.chatKey, wait.Round(time.Second), g.opts.MaxQueueWait), OutcomeThrottled), nil
	}
	it := g.newItem(call, in, false)
	if err := g.start(it, next); err != nil {
		return g.refuse(rec, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, 0, err.Error(), OutcomeError), nil
	}
	return nil, it
}

// queueEstimate is how long a new send to the chat would wait behind the
// ones already in its lane, at the chat's own pace. The owner's sends are
// never refused for it.
func (g *Guard) queueEstimate(source string, in info) time.Duration {
	if !in.send || in.chatKey == "" || source == SourceOwner {
		return 0
	}
	interval := g.cfgNow().Send.PerChat.Rate.Interval()
	if in.group && g.cfgNow().Send.PerGroup.Rate.Interval() > interval {
		interval = g.cfgNow().Send.PerGroup.Rate.Interval()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.slow[in.chatKey]; s != nil && time.Duration(s.seconds)*time.Second > interval {
		interval = time.Duration(s.seconds) * time.Second
	}
	l := g.lanes[in.chatKey]
	if l == nil {
		return 0
	}
	return time.Duration(len(l.waiters)) * interval
}

// read runs a read: never queued, paused or dry-run.
func (g *Guard) read(ctx context.Context, next Executor, call action.Call) *pb.ActionResult {
	start := g.now()
	in := describe(call.Action)
	res := next.Execute(ctx, call)
	g.learn(in, res)
	rec := AuditRecord{Time: start, Source: call.Source, Label: call.Label, Kind: in.kind, Chat: in.chatKey, Method: in.method,
		CauseSeq: call.CauseSeq, Duration: g.now().Sub(start)}
	g.finishRecord(&rec, res)
	g.audit.add(rec)
	return res
}

// refuse audits and returns a refusal.
func (g *Guard) refuse(rec AuditRecord, code pb.ErrorCode, retryAfter time.Duration, msg, outcome string) *pb.ActionResult {
	secs := int32(0)
	if retryAfter > 0 {
		secs = int32((retryAfter + time.Second - 1) / time.Second)
	}
	rec.Outcome = outcome
	rec.Code = codeName(code)
	rec.Reason = msg
	rec.RetryAfter = int(secs)
	g.audit.add(rec)
	if outcome == OutcomeThrottled || outcome == OutcomeDenied {
		g.log.Warn("Guard refused an action", zap.String("source", rec.Source), zap.String("kind", rec.Kind),
			zap.String("chat", rec.Chat), zap.String("reason", msg))
		g.mu.Lock()
		g.throttles = append(g.throttles, rec)
		if len(g.throttles) > maxRecentThrottles {
			g.throttles = g.throttles[len(g.throttles)-maxRecentThrottles:]
		}
		g.mu.Unlock()
	}
	return &pb.ActionResult{Error: &pb.Error{Code: code, Message: msg, RetryAfterSeconds: secs}}
}

const maxRecentThrottles = 20

func codeName(c pb.ErrorCode) string {
	return strings.TrimPrefix(c.String(), "ERROR_CODE_")
}

// finishRecord fills the outcome of rec from an executor result.
func (g *Guard) finishRecord(rec *AuditRecord, res *pb.ActionResult) {
	if e := res.GetError(); e != nil {
		rec.Outcome = OutcomeError
		rec.Code = codeName(e.GetCode())
		rec.RPCError = e.GetRpcError()
		rec.Reason = e.GetMessage()
		rec.RetryAfter = int(e.GetRetryAfterSeconds())
		return
	}
	rec.Outcome = OutcomeOK
	if m := res.GetMessage(); m != nil {
		rec.MessageID = m.GetId()
	}
}

// learn picks up slow mode from results that carry a chat.
func (g *Guard) learn(in info, res *pb.ActionResult) {
	if c := res.GetChat(); c != nil && c.GetPeer() != nil {
		g.SetSlowMode(c.GetPeer(), int(c.GetSlowModeSeconds()))
	}
}

// dryRunResult is what a write returns in dry-run mode: ok, and for sends
// a message with id 0 (real messages never have id 0).
func dryRunResult(a *pb.Action, in info, now time.Time) *pb.ActionResult {
	switch a.GetKind().(type) {
	case *pb.Action_Send, *pb.Action_SendMedia:
		return &pb.ActionResult{Result: &pb.ActionResult_Message{Message: &pb.Message{
			Id: 0, Chat: &pb.Chat{Peer: in.chat}, Outgoing: true, Date: now.Unix(), Text: in.text,
		}}}
	case *pb.Action_Forward:
		return &pb.ActionResult{Result: &pb.ActionResult_Messages{Messages: &pb.Messages{Messages: []*pb.Message{}}}}
	}
	return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}
}

// pauseState reports why writes of source must wait now, and until when
// (zero: until something wakes them). ok is false when they may go.
func (g *Guard) blocked(source string, send bool) (reason string, until time.Time, wake <-chan struct{}, ok bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return g.pauseReason, time.Time{}, g.resumed, true
	}
	if g.external.paused {
		return g.external.reason, now.Add(g.opts.PauseFilePoll), g.resumed, true
	}
	if g.opts.PauseFile != "" {
		if now.Sub(g.pauseFile.checked) >= g.opts.PauseFilePoll || now.Before(g.pauseFile.checked) {
			_, err := os.Stat(g.opts.PauseFile)
			exists := err == nil
			if exists != g.pauseFile.exists {
				if exists {
					g.log.Warn("Pause file present: outgoing actions wait until it is removed", zap.String("file", g.opts.PauseFile))
				} else {
					g.log.Info("Pause file removed: resuming", zap.String("file", g.opts.PauseFile))
				}
			}
			g.pauseFile.checked, g.pauseFile.exists = now, exists
		}
		if g.pauseFile.exists {
			return "pause file " + g.opts.PauseFile + " exists", now.Add(g.opts.PauseFilePoll), g.resumed, true
		}
	}
	if q := g.cfgNow().QuietHours; q != nil && source != SourceOwner {
		if end, in := quietEnd(q, now); in {
			return "quiet hours until " + end.Format("15:04 MST"), end, g.resumed, true
		}
	}
	if send && now.Before(g.sendHold) {
		return "Telegram asked to wait (FLOOD_WAIT) before sending again", g.sendHold, g.resumed, true
	}
	return "", time.Time{}, nil, false
}

// quietEnd reports whether now is within quiet hours and when they end.
func quietEnd(q *config.QuietHours, now time.Time) (time.Time, bool) {
	if q.From == q.To {
		return time.Time{}, false
	}
	loc := q.Location
	if loc == nil {
		loc = time.Local
	}
	t := now.In(loc)
	m := t.Hour()*60 + t.Minute()
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	at := func(dayOffset, minutes int) time.Time {
		return time.Date(midnight.Year(), midnight.Month(), midnight.Day()+dayOffset, minutes/60, minutes%60, 0, 0, loc)
	}
	if q.From < q.To {
		if m >= q.From && m < q.To {
			return at(0, q.To), true
		}
		return time.Time{}, false
	}
	// Wraps midnight, e.g. 23:00-07:00.
	if m >= q.From {
		return at(1, q.To), true
	}
	if m < q.To {
		return at(0, q.To), true
	}
	return time.Time{}, false
}

// errClosing ends waits when the guard closes.
var errClosing = errors.New("the runner is stopping")

// eventRandomID derives the random_id of a plugin's send caused by a
// journaled event from the plugin, the event and what is sent (0 when the
// call has no cause). The plugin feed delivers an event again when the
// runner stopped before the plugin's ack was stored (a crash, a lost
// lease); a plugin answering it again then makes the same send with the
// same id, and Telegram drops the copy (RANDOM_ID_DUPLICATE, taken as
// sent) instead of the chat getting the answer twice. The n-th identical
// send for one delivery of an event gets the n-th id, so a plugin may
// still send the same text twice on purpose, and a new plugin process
// the event is delivered to again (after a crash) starts from the first.
func (g *Guard) eventRandomID(call action.Call) int64 {
	if call.CauseSeq == 0 || call.Source == SourceOwner || call.Source == SourceRunner {
		return 0
	}
	a := call.Action
	switch k := a.GetKind().(type) {
	case *pb.Action_Send:
		if k.Send.GetRandomId() != 0 {
			return 0
		}
	case *pb.Action_Forward:
		if k.Forward.GetRandomId() != 0 {
			return 0
		}
	case *pb.Action_SendMedia:
		if k.SendMedia.GetRandomId() != 0 {
			return 0
		}
	default:
		return 0
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	if err != nil {
		return 0
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", call.Source, call.CauseSeq)
	h.Write(body)
	var key [32]byte
	h.Sum(key[:0])
	count := sameSend{key, call.Delivery}
	g.mu.Lock()
	if g.sameSends == nil || len(g.sameSends) > 100_000 {
		// A bound, not a cache: events that old are not delivered again.
		g.sameSends = map[sameSend]int{}
	}
	n := g.sameSends[count]
	g.sameSends[count] = n + 1
	g.mu.Unlock()
	fmt.Fprintf(h, "\x00%d", n)
	sum := h.Sum(nil)
	return int64(binary.LittleEndian.Uint64(sum[:8]) &^ (1 << 63))
}

// sameSend counts identical sends for one delivery of an event.
type sameSend struct {
	send     [32]byte
	delivery int
}

// fixRandomID gives a send, forward or media send a random_id if it has
// none: derived when derived is not 0, else drawn at random.
func fixRandomID(a *pb.Action, derived int64) {
	var b [8]byte
	draw := func() int64 {
		if derived != 0 {
			return derived
		}
		if _, err := crand.Read(b[:]); err != nil {
			return 0
		}
		return int64(binary.LittleEndian.Uint64(b[:]) &^ (1 << 63))
	}
	switch k := a.GetKind().(type) {
	case *pb.Action_Send:
		if k.Send.GetRandomId() == 0 {
			k.Send.RandomId = draw()
		}
	case *pb.Action_Forward:
		if k.Forward.GetRandomId() == 0 {
			// Leave room for one id per forwarded message.
			k.Forward.RandomId = draw() >> 8
		}
	case *pb.Action_SendMedia:
		if k.SendMedia.GetRandomId() == 0 {
			k.SendMedia.RandomId = draw()
		}
	}
}
