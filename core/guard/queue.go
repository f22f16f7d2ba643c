package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Item states: an abandoned item never runs; a running one is not stopped.
const (
	stateQueued int32 = iota
	stateRunning
	stateAbandoned
)

// item is one write action on its way through the queue.
type item struct {
	id        string
	seq       uint64
	call      action.Call
	in        info
	recovered bool
	enqueued  time.Time

	ctx    context.Context // ends when the caller gives up and nothing keeps the item
	cancel context.CancelFunc
	state  atomic.Int32
	turn   <-chan struct{} // closed when the item heads its chat's lane
	lane   *lane

	// mu orders persist against the end of the item: an item that is done
	// must never be written to the durable queue again.
	mu        sync.Mutex
	finished  bool
	persisted atomic.Bool

	done   chan struct{}
	result *pb.ActionResult
}

// lane orders the write actions of one chat: each goes after the previous
// one finished, so Telegram sees them in the order they were asked for.
type lane struct {
	key     string
	busy    bool
	waiters []chan struct{}
}

// enqueue takes the next place in the chat's lane; the returned channel is
// closed when it is this caller's turn.
func (g *Guard) enqueue(key string) (*lane, <-chan struct{}) {
	ch := make(chan struct{})
	if key == "" {
		close(ch)
		return nil, ch
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.lanes[key]
	if l == nil {
		l = &lane{key: key}
		g.lanes[key] = l
	}
	if !l.busy {
		l.busy = true
		close(ch)
	} else {
		l.waiters = append(l.waiters, ch)
	}
	return l, ch
}

// release hands the lane to the next waiter. turn is the releaser's own
// channel: if it was never closed the releaser gave up its place instead.
func (g *Guard) release(l *lane, turn <-chan struct{}) {
	if l == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-turn:
	default:
		// Never got the turn: leave the queue.
		for i, w := range l.waiters {
			if w == turn {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				break
			}
		}
		return
	}
	if len(l.waiters) > 0 {
		next := l.waiters[0]
		l.waiters = l.waiters[1:]
		close(next)
		return
	}
	l.busy = false
	delete(g.lanes, l.key)
}

func (g *Guard) newItem(call action.Call, in info, recovered bool) *item {
	seq := g.seq.Add(1)
	it := &item{
		id:        fmt.Sprintf("guard-%020d", seq),
		seq:       seq,
		call:      call,
		in:        in,
		recovered: recovered,
		enqueued:  g.now(),
		done:      make(chan struct{}),
	}
	it.ctx, it.cancel = context.WithCancel(g.base)
	return it
}

// start queues the item in its lane (synchronously, so lanes keep the
// callers' order) and runs it.
func (g *Guard) start(it *item, next Executor) error {
	if g.closed.Load() {
		return errClosing
	}
	it.lane, it.turn = g.enqueue(it.in.chatKey)
	g.mu.Lock()
	g.live[it.id] = it
	g.mu.Unlock()
	g.wg.Add(1)
	go g.run(it, next)
	return nil
}

// abandon answers a caller that stopped waiting. A durably queued item
// keeps going; otherwise it is cancelled unless already running.
func (g *Guard) abandon(it *item, cause error) *pb.ActionResult {
	code := pb.ErrorCode_ERROR_CODE_UNAVAILABLE
	if errors.Is(cause, context.DeadlineExceeded) {
		code = pb.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED
	}
	select {
	case <-it.done:
		return it.result
	default:
	}
	if g.cfgNow().PersistWaiting {
		it.persist(g)
		return action.ErrorResult(code, fmt.Sprintf(
			"the caller stopped waiting (%v), but the action stays queued as %s and will still be done; do not send it again", cause, it.id))
	}
	if it.state.CompareAndSwap(stateQueued, stateAbandoned) {
		it.cancel()
		return action.ErrorResult(code, fmt.Sprintf("the caller stopped waiting (%v) while the action was queued: it was not done", cause))
	}
	<-it.done
	return it.result
}

// persist writes the item to the durable queue once, before it waits.
func (it *item) persist(g *Guard) {
	if !g.cfgNow().PersistWaiting || it.recovered {
		return
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.finished || it.persisted.Load() {
		return
	}
	data, err := encodeQueued(it)
	if err == nil {
		err = g.deps.Store.Outbox().Put(context.WithoutCancel(it.ctx), it.id, data)
	}
	if err != nil {
		g.log.Error("Could not keep a waiting action in the durable queue; it waits in memory only",
			zap.String("id", it.id), zap.Error(err))
		return
	}
	it.persisted.Store(true)
}

func (it *item) unpersist(g *Guard) {
	if !it.persisted.Load() && !it.recovered {
		return
	}
	if err := g.deps.Store.Outbox().Delete(context.Background(), it.id); err != nil {
		g.log.Error("Could not remove a done action from the durable queue; it may be done again after a restart",
			zap.String("id", it.id), zap.Error(err))
	}
}

// run takes the item through its lane, the pause gate, the rate budgets,
// the executor and flood-wait retries.
func (g *Guard) run(it *item, next Executor) {
	defer g.wg.Done()
	rec := AuditRecord{Source: it.call.Source, Label: it.call.Label, Kind: it.in.kind, Chat: it.in.chatKey, Method: it.in.method,
		CauseSeq: it.call.CauseSeq}
	keep := false // stays in the durable queue for the next Recover
	defer func() {
		g.release(it.lane, it.turn)
		it.mu.Lock()
		it.finished = true
		it.mu.Unlock()
		if !keep {
			it.unpersist(g)
		}
		g.mu.Lock()
		delete(g.live, it.id)
		g.mu.Unlock()
		close(it.done)
	}()
	// Only actions that had to wait carry their durable queue id.
	withID := func(r AuditRecord) AuditRecord {
		if it.persisted.Load() || it.recovered {
			r.ID = it.id
		}
		return r
	}
	stop := func(err error) {
		keep = it.persisted.Load() || it.recovered
		msg := "the action was not done: " + err.Error()
		if keep {
			msg = fmt.Sprintf("%s; it stays queued as %s and will be done after the runner restarts", err.Error(), it.id)
		}
		rec.Time = g.now()
		rec.Wait = rec.Time.Sub(it.enqueued)
		if it.state.Load() == stateAbandoned {
			rec.Outcome, rec.Reason = OutcomeError, "the caller stopped waiting; not done"
		} else if keep {
			rec.Outcome, rec.Reason = OutcomeQueued, msg
		} else {
			rec.Outcome, rec.Code, rec.Reason = OutcomeError, codeName(pb.ErrorCode_ERROR_CODE_UNAVAILABLE), msg
		}
		g.audit.add(withID(rec))
		it.result = action.ErrorResult(pb.ErrorCode_ERROR_CODE_UNAVAILABLE, msg)
	}

	// Our turn in the chat's lane.
	select {
	case <-it.turn:
	default:
		it.persist(g)
		select {
		case <-it.turn:
		case <-it.ctx.Done():
			stop(it.ctx.Err())
			return
		case <-g.closing:
			stop(errClosing)
			return
		}
	}

	// paid is set once the action has gone out under its rate tokens: a
	// retry after FLOOD_WAIT does not pay again (the wait was the
	// throttle), so it cannot be refused for lack of budget and dropped.
	paid := false
	for {
		if err := g.waitOpen(it); err != nil {
			stop(err)
			return
		}
		delay, undo, throttle := time.Duration(0), func() {}, ""
		if !paid {
			delay, undo, throttle = g.reserve(it)
		}
		if throttle != "" {
			rec.Time = g.now()
			rec.Wait = rec.Time.Sub(it.enqueued)
			it.result = g.refuse(withID(rec), pb.ErrorCode_ERROR_CODE_THROTTLED, delay, throttle, OutcomeThrottled)
			return
		}
		if delay > 0 {
			it.persist(g)
			if err := g.sleep(it, delay); err != nil {
				undo()
				stop(err)
				return
			}
		}
		// A pause or a flood hold may have begun while we slept.
		if _, _, _, blocked := g.blocked(it.call.Source, it.in.send); blocked {
			undo()
			continue
		}
		if !it.state.CompareAndSwap(stateQueued, stateRunning) {
			undo()
			stop(context.Canceled)
			return
		}
		began := g.now()
		paid = true
		ctx, cancel := context.WithTimeout(context.WithoutCancel(it.ctx), g.opts.ExecTimeout)
		res := next.Execute(ctx, it.call)
		cancel()
		g.learn(it.in, res)
		g.afterSend(it, res)

		rec.Time = began
		rec.Wait = began.Sub(it.enqueued)
		rec.Duration = g.now().Sub(began)
		e := res.GetError()
		if e.GetCode() == pb.ErrorCode_ERROR_CODE_FLOOD_WAIT {
			wait := time.Duration(e.GetRetryAfterSeconds()) * time.Second
			if wait < time.Second {
				wait = time.Second
			}
			g.floodWait(it, e, wait)
			if g.cfgNow().FloodWait.OnExceed != config.OnExceedFail {
				// Keep it and try again after the wait.
				r := rec
				r.Outcome = OutcomeQueued
				r.Code, r.RPCError, r.RetryAfter = codeName(e.GetCode()), e.GetRpcError(), int(wait/time.Second)
				r.Reason = fmt.Sprintf("Telegram asked to wait %s (%s); the action is kept and retried after the wait", wait, e.GetRpcError())
				it.persist(g)
				g.audit.add(withID(r))
				it.state.Store(stateQueued)
				if err := g.sleep(it, wait); err != nil {
					stop(err)
					return
				}
				continue
			}
		}
		if e.GetRpcError() == "PEER_FLOOD" {
			g.peerFlood(it)
		}
		g.finishRecord(&rec, res)
		g.audit.add(withID(rec))
		it.result = res
		return
	}
}

// waitOpen blocks while writes are paused (owner pause, pause file, quiet
// hours, a flood hold on sends).
func (g *Guard) waitOpen(it *item) error {
	for {
		_, until, wake, blocked := g.blocked(it.call.Source, it.in.send)
		if !blocked {
			return nil
		}
		it.persist(g)
		var timer *time.Timer
		var fire <-chan time.Time
		if !until.IsZero() {
			d := until.Sub(g.now())
			if d < time.Millisecond {
				d = time.Millisecond
			}
			timer = time.NewTimer(d)
			fire = timer.C
		}
		var err error
		select {
		case <-wake:
		case <-fire:
		case <-it.ctx.Done():
			err = it.ctx.Err()
		case <-g.closing:
			err = errClosing
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

func (g *Guard) sleep(it *item, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-it.ctx.Done():
		return it.ctx.Err()
	case <-g.closing:
		return errClosing
	}
}

// reserve takes the item's tokens from every send budget that applies and
// returns how long to wait for them, and how to give them back. A non-empty
// throttle refuses the item: its wait would exceed MaxQueueWait.
func (g *Guard) reserve(it *item) (delay time.Duration, undo func(), throttle string) {
	undo = func() {}
	if !it.in.send {
		return 0, undo, ""
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	type named struct {
		name string
		lim  *rate.Limiter
	}
	lims := []named{{"global send rate (limits.send.global)", g.global}}
	if src, lim := g.sourceLimiterLocked(it.call.Source); lim != nil {
		lims = append(lims, named{src, lim})
	}
	if it.in.chatKey != "" {
		lims = append(lims, named{"per-chat send rate (limits.send.per_chat)", g.chatLimiterLocked(g.byChat, it.in.chatKey, g.cfgNow().Send.PerChat)})
		if it.in.group {
			lims = append(lims, named{"group send rate (limits.send.per_group)", g.chatLimiterLocked(g.byGroup, it.in.chatKey, g.cfgNow().Send.PerGroup)})
		}
	}
	var rs []*rate.Reservation
	worst := ""
	for _, l := range lims {
		if l.lim == nil {
			continue
		}
		r := l.lim.ReserveN(now, 1)
		if !r.OK() {
			continue
		}
		rs = append(rs, r)
		if d := r.DelayFrom(now); d > delay {
			delay, worst = d, l.name
		}
	}
	if s := g.slow[it.in.chatKey]; s != nil && s.next.After(now) {
		if d := s.next.Sub(now); d > delay {
			delay, worst = d, "the chat's slow mode"
		}
	}
	undo = func() {
		at := time.Now()
		for _, r := range rs {
			r.CancelAt(at)
		}
	}
	if delay > g.opts.MaxQueueWait && !it.recovered && it.call.Source != SourceOwner {
		undo()
		return delay, func() {}, fmt.Sprintf("the %s would make this send wait %s, more than the guard's maximum queue wait of %s",
			worst, delay.Round(time.Second), g.opts.MaxQueueWait)
	}
	return delay, undo, ""
}

func (g *Guard) sourceLimiterLocked(source string) (string, *rate.Limiter) {
	var budget config.RateLimit
	switch {
	case source == SourceOwner || source == SourceRunner:
		return "", nil
	default:
		budget = g.cfgNow().Send.Plugin
		if name, ok := sourcePlugin(source); ok {
			if pl, ok := g.pluginLimits()[name]; ok && !pl.Send.Rate.IsZero() {
				budget = pl.Send
			}
		}
	}
	lim, ok := g.bySource[source]
	if !ok {
		lim = newLimiter(budget)
		g.bySource[source] = lim
	}
	return source + " send budget (plugin limits.send)", lim
}

func (g *Guard) chatLimiterLocked(m map[string]*rate.Limiter, key string, budget config.RateLimit) *rate.Limiter {
	lim, ok := m[key]
	if !ok {
		if len(m) > 4096 {
			// Forget chats whose bucket is full again: a fresh one is the same.
			now := time.Now()
			for k, l := range m {
				if l == nil || l.TokensAt(now) >= float64(l.Burst()) {
					delete(m, k)
				}
			}
		}
		lim = newLimiter(budget)
		m[key] = lim
	}
	return lim
}

// afterSend starts a known slow mode's interval after a successful send.
func (g *Guard) afterSend(it *item, res *pb.ActionResult) {
	if !it.in.send || it.in.chatKey == "" || res.GetError() != nil {
		return
	}
	g.mu.Lock()
	if s := g.slow[it.in.chatKey]; s != nil && s.seconds > 0 {
		s.next = time.Now().Add(time.Duration(s.seconds) * time.Second)
	}
	g.mu.Unlock()
}

// floodWait records a wait the floodwait.Waiter gave up on: slow mode
// holds the chat, a FLOOD_WAIT on sending holds every send.
func (g *Guard) floodWait(it *item, e *pb.Error, wait time.Duration) {
	until := time.Now().Add(wait)
	g.mu.Lock()
	switch {
	case e.GetRpcError() == "SLOWMODE_WAIT" && it.in.chatKey != "":
		s := g.slow[it.in.chatKey]
		if s == nil {
			s = &slowMode{}
			g.slow[it.in.chatKey] = s
		}
		if until.After(s.next) {
			s.next = until
		}
	case it.in.send:
		if until.After(g.sendHold) {
			g.sendHold = until
		}
	}
	g.mu.Unlock()
	g.log.Warn("Telegram asked to wait longer than limits.flood_wait.max_wait",
		zap.String("source", it.call.Source), zap.String("kind", it.in.kind), zap.String("chat", it.in.chatKey),
		zap.Duration("wait", wait), zap.String("rpc_error", e.GetRpcError()),
		zap.String("on_exceed", g.cfgNow().FloodWait.OnExceed))
}

// queued is an item as kept in the durable queue.
type queued struct {
	ID       string    `json:"id"`
	Seq      uint64    `json:"seq"`
	Source   string    `json:"source"`
	Label    string    `json:"label,omitempty"`
	CauseSeq uint64    `json:"cause_seq,omitempty"`
	Action   []byte    `json:"action"` // protobuf
	Enqueued time.Time `json:"enqueued"`
}

func encodeQueued(it *item) ([]byte, error) {
	a, err := proto.Marshal(it.call.Action)
	if err != nil {
		return nil, fmt.Errorf("encode queued action: %w", err)
	}
	return json.Marshal(queued{ID: it.id, Seq: it.seq, Source: it.call.Source, Label: it.call.Label, CauseSeq: it.call.CauseSeq, Action: a, Enqueued: it.enqueued})
}

// Recover resumes the actions a previous run left in the durable queue,
// in the order they were first asked for, through next (the unguarded
// executor). They were admitted before, so they only wait for pauses and
// rate budgets. It returns how many it resumed; their results go to the
// audit log. Call it once the account is connected and before plugins
// start acting, so the old actions keep their place. An owner pause the
// previous run kept is put back first, so they wait for it too.
func (g *Guard) Recover(ctx context.Context, next Executor) (int, error) {
	g.restorePause(ctx)
	g.checkExternalPause(ctx)
	list, err := g.deps.Store.Outbox().List(ctx)
	if err != nil {
		return 0, fmt.Errorf("recover waiting actions: %w", err)
	}
	var items []queued
	for _, qa := range list {
		var q queued
		if err := json.Unmarshal(qa.Data, &q); err != nil || q.ID != qa.ID {
			// Not ours (another component's outbox entry).
			continue
		}
		items = append(items, q)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Seq < items[j].Seq })
	n := 0
	for _, q := range items {
		g.mu.Lock()
		_, running := g.live[q.ID]
		g.mu.Unlock()
		if running {
			continue
		}
		a := &pb.Action{}
		if err := proto.Unmarshal(q.Action, a); err != nil {
			g.log.Error("A queued action cannot be decoded; it is left in the durable queue", zap.String("id", q.ID), zap.Error(err))
			continue
		}
		call := action.Call{Source: q.Source, Label: q.Label, Action: a, CauseSeq: q.CauseSeq}
		it := g.newItem(call, describe(a), true)
		it.id, it.seq, it.enqueued = q.ID, q.Seq, q.Enqueued
		if g.seq.Load() < q.Seq {
			g.seq.Store(q.Seq)
		}
		if err := g.start(it, next); err != nil {
			return n, fmt.Errorf("recover waiting actions: %w", err)
		}
		n++
	}
	if n > 0 {
		g.log.Info("Resumed actions left waiting by the previous run", zap.Int("count", n))
	}
	return n, nil
}
