package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tgrunner/tgrunner/core/config"
)

const twoAccounts = `version: 1
server: sandbox
storage:
  dir: %s
accounts:
  - name: sales
  - name: support
`

// runner run with accounts: connects every account, each in its own
// storage directory, in one process.
func TestRunAccountsConnectsEach(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(twoAccounts, dir)), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runAccounts(ctx, cfg, "", zap.New(core)) }()

	ready := func(account string) bool {
		for _, e := range logs.FilterMessage("Ready").All() {
			if e.ContextMap()["account"] == account {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return ready("sales") && ready("support") }, 60*time.Second, 20*time.Millisecond)
	for _, name := range []string{"sales", "support"} {
		_, err := os.Stat(filepath.Join(dir, "sandbox-run", name))
		require.NoError(t, err, "account %s has its own storage directory", name)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("runAccounts did not stop")
	}
}

func TestAccountConfigNeedsAName(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(twoAccounts, t.TempDir())), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	_, _, err = accountConfigName(cfg, "")
	require.ErrorContains(t, err, "choose one with --account NAME")
	_, _, err = accountConfigName(cfg, "nobody")
	require.ErrorContains(t, err, `account "nobody" is not in the config`)
	name, acfg, err := accountConfigName(cfg, "support")
	require.NoError(t, err)
	require.Equal(t, "support", name)
	require.Equal(t, filepath.Join(cfg.Storage.Dir, "support"), acfg.Storage.Dir)
}
