package runner_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Three accounts in one process, each with its own storage, session, stack
// and ping plugin: each receives only its own DMs, its own plugin answers
// them, and every journaled event names its account.
func TestThreeAccountsInOneRunner(t *testing.T) {
	ping := pingPlugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	alice, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996622222", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)

	type account struct {
		name  string
		owner *sandbox.User
		st    *store.Store
		stack *runner.Stack
	}
	base := t.TempDir()
	var accounts []*account
	for i, name := range []string{"sales", "support", "ops"} {
		owner, err := sb.CreateUser(ctx, sandbox.UserSpec{
			Phone: fmt.Sprintf("999663%04d", i+1), FirstName: "Owner " + name, Username: "owner_" + name,
		})
		require.NoError(t, err)
		cfg := config.Default()
		cfg.Account.APIID = 1
		cfg.Account.APIHash = config.NewSecret("sandbox")
		cfg.Account.Phone = config.NewSecret(owner.Phone)
		cfg.Server.Type = config.ServerSandbox
		cfg.Storage.Dir = filepath.Join(base, name)
		cfg.Plugins = []config.Plugin{ping}
		st, err := store.Open(ctx, cfg.Storage.Dir, store.Options{})
		require.NoError(t, err)
		log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name)
		stack, err := runner.NewStack(cfg, store.Bolt(st), log)
		require.NoError(t, err)
		a := &account{name: name, owner: owner, st: st, stack: stack}
		accounts = append(accounts, a)

		ready := make(chan *runner.Session, 1)
		r := runner.New(cfg, store.Bolt(st), runner.Options{
			Account:  name,
			Logger:   log,
			Sandbox:  sb,
			Login:    runner.SandboxLogin(sb, owner.Phone, ""),
			Services: []runner.Service{stack},
			OnReady:  func(s *runner.Session) { ready <- s },
		})
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			require.NoError(t, <-done)
			require.NoError(t, st.Close())
		})
		select {
		case s := <-ready:
			require.Equal(t, name, s.Account)
		case err := <-done:
			t.Fatalf("account %s stopped before ready: %v", name, err)
		case <-ctx.Done():
			t.Fatalf("account %s not ready", name)
		}
	}
	for _, a := range accounts {
		select {
		case <-a.stack.Ready():
		case <-ctx.Done():
			t.Fatalf("plugins of %s not up", a.name)
		}
	}

	for _, a := range accounts {
		_, err := sb.As(alice.ID).SendText(ctx, sandbox.UserPeer(a.owner.ID), "hello "+a.name)
		require.NoError(t, err)
		_, err = sb.As(alice.ID).SendText(ctx, sandbox.UserPeer(a.owner.ID), ".ping")
		require.NoError(t, err)
	}
	for _, a := range accounts {
		reply, err := sb.WaitMessage(ctx, func(m sandbox.Message) bool {
			return m.From == a.owner.ID && m.Peer == sandbox.UserPeer(alice.ID) && strings.HasPrefix(m.Text, "pong")
		})
		require.NoError(t, err, "no pong from the plugin of %s", a.name)
		require.NotZero(t, reply.ReplyTo)
	}

	for _, a := range accounts {
		c, err := store.Bolt(a.st).Journal().Consumer(ctx, "test", store.ConsumerOptions{})
		require.NoError(t, err)
		events := readEvents(t, c, func(evs []*pb.Event) bool {
			for _, ev := range evs {
				if ev.GetNewMessage().GetText() == ".ping" {
					return true
				}
			}
			return false
		})
		var hellos []string
		for _, ev := range events {
			require.Equal(t, a.name, ev.GetAccount(), "event %d of %s", ev.GetSeq(), a.name)
			if text := ev.GetNewMessage().GetText(); strings.HasPrefix(text, "hello ") {
				hellos = append(hellos, text)
			}
		}
		require.Equal(t, []string{"hello " + a.name}, hellos, "%s journals its own DMs only", a.name)
	}
}
