package guard_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotd/td/crypto"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		panic(err)
	}
	return k
})

var phoneSeq atomic.Int64

func newPhone() string {
	n := phoneSeq.Add(1)
	return fmt.Sprintf("99967%d%04d", 1+n%9, n)
}

// env is a sandbox and the owner's account run by the real runner, so every
// action goes through the same contrib ratelimit and floodwait.Waiter as in
// production; exec is the real action executor on that session.
type env struct {
	t     testing.TB
	ctx   context.Context
	sb    *sandbox.Server
	owner *sandbox.User
	cfg   *config.Config
	st    *store.Store
	sess  *runner.Session
	exec  *action.Executor
	logs  *observer.ObservedLogs
	log   *zap.Logger
	// wire records every call that passed the guard, with its time.
	wire *recorder
}

// recorder sits between the guard and the executor.
type recorder struct {
	next  guard.Executor
	mu    sync.Mutex
	calls []recorded
}

type recorded struct {
	at   time.Time
	kind string
	chat string
	res  *pb.ActionResult
}

func (r *recorder) Execute(ctx context.Context, call action.Call) *pb.ActionResult {
	at := time.Now()
	res := r.next.Execute(ctx, call)
	r.mu.Lock()
	r.calls = append(r.calls, recorded{at: at, kind: action.Kind(call.Action), chat: peerString(action.TargetChat(call.Action)), res: res})
	r.mu.Unlock()
	return res
}

func (r *recorder) snapshot() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.calls...)
}

func peerString(p *pb.Peer) string {
	if p == nil {
		return ""
	}
	switch p.Kind {
	case pb.PeerKind_PEER_KIND_USER:
		return fmt.Sprintf("user:%d", p.Id)
	case pb.PeerKind_PEER_KIND_CHAT:
		return fmt.Sprintf("chat:%d", p.Id)
	}
	return fmt.Sprintf("channel:%d", p.Id)
}

// testLimits are fast limits so tests run in seconds: 50 messages a
// second per chat, burst 3.
func testLimits(l *config.Limits) {
	l.Send.PerChat = config.RateLimit{Rate: config.Rate{Count: 50, Per: time.Second}, Burst: 3}
	l.Send.PerGroup = config.RateLimit{Rate: config.Rate{Count: 50, Per: time.Second}, Burst: 3}
	l.Send.Global = config.RateLimit{Rate: config.Rate{Count: 1000, Per: time.Second}, Burst: 50}
	l.Send.Plugin = config.RateLimit{Rate: config.Rate{Count: 1000, Per: time.Second}, Burst: 50}
	l.RPC = config.RPCLimit{Interval: time.Millisecond, Burst: 100}
	l.FirstContacts.PerDay = 10000
}

func newEnv(t testing.TB, faults sandbox.Faults, tune func(*config.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey(), Faults: faults})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	owner, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: newPhone(), FirstName: "Owner", Username: fmt.Sprintf("owner%d", phoneSeq.Load())})
	require.NoError(t, err)

	cfg := config.Default()
	cfg.Account.APIID = 1
	cfg.Account.APIHash = config.NewSecret("sandbox")
	cfg.Account.Phone = config.NewSecret(owner.Phone)
	cfg.Server.Type = config.ServerSandbox
	cfg.Storage.Dir = t.TempDir() + "/data"
	testLimits(&cfg.Limits)
	if tune != nil {
		tune(cfg)
	}

	st, err := store.Open(ctx, cfg.Storage.Dir, store.Options{})
	require.NoError(t, err)
	core, logs := observer.New(zapcore.InfoLevel)
	e := &env{t: t, ctx: ctx, sb: sb, owner: owner, cfg: cfg, st: st, logs: logs, log: zap.New(core)}

	sessions := make(chan *runner.Session, 1)
	r := runner.New(cfg, store.Bolt(st), runner.Options{
		Logger:  e.log,
		Sandbox: sb,
		Login:   runner.SandboxLogin(sb, owner.Phone, ""),
		Services: []runner.Service{runner.ServiceFunc(func(ctx context.Context, s *runner.Session) error {
			sessions <- s
			<-ctx.Done()
			return nil
		})},
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	select {
	case e.sess = <-sessions:
	case err := <-done:
		t.Fatalf("runner stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("runner not ready in 30s")
	}
	t.Cleanup(func() {
		stop()
		<-done
		_ = st.Close()
	})
	selfID := e.sess.Self.ID
	e.exec = action.New(e.sess.API, e.sess.Peers, func() int64 { return selfID }, action.Options{})
	e.wire = &recorder{next: e.exec}
	return e
}

// guard returns a guard over the env's store with the env's limits.
func (e *env) guard(opts guard.Options, deps ...func(*guard.Deps)) *guard.Guard {
	d := guard.Deps{Store: store.Bolt(e.st), Self: func() int64 { return e.owner.ID }, Logger: e.log.Named("guard")}
	for _, f := range deps {
		f(&d)
	}
	g := guard.New(e.cfg.Limits, d, opts)
	e.t.Cleanup(func() { _ = g.Close(context.Background()) })
	return g
}

// user creates an account and makes it known to the owner's peer cache.
func (e *env) user(name string) (*sandbox.User, *pb.Peer) {
	e.t.Helper()
	n := phoneSeq.Add(1)
	u, err := e.sb.CreateUser(e.ctx, sandbox.UserSpec{Phone: newPhone(), FirstName: name, Username: fmt.Sprintf("%s%d", name, n)})
	require.NoError(e.t, err)
	res := e.exec.Execute(e.ctx, action.Call{Source: guard.SourceRunner, Action: &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: u.Username}}}}})
	require.Nil(e.t, res.GetError(), "resolve %s", u.Username)
	return u, &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: u.ID}
}

// wroteFirst makes u write to the owner and waits until the runner's
// intake has recorded it.
func (e *env) wroteFirst(u *sandbox.User) {
	e.t.Helper()
	_, err := e.sb.As(u.ID).SendText(e.ctx, sandbox.UserPeer(e.owner.ID), "hi, it's "+u.FirstName)
	require.NoError(e.t, err)
	require.Eventually(e.t, func() bool {
		p, err := e.st.Peers().Get(e.ctx, store.PeerRef{Kind: store.PeerUser, ID: u.ID})
		return err == nil && p.WroteFirst
	}, 10*time.Second, 5*time.Millisecond)
}

func sendAction(to *pb.Peer, text string) *pb.Action {
	return &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: to, Text: text}}}
}

func send(source string, to *pb.Peer, text string) action.Call {
	return action.Call{Source: source, Action: sendAction(to, text)}
}

// history is what the owner sees in the chat with peer, oldest first.
func (e *env) history(peer sandbox.Peer) []string {
	e.t.Helper()
	msgs, err := e.sb.History(e.owner.ID, peer)
	require.NoError(e.t, err)
	var out []string
	for _, m := range msgs {
		// Empty texts are service messages (the owner joining a group).
		if m.From == e.owner.ID && m.Text != "" {
			out = append(out, m.Text)
		}
	}
	return out
}

// floodWaits counts the FLOOD_WAIT answers seen: those the runner's
// floodwait.Waiter sat out and those longer ones it handed to the guard.
func (e *env) floodWaits() int {
	return e.logs.FilterMessage("Flood wait").Len() +
		e.logs.FilterMessage("Telegram asked to wait longer than limits.flood_wait.max_wait").Len()
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %03d", prefix, i)
	}
	return out
}

// audit reads the guard's audit log.
func audit(t testing.TB, g *guard.Guard, f guard.AuditFilter) []guard.AuditRecord {
	t.Helper()
	recs, err := g.Audit(context.Background(), f)
	require.NoError(t, err)
	return recs
}

func countOutcomes(recs []guard.AuditRecord) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[r.Outcome]++
	}
	return m
}

func writeFile(path string) error { return os.WriteFile(path, []byte("paused by test\n"), 0o600) }

func removeFile(path string) error { return os.Remove(path) }
