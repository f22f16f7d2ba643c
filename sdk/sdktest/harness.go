// Package sdktest runs a plugin in a test without a runner or a server: it
// plays the runner's side of the plugin contract over a real in-process
// gRPC connection (bufconn), so a plugin that passes here speaks the same
// stream to the runner. Feed events, then assert the actions the plugin
// called; the fake runner answers them (a send returns a message, the KV
// store is kept in memory), and Respond or FailNext inject other answers,
// such as a flood wait.
//
//	h := sdktest.New(t, newPlugin())
//	out := h.Handle(sdktest.PrivateText(".ping"))
//	if len(out.Calls) != 1 || out.Calls[0].Text() != "pong" { ... }
//
// The harness also checks the plugin's side of the contract: every event is
// acked exactly once, action ids are unique among calls in flight.
package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Option configures a Harness.
type Option func(*options)

type options struct {
	config   []byte
	prefix   string
	instance string
	account  string
	me       *pluginv1.User
	granted  sdk.Permissions
	clock    *Clock
	timeout  time.Duration
	quiet    bool
}

// WithConfig sets the plugin's config section: a JSON string or []byte as
// is, anything else marshalled to JSON.
func WithConfig(v any) Option {
	return func(o *options) {
		switch c := v.(type) {
		case string:
			o.config = []byte(c)
		case []byte:
			o.config = c
		default:
			b, err := json.Marshal(v)
			if err != nil {
				panic(fmt.Sprintf("sdktest.WithConfig: %v", err))
			}
			o.config = b
		}
	}
}

// WithPrefix sets the command prefix the runner configures (default ".").
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithInstance sets the instance name (default "test").
func WithInstance(name string) Option { return func(o *options) { o.instance = name } }

// WithMe sets the account's user (default Me()).
func WithMe(u *pluginv1.User) Option { return func(o *options) { o.me = u } }

// WithGranted sets what the runner's config grants (default: what the
// plugin asks for). The fake runner does not enforce it.
func WithGranted(p sdk.Permissions) Option { return func(o *options) { o.granted = p } }

// WithClock sets the clock installed in the plugin (default: a fake clock
// reading 2025-01-06 09:00 UTC, a Monday).
func WithClock(c *Clock) Option { return func(o *options) { o.clock = c } }

// WithTimeout bounds each wait of the harness (default 10s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Quiet drops the plugin's log instead of writing it to the test log.
func Quiet() Option { return func(o *options) { o.quiet = true } }

// Call is an action the plugin called, with the fake runner's answer.
type Call struct {
	ID       uint64
	CauseSeq uint64
	// Label is the audit label the call carried (sdk.WithLabel), as sent:
	// the runner cleans it, this fake does not.
	Label string
	// Name is the action's kind: "send", "edit", "kv_get", ...
	Name   string
	Action *pluginv1.Action
	Result *pluginv1.ActionResult
}

// Err is the error the plugin got back, typed as the SDK types it.
func (c *Call) Err() error { return sdk.ErrorFromProto(c.Result.GetError()) }

// Text is the text of a send or edit, or the caption of a send_media.
func (c *Call) Text() string {
	switch {
	case c.Action.GetSend() != nil:
		return c.Action.GetSend().GetText()
	case c.Action.GetEdit() != nil:
		return c.Action.GetEdit().GetText()
	case c.Action.GetSendMedia() != nil:
		return c.Action.GetSendMedia().GetCaption()
	}
	return ""
}

// Chat is the chat the action is about (the target of a forward).
func (c *Call) Chat() *pluginv1.Peer {
	a := c.Action
	switch {
	case a.GetSend() != nil:
		return a.GetSend().GetChat()
	case a.GetEdit() != nil:
		return a.GetEdit().GetChat()
	case a.GetDelete() != nil:
		return a.GetDelete().GetChat()
	case a.GetForward() != nil:
		return a.GetForward().GetToChat()
	case a.GetReact() != nil:
		return a.GetReact().GetChat()
	case a.GetMarkRead() != nil:
		return a.GetMarkRead().GetChat()
	case a.GetTyping() != nil:
		return a.GetTyping().GetChat()
	case a.GetHistory() != nil:
		return a.GetHistory().GetChat()
	case a.GetGetMessages() != nil:
		return a.GetGetMessages().GetChat()
	case a.GetGetChat() != nil:
		return a.GetGetChat().GetChat()
	case a.GetDownload() != nil:
		return a.GetDownload().GetChat()
	case a.GetSendMedia() != nil:
		return a.GetSendMedia().GetChat()
	case a.GetJoin() != nil:
		return a.GetJoin().GetChat()
	case a.GetLeave() != nil:
		return a.GetLeave().GetChat()
	}
	return nil
}

func (c *Call) String() string {
	s := c.Name
	if p := c.Chat(); p != nil {
		s += " " + sdk.PeerString(p)
	}
	if t := c.Text(); t != "" {
		s += fmt.Sprintf(" %q", t)
	}
	if e := c.Result.GetError(); e != nil {
		s += " -> " + sdk.ErrorFromProto(e).Error()
	}
	return s
}

// Outcome is how the plugin handled one event.
type Outcome struct {
	Seq uint64
	// Err is the error the event was acked with ("" when handled).
	Err string
	// Calls are the actions the plugin called for this event.
	Calls []*Call
}

// Responder computes the fake runner's answer to an action. Returning an
// error answers with it (see sdk.ErrorToProto); returning nil, nil falls
// back to the default answer.
type Responder func(a *pluginv1.Action) (*pluginv1.ActionResult, error)

// Harness is a fake runner with one plugin session open.
type Harness struct {
	t       testing.TB
	plugin  *sdk.Plugin // nil when connected to a process
	client  pluginv1.PluginClient
	stream  pluginv1.Plugin_SessionClient
	info    *pluginv1.PluginInfo
	opts    options
	closers []func()

	sendMu sync.Mutex

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	owed       map[uint64]int
	acked      map[uint64]*Outcome
	inFlight   map[uint64]bool
	calls      []*Call
	responders map[string]Responder
	failNext   map[string][]error
	violations []string
	fake       *fakeRunner
	nextSeq    uint64
	recvDone   chan struct{}
	recvErr    error
	shutdown   bool
	logging    atomic.Bool
}

// New runs p behind a fake runner for the test: Info, Configure, then one
// Session, closed when the test ends. It fails the test if the plugin
// refuses its config; use Start to test that. Build a fresh plugin for each
// harness.
func New(t testing.TB, p *sdk.Plugin, opts ...Option) *Harness {
	t.Helper()
	h, err := Start(t, p, opts...)
	if err != nil {
		t.Fatalf("sdktest: start plugin: %v", err)
	}
	return h
}

// Start is New returning the plugin's error from Configure (a
// *status.Status with code INVALID_ARGUMENT for a refused config).
func Start(t testing.TB, p *sdk.Plugin, opts ...Option) (*Harness, error) {
	t.Helper()
	o := defaults(opts)
	h := newHarness(t, o)
	h.plugin = p
	h.logging.Store(true)
	if o.quiet {
		p.SetLogger(hclog.NewNullLogger())
	} else {
		p.SetLogger(hclog.New(&hclog.LoggerOptions{Name: p.Name(), Level: hclog.Debug, Output: testWriter{h}}))
	}
	p.SetClock(o.clock)

	client, closeConn, err := dial(p)
	if err != nil {
		return nil, err
	}
	h.closers = append(h.closers, closeConn)
	t.Cleanup(h.close)
	return h, h.open(client)
}

// Dial serves p over an in-process gRPC connection and returns a raw
// client of the contract, closed when the test ends: for tests that play
// the runner's side themselves, message by message.
func Dial(t testing.TB, p *sdk.Plugin) pluginv1.PluginClient {
	t.Helper()
	client, closeConn, err := dial(p)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	t.Cleanup(closeConn)
	return client
}

func dial(p *sdk.Plugin) (pluginv1.PluginClient, func(), error) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	pluginv1.RegisterPluginServer(srv, p.Server())
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.Dial("bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
	)
	if err != nil {
		srv.Stop()
		return nil, nil, fmt.Errorf("dial in-process server: %w", err)
	}
	return pluginv1.NewPluginClient(conn), func() { _ = conn.Close(); srv.Stop() }, nil
}

// Connect plays the runner for a plugin already served elsewhere, such as
// a plugin process started under go-plugin. Tick is unavailable then.
func Connect(t testing.TB, client pluginv1.PluginClient, opts ...Option) (*Harness, error) {
	t.Helper()
	h := newHarness(t, defaults(opts))
	t.Cleanup(h.close)
	return h, h.open(client)
}

func defaults(opts []Option) options {
	o := options{prefix: sdk.DefaultCommandPrefix, instance: "test", account: "main", timeout: 10 * time.Second}
	for _, fn := range opts {
		fn(&o)
	}
	if o.me == nil {
		o.me = Me()
	}
	if o.clock == nil {
		o.clock = NewClock(time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC))
	}
	return o
}

func newHarness(t testing.TB, o options) *Harness {
	return &Harness{
		t: t, opts: o,
		changed:    make(chan struct{}),
		owed:       map[uint64]int{},
		acked:      map[uint64]*Outcome{},
		inFlight:   map[uint64]bool{},
		responders: map[string]Responder{},
		failNext:   map[string][]error{},
		fake:       newFakeRunner(o.me),
		recvDone:   make(chan struct{}),
	}
}

func (h *Harness) open(client pluginv1.PluginClient) error {
	h.client = client
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.timeout)
	defer cancel()
	info, err := client.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		close(h.recvDone)
		return fmt.Errorf("Info: %w", err)
	}
	h.info = info
	h.mu.Lock()
	h.fake.info = info
	h.mu.Unlock()
	if err := h.Reconfigure(h.opts.config); err != nil {
		close(h.recvDone)
		return err
	}
	stream, err := client.Session(context.Background())
	if err != nil {
		close(h.recvDone)
		return fmt.Errorf("Session: %w", err)
	}
	h.stream = stream
	go h.recvLoop()
	return nil
}

// Reconfigure calls Configure again with a new config section, as a config
// reload does, and returns the plugin's answer.
func (h *Harness) Reconfigure(config any) error {
	var raw []byte
	switch c := config.(type) {
	case nil:
	case []byte:
		raw = c
	case string:
		raw = []byte(c)
	default:
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		raw = b
	}
	granted := h.opts.granted
	if granted.Actions == nil && granted.Chats == nil && h.info != nil {
		granted = sdk.Permissions{Actions: h.info.GetPermissions().GetActions(), Chats: h.info.GetPermissions().GetChats()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.timeout)
	defer cancel()
	_, err := h.client.Configure(ctx, &pluginv1.ConfigureRequest{
		Instance: h.opts.instance, ConfigJson: raw, Account: h.opts.account, Me: h.opts.me,
		CommandPrefix: h.opts.prefix,
		Granted:       &pluginv1.Permissions{Actions: granted.Actions, Chats: granted.Chats},
	})
	return err
}

// Info is what the plugin said about itself.
func (h *Harness) Info() *pluginv1.PluginInfo { return h.info }

// Clock is the fake clock installed in the plugin.
func (h *Harness) Clock() *Clock { return h.opts.clock }

func (h *Harness) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *Harness) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.violations = append(h.violations, msg)
	h.notifyLocked()
}

func (h *Harness) recvLoop() {
	defer close(h.recvDone)
	for {
		m, err := h.stream.Recv()
		if err != nil {
			h.mu.Lock()
			if !errors.Is(err, io.EOF) {
				h.recvErr = err
			}
			h.notifyLocked()
			h.mu.Unlock()
			return
		}
		switch msg := m.GetMsg().(type) {
		case *pluginv1.PluginMessage_Ack:
			h.onAck(msg.Ack)
		case *pluginv1.PluginMessage_Action:
			h.onAction(msg.Action)
		}
	}
}

func (h *Harness) onAck(a *pluginv1.Ack) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, seq := range a.GetSeqs() {
		if h.owed[seq] == 0 {
			h.violate("the plugin acked seq %d more often than it was delivered", seq)
			continue
		}
		h.owed[seq]--
		out := &Outcome{Seq: seq, Err: a.GetError()}
		for _, c := range h.calls {
			if c.CauseSeq == seq {
				out.Calls = append(out.Calls, c)
			}
		}
		h.acked[seq] = out
	}
	h.notifyLocked()
}

func (h *Harness) onAction(req *pluginv1.ActionRequest) {
	name := sdk.ActionName(req.GetAction())
	h.mu.Lock()
	if h.inFlight[req.GetId()] {
		h.violate("action id %d reused while in flight", req.GetId())
	}
	h.inFlight[req.GetId()] = true
	responder := h.responders[name]
	var injected error
	if q := h.failNext[name]; len(q) > 0 {
		injected, h.failNext[name] = q[0], q[1:]
	}
	h.mu.Unlock()

	var res *pluginv1.ActionResult
	switch {
	case injected != nil:
		res = &pluginv1.ActionResult{Error: sdk.ErrorToProto(injected)}
	case responder != nil:
		r, err := responder(req.GetAction())
		if err != nil {
			res = &pluginv1.ActionResult{Error: sdk.ErrorToProto(err)}
		} else {
			res = r
		}
	}
	h.mu.Lock()
	if res == nil {
		res = h.fake.answer(req.GetAction(), h.opts.clock.Now())
	}
	call := &Call{ID: req.GetId(), CauseSeq: req.GetCauseSeq(), Label: req.GetLabel(), Name: name, Action: req.GetAction(), Result: res}
	h.calls = append(h.calls, call)
	delete(h.inFlight, req.GetId())
	h.notifyLocked()
	h.mu.Unlock()

	h.send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_ActionResponse{ActionResponse: &pluginv1.ActionResponse{Id: req.GetId(), Result: res}}})
}

func (h *Harness) send(m *pluginv1.HostMessage) {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	if err := h.stream.Send(m); err != nil && !errors.Is(err, io.EOF) {
		h.logf("sdktest: send to plugin: %v", err)
	}
}

// Feed delivers events without waiting, and returns their seqs. Zero seqs,
// message ids and dates are filled in (in the events given).
func (h *Harness) Feed(evs ...*pluginv1.Event) []uint64 {
	h.t.Helper()
	seqs := make([]uint64, len(evs))
	for i, ev := range evs {
		h.mu.Lock()
		if ev.Seq == 0 {
			h.nextSeq++
			ev.Seq = h.nextSeq
		} else if ev.Seq > h.nextSeq {
			h.nextSeq = ev.Seq
		}
		if ev.Account == "" {
			ev.Account = h.opts.account
		}
		if ev.Date == 0 {
			ev.Date = h.opts.clock.Now().Unix()
		}
		h.fake.observe(ev, ev.Date)
		h.owed[ev.Seq]++
		delete(h.acked, ev.Seq)
		h.mu.Unlock()
		seqs[i] = ev.Seq
		h.send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Event{Event: ev}})
	}
	return seqs
}

// Redeliver sends an event again with its seq, as the runner does after a
// restart; the plugin must ack it without handling it twice.
func (h *Harness) Redeliver(ev *pluginv1.Event) {
	h.t.Helper()
	if ev.GetSeq() == 0 {
		h.t.Fatalf("sdktest: Redeliver needs an event that was fed")
	}
	h.Feed(ev)
}

// Handle feeds one event and waits until the plugin acks it.
func (h *Harness) Handle(ev *pluginv1.Event) Outcome {
	h.t.Helper()
	seq := h.Feed(ev)[0]
	return h.WaitAck(seq)
}

// WaitAck waits until the plugin acks seq.
func (h *Harness) WaitAck(seq uint64) Outcome {
	h.t.Helper()
	var out Outcome
	h.waitFor(fmt.Sprintf("the ack of seq %d", seq), func() bool {
		o, ok := h.acked[seq]
		if ok && h.owed[seq] == 0 {
			out = *o
			return true
		}
		return false
	})
	return out
}

// WaitCalls waits until the plugin has called at least n actions named
// name ("" counts all) and returns those calls.
func (h *Harness) WaitCalls(name string, n int) []*Call {
	h.t.Helper()
	var out []*Call
	h.waitFor(fmt.Sprintf("%d %q calls", n, name), func() bool {
		out = h.callsLocked(name)
		return len(out) >= n
	})
	return out
}

func (h *Harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.NewTimer(h.opts.timeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		if len(h.violations) > 0 {
			v := strings.Join(h.violations, "; ")
			h.mu.Unlock()
			h.t.Fatalf("sdktest: contract violated: %s", v)
		}
		if cond() {
			h.mu.Unlock()
			return
		}
		ch, done, err := h.changed, h.isDone(), h.recvErr
		h.mu.Unlock()
		if done {
			h.t.Fatalf("sdktest: waiting for %s: the session ended (%v)", what, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			h.t.Fatalf("sdktest: waiting for %s: timed out after %v; calls so far: %v", what, h.opts.timeout, h.Calls(""))
		}
	}
}

func (h *Harness) isDone() bool {
	select {
	case <-h.recvDone:
		return true
	default:
		return false
	}
}

// Calls returns the actions called so far with the given name ("" for all).
func (h *Harness) Calls(name string) []*Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.callsLocked(name)
}

func (h *Harness) callsLocked(name string) []*Call {
	var out []*Call
	for _, c := range h.calls {
		if name == "" || c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Respond replaces the fake runner's answer to actions named name.
func (h *Harness) Respond(name string, r Responder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.responders[name] = r
}

// FailNext makes the next action named name fail with err, e.g.
// &sdk.FloodWaitError{Seconds: 30} or sdk.ErrForbidden.
func (h *Harness) FailNext(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failNext[name] = append(h.failNext[name], err)
}

// KV returns a copy of the fake runner's key-value store.
func (h *Harness) KV() map[string][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]byte, len(h.fake.kv))
	for k, v := range h.fake.kv {
		out[k] = slices.Clone(v)
	}
	return out
}

// SetKV puts a value in the fake runner's store, as a previous run would
// have left it.
func (h *Harness) SetKV(key string, value []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fake.kv[key] = slices.Clone(value)
}

// AddChat makes a chat known to the fake runner (for resolve and
// get_chat); chats of fed events are known already.
func (h *Harness) AddChat(c *pluginv1.Chat) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fake.addChat(c)
}

// Tick advances the clock by d and waits until the jobs that came due have
// run and are waiting for their next time.
func (h *Harness) Tick(d time.Duration) {
	h.t.Helper()
	if h.plugin == nil {
		h.t.Fatalf("sdktest: Tick needs a harness made with New")
	}
	armed := func() bool {
		now := h.opts.clock.Now()
		for _, j := range h.plugin.Jobs() {
			if !j.Next().After(now) {
				return false
			}
		}
		return true
	}
	h.poll("the jobs to be armed", armed)
	h.opts.clock.Advance(d)
	h.poll("the jobs that came due to run", armed)
}

// poll waits for a condition that no harness event signals.
func (h *Harness) poll(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(h.opts.timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("sdktest: waiting for %s: timed out after %v", what, h.opts.timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Shutdown asks the plugin to stop, as the runner does, and waits until it
// has finished in-flight events, sent its last acks and ended the session.
// It returns the session's error, if any.
func (h *Harness) Shutdown() error {
	h.t.Helper()
	h.mu.Lock()
	already := h.shutdown
	h.shutdown = true
	h.mu.Unlock()
	if !already && h.stream != nil {
		h.send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Shutdown{Shutdown: &pluginv1.Shutdown{Reason: "sdktest"}}})
	}
	select {
	case <-h.recvDone:
	case <-time.After(h.opts.timeout):
		return fmt.Errorf("the plugin did not end its session within %v of Shutdown", h.opts.timeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.violations) > 0 {
		return fmt.Errorf("contract violated: %s", strings.Join(h.violations, "; "))
	}
	return h.recvErr
}

// Unacked returns the seqs delivered and not acked, sorted.
func (h *Harness) Unacked() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []uint64
	for seq, n := range h.owed {
		if n > 0 {
			out = append(out, seq)
		}
	}
	slices.Sort(out)
	return out
}

func (h *Harness) close() {
	if h.stream != nil {
		if err := h.Shutdown(); err != nil {
			h.t.Errorf("sdktest: shutdown: %v", err)
		}
		_ = h.stream.CloseSend()
	}
	for _, c := range h.closers {
		c()
	}
	h.logging.Store(false)
}

func (h *Harness) logf(format string, args ...any) {
	if h.logging.Load() {
		h.t.Logf(format, args...)
	}
}

type testWriter struct{ h *Harness }

func (w testWriter) Write(b []byte) (int, error) {
	w.h.logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// fakeRunner answers actions like a runner over a small in-memory world:
// the chats and messages of fed events, the messages the plugin sent, and
// the KV store.
type fakeRunner struct {
	info     *pluginv1.PluginInfo // the plugin's own, for list_plugins
	paused   string               // the pause reason, when paused
	isPaused bool
	me       *pluginv1.User
	chats    map[string]*pluginv1.Chat
	messages map[string][]*pluginv1.Message // per chat, ascending ids
	kv       map[string][]byte
	nextID   int64
}

func newFakeRunner(me *pluginv1.User) *fakeRunner {
	f := &fakeRunner{me: me, chats: map[string]*pluginv1.Chat{}, messages: map[string][]*pluginv1.Message{}, kv: map[string][]byte{}, nextID: 100}
	f.addChat(PrivateChat(me))
	return f
}

func (f *fakeRunner) addChat(c *pluginv1.Chat) {
	if c != nil && c.GetPeer() != nil {
		f.chats[sdk.PeerString(c.GetPeer())] = c
	}
}

func (f *fakeRunner) chat(p *pluginv1.Peer) *pluginv1.Chat {
	if c, ok := f.chats[sdk.PeerString(p)]; ok {
		return c
	}
	return &pluginv1.Chat{Peer: p}
}

func (f *fakeRunner) store(m *pluginv1.Message) {
	key := sdk.PeerString(m.GetChat().GetPeer())
	msgs := f.messages[key]
	i, found := slices.BinarySearchFunc(msgs, m.GetId(), func(x *pluginv1.Message, id int64) int {
		switch {
		case x.GetId() < id:
			return -1
		case x.GetId() > id:
			return 1
		}
		return 0
	})
	if found {
		msgs[i] = m
	} else {
		msgs = slices.Insert(msgs, i, m)
	}
	f.messages[key] = msgs
}

func (f *fakeRunner) observe(ev *pluginv1.Event, date int64) {
	var m *pluginv1.Message
	switch {
	case ev.GetNewMessage() != nil:
		m = ev.GetNewMessage()
		if m.Id == 0 {
			f.nextID++
			m.Id = f.nextID
		} else if m.Id > f.nextID {
			f.nextID = m.Id
		}
		if m.Date == 0 {
			m.Date = date
		}
	case ev.GetEditedMessage() != nil:
		m = ev.GetEditedMessage()
	default:
		f.addChat(chatOf(ev))
		return
	}
	f.addChat(m.GetChat())
	f.store(proto.Clone(m).(*pluginv1.Message))
}

func chatOf(ev *pluginv1.Event) *pluginv1.Chat {
	switch {
	case ev.GetDeletedMessages() != nil:
		return ev.GetDeletedMessages().GetChat()
	case ev.GetChatAction() != nil:
		return ev.GetChatAction().GetChat()
	case ev.GetReaction() != nil:
		return ev.GetReaction().GetChat()
	case ev.GetRead() != nil:
		return ev.GetRead().GetChat()
	case ev.GetTyping() != nil:
		return ev.GetTyping().GetChat()
	}
	return nil
}

func ok() *pluginv1.ActionResult {
	return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Ok{Ok: &pluginv1.Ok{}}}
}

func fail(code pluginv1.ErrorCode, msg string) *pluginv1.ActionResult {
	return &pluginv1.ActionResult{Error: &pluginv1.Error{Code: code, Message: msg}}
}

func (f *fakeRunner) newMessage(chat *pluginv1.Peer, text string, replyTo int64, now time.Time) *pluginv1.Message {
	f.nextID++
	m := &pluginv1.Message{
		Id: f.nextID, Chat: f.chat(chat), Sender: f.me, From: sdk.UserPeer(f.me.GetId()),
		Outgoing: true, Date: now.Unix(), Text: text, ReplyToMessageId: replyTo,
	}
	f.store(m)
	return proto.Clone(m).(*pluginv1.Message)
}

func (f *fakeRunner) find(chat *pluginv1.Peer, id int64) *pluginv1.Message {
	for _, m := range f.messages[sdk.PeerString(chat)] {
		if m.GetId() == id {
			return m
		}
	}
	return nil
}

func (f *fakeRunner) answer(a *pluginv1.Action, now time.Time) *pluginv1.ActionResult {
	msgResult := func(m *pluginv1.Message) *pluginv1.ActionResult {
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Message{Message: m}}
	}
	msgsResult := func(ms []*pluginv1.Message) *pluginv1.ActionResult {
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Messages{Messages: &pluginv1.Messages{Messages: ms}}}
	}
	notFound := pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND
	switch k := a.GetKind().(type) {
	case *pluginv1.Action_Send:
		return msgResult(f.newMessage(k.Send.GetChat(), k.Send.GetText(), k.Send.GetReplyToMessageId(), now))
	case *pluginv1.Action_SendMedia:
		m := f.newMessage(k.SendMedia.GetChat(), k.SendMedia.GetCaption(), k.SendMedia.GetReplyToMessageId(), now)
		kind := pluginv1.MediaKind_MEDIA_KIND_DOCUMENT
		if k.SendMedia.GetAsPhoto() {
			kind = pluginv1.MediaKind_MEDIA_KIND_PHOTO
		}
		m.Media = &pluginv1.Media{Kind: kind, MimeType: k.SendMedia.GetMimeType(), Size: int64(len(k.SendMedia.GetData())), FileName: k.SendMedia.GetFileName()}
		f.store(proto.Clone(m).(*pluginv1.Message))
		return msgResult(m)
	case *pluginv1.Action_Edit:
		m := f.find(k.Edit.GetChat(), k.Edit.GetMessageId())
		if m == nil {
			return fail(notFound, "sdktest: no such message")
		}
		m.Text, m.EditDate = k.Edit.GetText(), now.Unix()
		return msgResult(proto.Clone(m).(*pluginv1.Message))
	case *pluginv1.Action_Delete:
		key := sdk.PeerString(k.Delete.GetChat())
		f.messages[key] = slices.DeleteFunc(f.messages[key], func(m *pluginv1.Message) bool {
			return slices.Contains(k.Delete.GetMessageIds(), m.GetId())
		})
		return ok()
	case *pluginv1.Action_Forward:
		var out []*pluginv1.Message
		for _, id := range k.Forward.GetMessageIds() {
			src := f.find(k.Forward.GetFromChat(), id)
			if src == nil {
				return fail(notFound, fmt.Sprintf("sdktest: no message %d", id))
			}
			m := f.newMessage(k.Forward.GetToChat(), src.GetText(), 0, now)
			if !k.Forward.GetDropAuthor() {
				m.Forward = &pluginv1.ForwardInfo{From: src.GetFrom(), FromChat: src.GetChat().GetPeer(), FromMessageId: id, Date: src.GetDate()}
				f.store(proto.Clone(m).(*pluginv1.Message))
			}
			out = append(out, m)
		}
		return msgsResult(out)
	case *pluginv1.Action_History:
		msgs := f.messages[sdk.PeerString(k.History.GetChat())]
		limit := int(k.History.GetLimit())
		if limit <= 0 {
			limit = 100
		}
		var out []*pluginv1.Message
		for i := len(msgs) - 1; i >= 0 && len(out) < limit; i-- {
			if off := k.History.GetOffsetId(); off == 0 || msgs[i].GetId() < off {
				out = append(out, proto.Clone(msgs[i]).(*pluginv1.Message))
			}
		}
		return msgsResult(out)
	case *pluginv1.Action_GetMessages:
		var out []*pluginv1.Message
		for _, id := range k.GetMessages.GetMessageIds() {
			if m := f.find(k.GetMessages.GetChat(), id); m != nil {
				out = append(out, proto.Clone(m).(*pluginv1.Message))
			}
		}
		return msgsResult(out)
	case *pluginv1.Action_Resolve:
		q := strings.ToLower(strings.TrimPrefix(k.Resolve.GetUsername(), "@"))
		if link := k.Resolve.GetLink(); link != "" {
			q = strings.ToLower(link[strings.LastIndex(link, "/")+1:])
		}
		for _, c := range f.chats {
			if q != "" && strings.ToLower(c.GetUsername()) == q {
				return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Chat{Chat: c}}
			}
		}
		return fail(notFound, "sdktest: nothing resolves to that")
	case *pluginv1.Action_GetChat:
		if c, found := f.chats[sdk.PeerString(k.GetChat.GetChat())]; found {
			return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Chat{Chat: c}}
		}
		return fail(notFound, "sdktest: unknown chat")
	case *pluginv1.Action_GetMe:
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_User{User: f.me}}
	case *pluginv1.Action_KvGet:
		v, found := f.kv[k.KvGet.GetKey()]
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_KvValue{KvValue: &pluginv1.KVValue{Value: slices.Clone(v), Found: found}}}
	case *pluginv1.Action_KvSet:
		f.kv[k.KvSet.GetKey()] = slices.Clone(k.KvSet.GetValue())
		return ok()
	case *pluginv1.Action_KvDelete:
		delete(f.kv, k.KvDelete.GetKey())
		return ok()
	case *pluginv1.Action_KvList:
		var keys []string
		for key := range f.kv {
			if strings.HasPrefix(key, k.KvList.GetPrefix()) {
				keys = append(keys, key)
			}
		}
		slices.Sort(keys)
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_KvKeys{KvKeys: &pluginv1.KVKeys{Keys: keys}}}
	case *pluginv1.Action_Download:
		return fail(notFound, `sdktest: no file to download; answer with h.Respond("download", ...)`)
	case *pluginv1.Action_RawInvoke:
		return fail(pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN, `sdktest: raw_invoke has no fake; answer with h.Respond("raw_invoke", ...)`)
	case *pluginv1.Action_RunnerStatus:
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_RunnerStatus{RunnerStatus: &pluginv1.RunnerStatus{
			Account: "main", Paused: f.isPaused, PauseReason: f.paused, Version: "sdktest",
			Plugins: []*pluginv1.PluginStatus{{Name: f.info.GetName(), State: "running", Version: f.info.GetVersion()}},
		}}}
	case *pluginv1.Action_Pause:
		f.isPaused, f.paused = true, k.Pause.GetReason()
		return ok()
	case *pluginv1.Action_Resume:
		f.isPaused, f.paused = false, ""
		return ok()
	case *pluginv1.Action_ListPlugins:
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Plugins{Plugins: &pluginv1.PluginList{
			Plugins: []*pluginv1.PluginInfo{proto.Clone(f.info).(*pluginv1.PluginInfo)},
		}}}
	case *pluginv1.Action_React, *pluginv1.Action_MarkRead, *pluginv1.Action_Typing, *pluginv1.Action_Join, *pluginv1.Action_Leave:
		return ok()
	}
	return fail(pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "sdktest: empty or unknown action")
}
