package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// runner run with storage.url runs every account under its lease in Redis.
func TestRunOnRedisHoldsEveryAccount(t *testing.T) {
	srv, err := redistest.Start()
	if err != nil {
		t.Skipf("redis-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	src := fmt.Sprintf(`version: 1
server: sandbox
storage:
  dir: %s
  url: %s
  lease_ttl: 3s
accounts:
  - name: sales
  - name: support
`, t.TempDir(), srv.URL(0))
	cfg, err := config.Parse("t.yaml", []byte(src), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runOnRedis(ctx, cfg, "", nil, zap.New(core)) }()

	ready := func(account string) bool {
		for _, e := range logs.FilterMessage("Ready").All() {
			if e.ContextMap()["account"] == account {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return ready("sales") && ready("support") }, 60*time.Second, 20*time.Millisecond)
	rdb := srv.Client(0)
	defer rdb.Close()
	locker, err := lease.NewLocker(rdb, lease.Options{Holder: "probe"})
	require.NoError(t, err)
	for _, name := range []string{"sales", "support"} {
		holder, token, err := locker.Current(ctx, name)
		require.NoError(t, err)
		require.NotEmpty(t, holder, "account %s is held", name)
		require.NotZero(t, token)
		// The session is in Redis, in the account's namespace.
		n, err := rdb.Exists(ctx, lease.KeyPrefix("", name)+"session").Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "the session of %s is in Redis", name)
	}
	// The status through the control socket shows both accounts run
	// here, under this runner's lease holder id.
	c := ops.NewClient(filepath.Join(runnerStorageDir(cfg), config.DefaultSocketName))
	defer c.Close()
	require.Eventually(t, func() bool {
		st, err := c.Status(ctx)
		if err != nil || len(st.Accounts) != 2 || st.Holder == "" {
			return false
		}
		for _, a := range st.Accounts {
			holder, _, err := locker.Current(ctx, a.Account.Name)
			if err != nil || !a.Held || !a.Account.LoggedIn || holder != st.Holder {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "both accounts in the status, held by this runner")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("runOnRedis did not stop")
	}
}
