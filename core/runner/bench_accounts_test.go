package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
	"github.com/tgrunner/tgrunner/sandbox"
)

// BenchmarkIntakeAccounts measures updates per second from the sandbox
// into the journals of 1, 5 and 20 accounts run in one process, on bbolt
// (one store per account) and on Redis (one key namespace per account, each
// under its lease). b.N messages in all, spread evenly over the accounts,
// one sender per account.
func BenchmarkIntakeAccounts(b *testing.B) {
	for _, backend := range []string{"bbolt", "redis"} {
		for _, n := range []int{1, 5, 20} {
			b.Run(fmt.Sprintf("%s/accounts=%d", backend, n), func(b *testing.B) { benchIntakeAccounts(b, backend, n) })
		}
	}
}

func benchIntakeAccounts(b *testing.B, backend string, accounts int) {
	ctx := context.Background()
	var newBackend func(name string) store.Backend
	switch backend {
	case "bbolt":
		base := b.TempDir()
		newBackend = func(name string) store.Backend {
			st, err := store.Open(ctx, filepath.Join(base, name), store.Options{})
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			return store.Bolt(st)
		}
	case "redis":
		rdb := redistest.Client(b)
		if os.Getenv(redistest.EnvURL) == "" {
			b.Skip("no redis-server")
		}
		locker, err := lease.NewLocker(rdb, lease.Options{Holder: "bench"})
		require.NoError(b, err)
		run := time.Now().UnixNano()
		newBackend = func(name string) store.Backend {
			le, err := locker.Acquire(ctx, fmt.Sprintf("bench-%d-%s", run, name))
			require.NoError(b, err)
			b.Cleanup(func() { _ = le.Release(context.Background()) })
			st, err := redisstore.Open(ctx, rdb, le.Account(), le, redisstore.Options{})
			require.NoError(b, err)
			b.Cleanup(func() { _ = st.Close() })
			return st
		}
	}

	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = sb.Close() })
	var (
		journaled atomic.Int64
		target    atomic.Int64
		done      = make(chan struct{})
		closeOnce sync.Once
	)
	target.Store(-1)
	observe := func(entries []store.Entry) {
		n := 0
		for _, en := range entries {
			ev, err := runner.DecodeEntry(en)
			if err == nil && strings.HasPrefix(ev.GetNewMessage().GetText(), "b ") {
				n++
			}
		}
		if total := journaled.Add(int64(n)); total == target.Load() {
			closeOnce.Do(func() { close(done) })
		}
	}
	type acct struct{ owner, sender *sandbox.User }
	var list []acct
	for i := range accounts {
		owner, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: fmt.Sprintf("99966500%02d", i), FirstName: fmt.Sprintf("Owner%d", i)})
		require.NoError(b, err)
		sender, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: fmt.Sprintf("99966510%02d", i), FirstName: fmt.Sprintf("Sender%d", i)})
		require.NoError(b, err)
		list = append(list, acct{owner, sender})
		cfg := config.Default()
		cfg.Account.APIID = 1
		cfg.Account.APIHash = config.NewSecret("sandbox")
		cfg.Server.Type = config.ServerSandbox
		name := "acc" + strconv.Itoa(i)
		ready := make(chan struct{}, 1)
		r := runner.New(cfg, newBackend(name), runner.Options{
			Account: name, Sandbox: sb, Login: runner.SandboxLogin(sb, owner.Phone, ""),
			Observe: observe, OnReady: func(*runner.Session) { ready <- struct{}{} },
		})
		runCtx, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- r.Run(runCtx) }()
		b.Cleanup(func() { stop(); <-errc })
		select {
		case <-ready:
		case err := <-errc:
			b.Fatalf("account %d stopped: %v", i, err)
		case <-time.After(60 * time.Second):
			b.Fatalf("account %d not ready", i)
		}
	}

	base := journaled.Load()
	target.Store(base + int64(b.N))
	if base == target.Load() {
		closeOnce.Do(func() { close(done) })
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for a, ac := range list {
		wg.Go(func() {
			for i := a; i < b.N; i += accounts {
				if _, err := sb.As(ac.sender.ID).SendText(ctx, sandbox.UserPeer(ac.owner.ID), "b "+strconv.Itoa(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		b.Fatalf("journaled %d of %d", journaled.Load()-base, b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	total := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(total, "updates/s")
	b.ReportMetric(total/float64(accounts), "updates/s/account")
}
