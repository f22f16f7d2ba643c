package runner_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/crypto"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
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

type env struct {
	sb    *sandbox.Server
	owner *sandbox.User
	alice *sandbox.User
	cfg   *config.Config
	dir   string
	// selfPath is a built runner binary, for builtin plugins.
	selfPath string
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	owner, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996621111", FirstName: "Owner", Username: "owner"})
	require.NoError(t, err)
	alice, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996622222", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)
	cfg := config.Default()
	cfg.Account.APIID = 1
	cfg.Account.APIHash = config.NewSecret("sandbox")
	cfg.Account.Phone = config.NewSecret(owner.Phone)
	cfg.Server.Type = config.ServerSandbox
	dir := t.TempDir() + "/data"
	cfg.Storage.Dir = dir
	return &env{sb: sb, owner: owner, alice: alice, cfg: cfg, dir: dir}
}

// run starts a runner and returns once it is ready.
func (e *env) run(t *testing.T, opts runner.Options) (stop func() error) {
	stop, _ = e.runWith(t, opts, false)
	return stop
}

func (e *env) runTB(t testing.TB, opts runner.Options) (stop func() error) {
	stop, _ = e.runWith(t, opts, false)
	return stop
}

// runStack starts a runner with the standard stack (guard, executor,
// plugin host) and returns once the plugins are up.
func (e *env) runStack(t *testing.T) (*runner.Stack, func() error) {
	return e.runStackWith(t, runner.Options{})
}

func (e *env) runStackWith(t *testing.T, opts runner.Options) (*runner.Stack, func() error) {
	stop, stack := e.runWith(t, opts, true)
	select {
	case <-stack.Ready():
	case <-time.After(60 * time.Second):
		t.Fatal("plugins not up in 60s")
	}
	return stack, stop
}

func (e *env) runWith(t testing.TB, opts runner.Options, withStack bool) (stop func() error, stack *runner.Stack) {
	t.Helper()
	st, err := store.Open(context.Background(), e.dir, store.Options{})
	require.NoError(t, err)
	if withStack {
		stack, err = runner.NewStack(e.cfg, store.Bolt(st), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		require.NoError(t, err)
		stack.SelfPath = e.selfPath
		opts.Services = append(opts.Services, stack)
	}
	ready := make(chan *runner.Session, 1)
	opts.Sandbox = e.sb
	opts.Login = runner.SandboxLogin(e.sb, e.owner.Phone, "")
	onReady := opts.OnReady
	opts.OnReady = func(s *runner.Session) {
		if onReady != nil {
			onReady(s)
		}
		ready <- s
	}
	r := runner.New(e.cfg, store.Bolt(st), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("runner stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("runner not ready in 30s")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			require.NoError(t, st.Close())
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop, stack
}

// readEvents reads the journal as a named consumer until pred holds.
func readEvents(t *testing.T, c store.JournalConsumer, pred func([]*pb.Event) bool) []*pb.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		out   []*pb.Event
		after uint64
	)
	for !pred(out) {
		entries, err := c.Next(ctx, after, 1000)
		require.NoError(t, err, "waiting for events; have %d", len(out))
		for _, e := range entries {
			ev, err := runner.DecodeEntry(e)
			require.NoError(t, err)
			out = append(out, ev)
			after = e.Seq
		}
	}
	return out
}

func TestRunnerJournalsMessagesAcrossRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sessions := make(chan *runner.Session, 2)
	stop := e.run(t, runner.Options{Services: []runner.Service{runner.ServiceFunc(func(ctx context.Context, s *runner.Session) error {
		sessions <- s
		<-ctx.Done()
		return nil
	})}})
	sess := <-sessions
	c, err := sess.Store.Journal().Consumer(ctx, "test", store.ConsumerOptions{})
	require.NoError(t, err)

	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), "hello owner")
	require.NoError(t, err)
	evs := readEvents(t, c, func(evs []*pb.Event) bool { return len(evs) >= 1 })
	m := evs[0].GetNewMessage()
	require.NotNil(t, m, "first event: %v", evs[0])
	require.Equal(t, "hello owner", m.Text)
	require.Equal(t, e.alice.ID, m.Sender.Id)
	require.Equal(t, "alice", m.Sender.Username)
	require.Equal(t, pb.ChatType_CHAT_TYPE_PRIVATE, m.Chat.Type)
	require.NotEmpty(t, evs[0].RawTl)
	require.NoError(t, c.Ack(ctx, evs[0].Seq))
	require.NoError(t, stop())

	// Written while the runner is down: getDifference must bring it.
	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), "while you were away")
	require.NoError(t, err)

	e.run(t, runner.Options{Services: []runner.Service{runner.ServiceFunc(func(ctx context.Context, s *runner.Session) error {
		sessions <- s
		<-ctx.Done()
		return nil
	})}})
	sess = <-sessions
	c, err = sess.Store.Journal().Consumer(ctx, "test", store.ConsumerOptions{})
	require.NoError(t, err)
	evs = readEvents(t, c, func(evs []*pb.Event) bool { return len(evs) >= 1 })
	require.Len(t, evs, 1, "only the unacknowledged message is delivered again")
	require.Equal(t, "while you were away", evs[0].GetNewMessage().GetText())
}

// A stop request while the server cannot be reached ends Run at once.
func TestStopWhileUnreachable(t *testing.T) {
	e := newEnv(t)
	e.cfg.Server.Type = config.ServerCustom
	e.cfg.Server.Address = "127.0.0.1:1" // nothing listens there
	e.cfg.Server.DC = 2
	e.cfg.Server.PublicKeys = []*rsa.PublicKey{&testKey().PublicKey}
	st, err := store.Open(context.Background(), e.dir, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	r := runner.New(e.cfg, store.Bolt(st), runner.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel while connecting")
	}
}
