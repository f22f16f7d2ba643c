package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// maxAckBatch caps how many seqs one Ack carries; acks are otherwise
// flushed as soon as the sender has nothing else queued.
const maxAckBatch = 256

// server implements the contract's Plugin service for a Plugin.
type server struct {
	pluginv1.UnimplementedPluginServer
	p *Plugin
}

// Server returns the plugin's implementation of the contract's gRPC
// service. Serve registers it under go-plugin; sdktest serves it in
// process.
func (p *Plugin) Server() pluginv1.PluginServer { return p.server }

func (s *server) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.PluginInfo, error) {
	return s.p.info(), nil
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	if err := s.p.configure(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &pluginv1.ConfigureResponse{}, nil
}

func (s *server) Session(stream pluginv1.Plugin_SessionServer) error {
	return s.p.runSession(stream)
}

// configure applies a ConfigureRequest atomically: every typed config and
// hook accepts it, or nothing changes.
func (p *Plugin) configure(req *pluginv1.ConfigureRequest) error {
	p.configureMu.Lock()
	defer p.configureMu.Unlock()
	raw := req.GetConfigJson()
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	prefix := req.GetCommandPrefix()
	if prefix == "" {
		prefix = DefaultCommandPrefix
	}
	next := &Settings{
		Instance:      req.GetInstance(),
		Account:       req.GetAccount(),
		Me:            req.GetMe(),
		CommandPrefix: prefix,
		Granted:       permissionsFromProto(req.GetGranted()),
		ConfigJSON:    raw,
	}
	p.mu.Lock()
	configs := append([]configDecoder(nil), p.configs...)
	hooks := append([]func(Settings) error(nil), p.onConfigure...)
	p.mu.Unlock()

	commits := make([]func() func(), 0, len(configs))
	for _, c := range configs {
		commit, err := c.decode(raw)
		if err != nil {
			return err
		}
		commits = append(commits, commit)
	}
	var rollbacks []func()
	for _, commit := range commits {
		rollbacks = append(rollbacks, commit())
	}
	old := p.settings.Swap(next)
	for _, hook := range hooks {
		if err := hook(*next); err != nil {
			for _, rb := range rollbacks {
				rb()
			}
			p.settings.Store(old)
			var ce *ConfigError
			if errors.As(err, &ce) {
				return ce
			}
			return &ConfigError{Reason: err.Error()}
		}
	}
	p.configured.Store(true)
	p.logger.Debug("configured", "instance", next.Instance, "prefix", prefix)
	return nil
}

// session is one open Session stream.
type session struct {
	p      *Plugin
	stream pluginv1.Plugin_SessionServer
	ctx    context.Context // handlers' context; cancelled when the session ends
	cancel context.CancelFunc

	out      chan outMsg
	stopSend chan struct{} // closed to flush and stop the sender
	sendDone chan struct{}
	sendErr  error
	dead     chan struct{} // closed when nothing more can be sent
	deadOnce sync.Once

	pendMu  sync.Mutex
	pending map[uint64]chan *pluginv1.ActionResult
	closed  bool
	nextID  atomic.Uint64

	draining  atomic.Bool
	drainOnce sync.Once
	drained   chan struct{}
}

type outMsg struct {
	req    *pluginv1.ActionRequest // an action call, or else an ack:
	seq    uint64
	ackErr string
}

func (p *Plugin) runSession(stream pluginv1.Plugin_SessionServer) error {
	p.freeze()
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		p: p, stream: stream, ctx: ctx, cancel: cancel,
		out:      make(chan outMsg, 1024),
		stopSend: make(chan struct{}),
		sendDone: make(chan struct{}),
		dead:     make(chan struct{}),
		pending:  map[uint64]chan *pluginv1.ActionResult{},
		drained:  make(chan struct{}),
	}
	p.sessionMu.Lock()
	if !p.cur.CompareAndSwap(nil, s) {
		p.sessionMu.Unlock()
		cancel()
		return status.Error(codes.FailedPrecondition, "the plugin already has an open session")
	}
	p.sessionMu.Unlock()
	p.logger.Debug("session opened")

	go s.sendLoop()
	p.startJobs()

	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			s.onHostMessage(m)
		}
	}()

	var err error
	select {
	case <-s.drained:
		err = s.sendErr
	case err = <-recvErr:
		if errors.Is(err, io.EOF) {
			// The runner closed its side without a Shutdown: it can no
			// longer answer action calls, but still reads acks.
			s.failPending()
			s.beginDrain("the runner closed the stream")
			<-s.drained
			err = s.sendErr
		} else {
			// The stream broke (the runner is gone). Stop at once; the
			// runner redelivers what was not acked.
			p.logger.Warn("session lost", "error", err.Error())
			p.stopJobs()
			err = nil
		}
	case <-s.sendDone:
		err = s.sendErr
		p.stopJobs()
	}
	s.markDead()
	s.failPending()
	cancel()
	p.cur.CompareAndSwap(s, nil)
	p.logger.Debug("session closed")
	return err
}

func (s *session) onHostMessage(m *pluginv1.HostMessage) {
	switch msg := m.GetMsg().(type) {
	case *pluginv1.HostMessage_Event:
		if s.draining.Load() {
			return // not acked: the runner redelivers it to the next process
		}
		s.p.onEvent(s, msg.Event)
	case *pluginv1.HostMessage_ActionResponse:
		s.deliver(msg.ActionResponse)
	case *pluginv1.HostMessage_Shutdown:
		s.beginDrain(msg.Shutdown.GetReason())
	}
}

func (p *Plugin) onEvent(s *session, ev *pluginv1.Event) {
	key := eventKey{account: ev.GetAccount(), seq: ev.GetSeq()}
	fresh, handled := p.seen.begin(key)
	if !fresh {
		if handled {
			s.ack(ev.GetSeq(), "") // a redelivery of a handled event
		}
		return // in flight: its ack is coming
	}
	p.exec.submit(orderKey(ev), func() {
		errText := ""
		if err := p.handle(s.ctx, ev); err != nil {
			errText = err.Error()
		}
		p.seen.finish(key)
		// Ack on the session open now: it may be a newer one than the
		// event came on.
		if cur := p.cur.Load(); cur != nil {
			cur.ack(ev.GetSeq(), errText)
		}
	})
}

// handle runs one event through the router.
func (p *Plugin) handle(ctx context.Context, ev *pluginv1.Event) error {
	c := &Context{Context: ctx, plugin: p, event: ev}
	err := p.dispatch(c)
	if err != nil {
		c.Log().Warn("event handling failed", "error", err.Error())
	}
	return err
}

func (p *Plugin) sessionContext() context.Context {
	if s := p.cur.Load(); s != nil {
		return s.ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// beginDrain finishes in-flight work, flushes the acks, then ends the
// session.
func (s *session) beginDrain(reason string) {
	s.drainOnce.Do(func() {
		s.draining.Store(true)
		s.p.logger.Debug("shutting down", "reason", reason)
		go func() {
			grace := time.AfterFunc(s.p.shutdownGrace, s.cancel)
			defer grace.Stop()
			s.p.stopJobs()
			s.p.exec.wait()
			close(s.stopSend)
			<-s.sendDone
			close(s.drained)
		}()
	})
}

func (s *session) ack(seq uint64, errText string) {
	select {
	case s.out <- outMsg{seq: seq, ackErr: errText}:
	case <-s.dead:
	}
}

func (p *Plugin) call(ctx context.Context, action *pluginv1.Action, cause uint64) (*pluginv1.ActionResult, error) {
	s := p.cur.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: no session with the runner", ErrUnavailable)
	}
	return s.call(ctx, action, cause)
}

var errSessionGone = fmt.Errorf("%w: the session with the runner ended", ErrUnavailable)

func (s *session) call(ctx context.Context, action *pluginv1.Action, cause uint64) (*pluginv1.ActionResult, error) {
	id := s.nextID.Add(1)
	ch := make(chan *pluginv1.ActionResult, 1)
	s.pendMu.Lock()
	if s.closed {
		s.pendMu.Unlock()
		return nil, errSessionGone
	}
	s.pending[id] = ch
	s.pendMu.Unlock()

	req := &pluginv1.ActionRequest{Id: id, Action: action, CauseSeq: cause, Label: LabelOf(ctx)}
	select {
	case s.out <- outMsg{req: req}:
	case <-ctx.Done():
		s.forget(id)
		return nil, ctx.Err()
	case <-s.dead:
		s.forget(id)
		return nil, errSessionGone
	}
	select {
	case res := <-ch:
		if res == nil {
			return nil, errSessionGone
		}
		return res, nil
	case <-ctx.Done():
		s.forget(id)
		return nil, ctx.Err()
	}
}

func (s *session) forget(id uint64) {
	s.pendMu.Lock()
	delete(s.pending, id)
	s.pendMu.Unlock()
}

func (s *session) deliver(r *pluginv1.ActionResponse) {
	s.pendMu.Lock()
	ch, ok := s.pending[r.GetId()]
	delete(s.pending, r.GetId())
	s.pendMu.Unlock()
	if !ok {
		return // the caller gave up
	}
	res := r.GetResult()
	if res == nil {
		res = &pluginv1.ActionResult{}
	}
	ch <- res
}

// failPending answers every call in flight with "unavailable" and refuses
// new ones.
func (s *session) failPending() {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	s.closed = true
	for id, ch := range s.pending {
		delete(s.pending, id)
		ch <- nil
	}
}

func (s *session) markDead() { s.deadOnce.Do(func() { close(s.dead) }) }

// sendLoop owns stream.Send. It batches acks: seqs pile up while more
// messages are queued and go out as one Ack when the queue runs dry, or
// every maxAckBatch.
func (s *session) sendLoop() {
	defer close(s.sendDone)
	defer s.markDead()
	acks := make([]uint64, 0, maxAckBatch)
	flush := func() error {
		if len(acks) == 0 {
			return nil
		}
		err := s.stream.Send(&pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Ack{Ack: &pluginv1.Ack{Seqs: acks}}})
		acks = make([]uint64, 0, maxAckBatch)
		return err
	}
	handle := func(m outMsg) error {
		switch {
		case m.req != nil:
			return s.stream.Send(&pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Action{Action: m.req}})
		case m.ackErr != "":
			return s.stream.Send(&pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Ack{Ack: &pluginv1.Ack{Seqs: []uint64{m.seq}, Error: m.ackErr}}})
		default:
			acks = append(acks, m.seq)
			if len(acks) >= maxAckBatch {
				return flush()
			}
			return nil
		}
	}
	fail := func(err error) {
		s.sendErr = err
		s.p.logger.Warn("sending to the runner failed", "error", err.Error())
	}
	for {
		var m outMsg
		stopping := false
		select {
		case m = <-s.out:
		case <-s.stopSend:
			stopping = true
		case <-s.dead:
			return
		}
		if !stopping {
			if err := handle(m); err != nil {
				fail(err)
				return
			}
		}
	drain:
		for {
			select {
			case m = <-s.out:
				if err := handle(m); err != nil {
					fail(err)
					return
				}
			default:
				break drain
			}
		}
		if err := flush(); err != nil {
			fail(err)
			return
		}
		if stopping {
			return
		}
	}
}
