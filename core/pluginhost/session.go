package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// sessionStream is the host's end of the Session stream. The gRPC client
// stream implements it; so does the in-process pipe the benchmarks use as
// the floor.
type sessionStream interface {
	Send(*pluginv1.HostMessage) error
	Recv() (*pluginv1.PluginMessage, error)
}

// runEnd is why a run ended.
type runEnd struct {
	err error
	// quarantine: restarting cannot help (or the policy says so).
	quarantine bool
}

// run is one live session with one plugin process: it reads the feed into
// the bounded queue, keeps up to Window events in flight, takes acks and
// serves action calls.
type run struct {
	in      *instance
	launch  int // which process of the instance this run talks to, from 1
	stream  sessionStream
	match   *matcher
	alive   func() error // nil when alive; checks the process
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sendMu     sync.Mutex
	sendClosed bool

	pumpMu    sync.Mutex
	pumpAgain atomic.Bool
	batch     []*pluginv1.Event // guarded by pumpMu

	mu       sync.Mutex
	queue    []*pluginv1.Event // read from the feed, not yet sent
	inflight map[uint64]time.Time
	// window is the current limit of events in flight. After a crash it
	// starts at 1 and grows by each ack up to Spec.Window (slow start), so
	// a plugin that dies on some event makes progress: the first event
	// after a restart is acked before the next is sent.
	window       int
	shuttingDown bool
	sendWake     chan struct{}
	readWake     chan struct{}
	sessionEnded chan struct{} // closed when the plugin ends the stream

	endOnce sync.Once
	ended   chan runEnd // receives the first failure
	actions atomic.Int32

	droppedSinceLog atomic.Uint64
	lastDropLog     atomic.Int64
}

func newRun(in *instance, stream sessionStream, m *matcher, alive func() error) *run {
	r := &run{
		in: in, stream: stream, match: m, alive: alive, started: time.Now(),
		inflight:     make(map[uint64]time.Time, in.spec.Window),
		window:       in.spec.Window,
		sendWake:     make(chan struct{}, 1),
		readWake:     make(chan struct{}, 1),
		sessionEnded: make(chan struct{}),
		ended:        make(chan runEnd, 1),
	}
	in.mu.Lock()
	r.launch = in.launches
	in.mu.Unlock()
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// start launches the run's goroutines, delivering from seq after.
func (r *run) start(after uint64) {
	r.wg.Add(4)
	go func() { defer r.wg.Done(); r.read(after) }()
	go func() { defer r.wg.Done(); r.send() }()
	go func() { defer r.wg.Done(); r.receive() }()
	go func() { defer r.wg.Done(); r.watch() }()
}

// fail ends the run with the first reason given.
func (r *run) fail(err error, quarantine bool) {
	r.endOnce.Do(func() {
		r.ended <- runEnd{err: err, quarantine: quarantine}
		r.cancel()
	})
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// readBatch is the most events taken from the feed at once.
const readBatch = 256

func (r *run) read(after uint64) {
	spec := &r.in.spec
	cursor := after
	for r.ctx.Err() == nil {
		n := readBatch
		if spec.Queue.Overflow == OverflowBlock {
			// Block: stop reading the feed while the queue is full; the
			// journal keeps the events.
			r.mu.Lock()
			room := spec.Queue.Size - len(r.queue)
			r.mu.Unlock()
			if room <= 0 {
				select {
				case <-r.ctx.Done():
					return
				case <-r.readWake:
				}
				continue
			}
			n = min(n, room)
		}
		evs, err := r.in.feed.Read(r.ctx, cursor, n)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			// The feed is the runner's; its failure is not the plugin's.
			r.in.log.Error("read plugin feed; retrying", zap.Error(err))
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		var skipped []uint64
		for _, ev := range evs {
			cursor = max(cursor, ev.GetSeq())
			if !r.match.match(ev) {
				skipped = append(skipped, ev.GetSeq())
				continue
			}
			if !r.enqueue(ev) {
				return
			}
		}
		if len(skipped) > 0 {
			r.in.filtered.Add(uint64(len(skipped)))
			r.in.acker.add(skipped...)
		}
		r.pump()
	}
}

// enqueue applies the overflow policy; false ends reading.
func (r *run) enqueue(ev *pluginv1.Event) bool {
	spec := &r.in.spec
	r.mu.Lock()
	if len(r.queue) < spec.Queue.Size {
		r.queue = append(r.queue, ev)
		r.mu.Unlock()
		return true
	}
	switch spec.Queue.Overflow {
	case OverflowDropOldest:
		old := r.queue[0]
		r.queue[0] = nil
		r.queue = append(r.queue[1:], ev)
		r.mu.Unlock()
		r.in.dropped.Add(1)
		r.in.acker.add(old.GetSeq())
		r.noteDrop()
		return true
	case OverflowQuarantine:
		r.mu.Unlock()
		r.fail(fmt.Errorf("queue overflow: %d events waiting (queue.overflow is quarantine)", spec.Queue.Size), true)
		return false
	default: // block: read never takes more than there is room for
		r.queue = append(r.queue, ev)
		r.mu.Unlock()
		return true
	}
}

// noteDrop logs dropped events at most once a second, with the count.
func (r *run) noteDrop() {
	n := r.droppedSinceLog.Add(1)
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last < int64(time.Second) || !r.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	n = r.droppedSinceLog.Swap(0)
	r.in.log.Warn("plugin falls behind: dropped the oldest queued events (queue.overflow is drop_oldest)",
		zap.Uint64("dropped", n), zap.Uint64("dropped_total", r.in.dropped.Load()))
	r.in.audit(context.Background(), AuditEntry{Kind: AuditDropped, Reason: fmt.Sprintf("dropped %d events: queue full", n)})
}

// send pumps the queue whenever acks free room in the window.
func (r *run) send() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.sendWake:
			r.pump()
		}
	}
}

// pump sends queued events while the window allows. The reader calls it
// directly after enqueuing (no goroutine hand-off on the common path) and
// the send goroutine after acks; pumpMu keeps the events in seq order, and
// pumpAgain makes the pumper in charge loop when another caller found it
// busy (set before TryLock, so no wake-up is lost).
func (r *run) pump() {
	for {
		r.pumpAgain.Store(true)
		if !r.pumpMu.TryLock() {
			return
		}
		r.pumpAgain.Store(false)
		err := r.drain()
		r.pumpMu.Unlock()
		if err != nil {
			r.fail(err, false)
			return
		}
		if !r.pumpAgain.Load() {
			return
		}
	}
}

func (r *run) drain() error {
	for {
		r.mu.Lock()
		for !r.shuttingDown && len(r.queue) > 0 && len(r.inflight) < r.window {
			ev := r.queue[0]
			r.queue[0] = nil
			r.queue = r.queue[1:]
			r.inflight[ev.GetSeq()] = time.Now()
			r.batch = append(r.batch, ev)
		}
		r.mu.Unlock()
		if len(r.batch) == 0 {
			return nil
		}
		wake(r.readWake)
		for i, ev := range r.batch {
			if err := r.sendMsg(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Event{Event: r.match.forPlugin(ev)}}); err != nil {
				return fmt.Errorf("send event %d: %w", ev.GetSeq(), err)
			}
			r.batch[i] = nil
		}
		r.batch = r.batch[:0]
	}
}

func (r *run) sendMsg(m *pluginv1.HostMessage) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if r.sendClosed {
		return errors.New("session closed")
	}
	return r.stream.Send(m)
}

func (r *run) receive() {
	for {
		msg, err := r.stream.Recv()
		if err != nil {
			r.mu.Lock()
			shutting := r.shuttingDown
			r.mu.Unlock()
			if shutting && errors.Is(err, io.EOF) {
				close(r.sessionEnded)
				return
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the plugin closed its session")
			}
			r.fail(fmt.Errorf("session: %w", err), false)
			return
		}
		switch m := msg.GetMsg().(type) {
		case *pluginv1.PluginMessage_Ack:
			r.acked(m.Ack)
		case *pluginv1.PluginMessage_Action:
			r.action(m.Action)
		}
	}
}

// acked takes an ack from the plugin. Only seqs actually in flight are
// passed on to the feed: a plugin cannot ack events it never received.
func (r *run) acked(a *pluginv1.Ack) {
	now := time.Now()
	seqs := make([]uint64, 0, len(a.GetSeqs()))
	lat := make([]time.Duration, 0, len(a.GetSeqs()))
	r.mu.Lock()
	for _, s := range a.GetSeqs() {
		if t, ok := r.inflight[s]; ok {
			delete(r.inflight, s)
			seqs = append(seqs, s)
			lat = append(lat, now.Sub(t))
		}
	}
	r.window = min(r.window+len(seqs), r.in.spec.Window)
	r.mu.Unlock()
	if n := len(a.GetSeqs()) - len(seqs); n > 0 {
		r.in.log.Warn("plugin acked events it has not been sent; ignored", zap.Int("count", n))
	}
	if len(seqs) == 0 {
		return
	}
	r.in.latency.add(lat...)
	if f := r.in.h.opts.ObserveLatency; f != nil {
		for _, d := range lat {
			f(r.in.spec.Name, d)
		}
	}
	if a.GetError() != "" {
		r.in.failed.Add(uint64(len(seqs)))
		r.in.log.Warn("plugin failed to handle events", zap.Uint64s("seqs", seqs), zap.String("error", a.GetError()))
	} else {
		r.in.delivered.Add(uint64(len(seqs)))
	}
	r.in.acker.add(seqs...)
	wake(r.sendWake)
}

func (r *run) action(req *pluginv1.ActionRequest) {
	if int(r.actions.Add(1)) > r.in.spec.MaxActionsInFlight {
		r.actions.Add(-1)
		r.respond(req.GetId(), errorResult(pluginv1.ErrorCode_ERROR_CODE_THROTTLED,
			fmt.Sprintf("more than %d actions in flight", r.in.spec.MaxActionsInFlight)))
		return
	}
	r.in.actionsWG.Add(1)
	go func() {
		defer r.in.actionsWG.Done()
		defer r.actions.Add(-1)
		// The host context, not the run's: an action the plugin asked for
		// is carried out even if the plugin dies meanwhile.
		res := r.in.execute(r.in.hostCtx, req, r.launch)
		r.respond(req.GetId(), res)
	}()
}

func (r *run) respond(id uint64, res *pluginv1.ActionResult) {
	err := r.sendMsg(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_ActionResponse{
		ActionResponse: &pluginv1.ActionResponse{Id: id, Result: res}}})
	if err != nil && r.ctx.Err() == nil {
		r.fail(fmt.Errorf("send action response: %w", err), false)
	}
}

// watch detects a hang (an event unacked past its deadline), an exited
// process and a failed health check.
func (r *run) watch() {
	spec := &r.in.spec
	tick := min(max(spec.EventDeadline/4, 5*time.Millisecond), 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if r.alive != nil {
			if err := r.alive(); err != nil {
				r.fail(err, false)
				return
			}
		}
		now := time.Now()
		var oldestSeq uint64
		var oldest time.Time
		r.mu.Lock()
		for s, at := range r.inflight {
			if oldest.IsZero() || at.Before(oldest) {
				oldest, oldestSeq = at, s
			}
		}
		r.mu.Unlock()
		if !oldest.IsZero() && now.Sub(oldest) > spec.EventDeadline {
			r.fail(fmt.Errorf("hung: event %d not acked within %s", oldestSeq, spec.EventDeadline), false)
			return
		}
	}
}

// shutdown asks the plugin to finish in-flight work and waits, up to the
// shutdown timeout, for it to end the session. Events still queued stay
// unacked in the feed.
func (r *run) shutdown(reason string) {
	r.mu.Lock()
	r.shuttingDown = true
	r.mu.Unlock()
	if err := r.sendMsg(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Shutdown{Shutdown: &pluginv1.Shutdown{Reason: reason}}}); err != nil {
		return
	}
	t := time.NewTimer(r.in.spec.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-r.sessionEnded:
	case <-r.ctx.Done():
	case <-t.C:
		r.in.log.Warn("plugin did not end its session within the shutdown timeout", zap.Duration("timeout", r.in.spec.ShutdownTimeout))
	}
}

// close stops the run's goroutines. The process must already be gone (or
// the stream otherwise broken), so Recv returns.
func (r *run) close() {
	r.cancel()
	r.sendMu.Lock()
	r.sendClosed = true
	r.sendMu.Unlock()
	r.wg.Wait()
}

// depth reports the queue length and events in flight.
func (r *run) depth() (queued, inflight int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue), len(r.inflight)
}

func errorResult(code pluginv1.ErrorCode, msg string) *pluginv1.ActionResult {
	return &pluginv1.ActionResult{Error: &pluginv1.Error{Code: code, Message: msg}}
}
