package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// The account runs on Redis under a lease, with the ping plugin. When the
// lease is lost the runner disconnects at once and its writes are fenced;
// under a new lease another runner resumes from the shared state and
// answers what arrived meanwhile, once.
func TestRunnerOnRedisUnderLease(t *testing.T) {
	rdb := redistest.Client(t)
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pingPlugin(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	account := fmt.Sprintf("redis-lease-%d", time.Now().UnixNano())
	const ttl = 3 * time.Second
	locker, err := lease.NewLocker(rdb, lease.Options{TTL: ttl, Holder: "test"})
	require.NoError(t, err)

	// start runs the account under a fresh lease until it is ready.
	start := func(name string) (le *lease.Lease, st *redisstore.Store, done chan error, stop func()) {
		le, err := locker.Acquire(ctx, account)
		require.NoError(t, err)
		st, err = redisstore.Open(ctx, rdb, account, le, redisstore.Options{})
		require.NoError(t, err)
		log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name)
		stack, err := runner.NewStack(e.cfg, st, log)
		require.NoError(t, err)
		ready := make(chan struct{}, 1)
		r := runner.New(e.cfg, st, runner.Options{
			Account:  account,
			Logger:   log,
			Sandbox:  e.sb,
			Login:    runner.SandboxLogin(e.sb, e.owner.Phone, ""),
			Services: []runner.Service{stack},
			Lease:    le,
			OnReady:  func(*runner.Session) { ready <- struct{}{} },
		})
		runCtx, stopRun := context.WithCancel(context.Background())
		done = make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("%s stopped before ready: %v", name, err)
		case <-ctx.Done():
			t.Fatalf("%s not ready", name)
		}
		select {
		case <-stack.Ready():
		case <-ctx.Done():
			t.Fatalf("%s: plugins not up", name)
		}
		return le, st, done, stopRun
	}
	pongs := func() int {
		history, err := e.sb.History(e.alice.ID, sandbox.UserPeer(e.owner.ID))
		require.NoError(t, err)
		n := 0
		for _, m := range history {
			if m.From == e.owner.ID && strings.HasPrefix(m.Text, "pong") {
				n++
			}
		}
		return n
	}
	waitPongs := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return pongs() >= n }, 30*time.Second, 20*time.Millisecond, "want %d pongs", n)
	}

	le1, st1, done1, stop1 := start("first")
	defer stop1()
	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	waitPongs(1)

	// Someone else takes the account: the lease key is gone, the renewal
	// finds out and the runner drops the connection.
	require.NoError(t, rdb.Del(ctx, lease.Key("", account)).Err())
	taken := time.Now()
	select {
	case err := <-done1:
		require.ErrorIs(t, err, runner.ErrLeaseLost)
		t.Logf("the runner returned %s after its lease key was deleted", time.Since(taken).Round(time.Millisecond))
	case <-time.After(2 * ttl):
		t.Fatal("runner still running 2×TTL after its lease was lost")
	}
	require.False(t, le1.Valid())
	err = st1.PluginKV("probe").Set(ctx, "k", []byte("v"))
	require.True(t, errors.Is(err, redisstore.ErrFenced), "a write after the loss is fenced, got %v", err)
	_ = st1.Close()

	// While nobody holds the account a message arrives; the next holder
	// catches up on it from the shared update state.
	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	le2, st2, done2, stop2 := start("second")
	waitPongs(2)
	defer func() {
		stop2()
		require.NoError(t, <-done2)
		require.NoError(t, le2.Release(ctx))
		_ = st2.Close()
	}()

	// The journal holds each .ping once, tagged with the account.
	c, err := st2.Journal().Consumer(ctx, "test", store.ConsumerOptions{})
	require.NoError(t, err)
	count := func(evs []*pb.Event) int {
		n := 0
		for _, ev := range evs {
			if ev.GetNewMessage().GetText() == ".ping" {
				n++
			}
		}
		return n
	}
	events := readEvents(t, c, func(evs []*pb.Event) bool { return count(evs) >= 2 })
	require.Equal(t, 2, count(events))
	for _, ev := range events {
		require.Equal(t, account, ev.GetAccount())
	}
	require.Equal(t, 2, pongs(), "each .ping answered once")
}
