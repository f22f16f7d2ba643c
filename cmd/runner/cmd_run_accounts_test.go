package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/ops"
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
// storage directory, in one process, and one set of ops servers serves
// them all: the status lists both, pause and resume act on all or on the
// one named, and every metric is labelled with its account.
func TestRunAccountsConnectsEach(t *testing.T) {
	dir := t.TempDir()
	src := fmt.Sprintf(twoAccounts, dir) + "ops: {listen: \"127.0.0.1:0\"}\n"
	cfg, err := config.Parse("t.yaml", []byte(src), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
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

	c := ops.NewClient(filepath.Join(dir, "sandbox-run", config.DefaultSocketName))
	defer c.Close()
	var st ops.Status
	require.Eventually(t, func() bool {
		st, err = c.Status(ctx)
		return err == nil && st.Ready.Ready
	}, 30*time.Second, 50*time.Millisecond, "status through the control socket: %v %+v", err, st.Ready)
	require.Nil(t, st.AccountStatus, "no top-level account fields with several accounts")
	require.Len(t, st.Accounts, 2)
	ids := map[int64]bool{}
	for i, name := range []string{"sales", "support"} {
		a := st.Accounts[i]
		require.Equal(t, name, a.Account.Name)
		require.True(t, a.Held)
		require.True(t, a.Account.LoggedIn, "%s logged in", name)
		require.NotZero(t, a.Account.UserID)
		ids[a.Account.UserID] = true
		require.NotNil(t, a.Guard, "%s has its own guard", name)
	}
	require.Len(t, ids, 2, "two distinct users")
	var text strings.Builder
	require.NoError(t, printStatus(&text, st))
	require.Regexp(t, `(?m)^sales\s+here\s+yes`, text.String())
	require.Regexp(t, `(?m)^support\s+here\s+yes`, text.String())
	require.Contains(t, text.String(), "== account support ==")

	// Pause one account, then all; resume all.
	paused := func() map[string]bool {
		st, err := c.Status(ctx)
		require.NoError(t, err)
		out := map[string]bool{}
		for _, a := range st.Accounts {
			out[a.Account.Name] = a.Guard.Paused
		}
		return out
	}
	res, err := c.ForAccount("support").Pause(ctx, "test")
	require.NoError(t, err)
	require.Contains(t, res.Message, "account support")
	require.Equal(t, map[string]bool{"sales": false, "support": true}, paused())
	_, err = c.Pause(ctx, "all")
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"sales": true, "support": true}, paused())
	_, err = c.Resume(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"sales": false, "support": false}, paused())
	_, err = c.ForAccount("nobody").Pause(ctx, "")
	require.ErrorContains(t, err, `no account named "nobody"`)
	_, err = c.Backup(ctx, io.Discard)
	require.ErrorContains(t, err, "name one with --account")
	n, err := c.ForAccount("sales").Backup(ctx, io.Discard)
	require.NoError(t, err)
	require.Positive(t, n)

	// Metrics: one series per account.
	var url string
	for _, e := range logs.FilterMessage("Status page, metrics and health checks").All() {
		url = e.ContextMap()["url"].(string)
	}
	require.NotEmpty(t, url)
	resp, err := http.Get(url + "metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	for _, name := range []string{"sales", "support"} {
		require.Contains(t, string(body), `tgrunner_session_up{account="`+name+`"} 1`)
		require.Contains(t, string(body), `tgrunner_account_held{account="`+name+`"} 1`)
	}
	resp, err = http.Get(url + "readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
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
