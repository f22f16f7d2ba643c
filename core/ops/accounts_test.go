package ops_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// twoAccounts runs the env's owner as account "main" and bob as account
// "second", each with its own store, stack and runner, under one Ops.
func twoAccounts(t *testing.T, e *env) *ops.Ops {
	t.Helper()
	ctx := context.Background()
	ping := pingPlugin(t)
	acct := func(name string, u *sandbox.User) config.AccountEntry {
		a := e.cfg.Account
		a.Phone = config.NewSecret(u.Phone)
		return config.AccountEntry{Name: name, Account: a, Plugins: []config.Plugin{ping}, OwnPlugins: true}
	}
	e.cfg.Accounts = []config.AccountEntry{acct("main", e.owner), acct("second", e.bob)}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	o, err := ops.New(ops.Options{Config: e.cfg, Dir: e.dir, Logger: log, Listen: "127.0.0.1:0", Notifier: nopNotifier{}})
	require.NoError(t, err)
	require.NoError(t, o.Start(ctx))
	t.Cleanup(func() { require.NoError(t, o.Close()) })
	for _, who := range []struct {
		name string
		u    *sandbox.User
	}{{"main", e.owner}, {"second", e.bob}} {
		acfg, err := e.cfg.ForAccount(who.name)
		require.NoError(t, err)
		st, err := store.Open(ctx, acfg.Storage.Dir, store.Options{})
		require.NoError(t, err)
		stack, err := runner.NewStack(acfg, store.Bolt(st), log)
		require.NoError(t, err)
		opts := runner.Options{
			Logger: log, Account: who.name, Sandbox: e.sb,
			Login:    runner.SandboxLogin(e.sb, who.u.Phone, ""),
			Services: []runner.Service{stack},
		}
		acc := o.Account(who.name)
		require.NotNil(t, acc)
		acc.Serve(&opts, store.Bolt(st), stack)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			err := runner.New(acfg, store.Bolt(st), opts).Run(runCtx)
			acc.Stopped(err)
			done <- err
		}()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
			require.NoError(t, st.Close())
		})
	}
	return o
}

// One Ops serves two accounts: the status lists both with their own
// users and plugins, metrics count each account's updates under its own
// label, and the page lets the owner pick an account.
func TestTwoAccountsOneOps(t *testing.T) {
	e := newEnv(t)
	o := twoAccounts(t, e)
	ctx := context.Background()
	eventually(t, 60*time.Second, "both accounts ready with the ping plugin running", func() bool {
		st := o.Status(ctx)
		if !st.Ready.Ready || len(st.Accounts) != 2 {
			return false
		}
		for _, a := range st.Accounts {
			if len(a.Plugins) != 1 || a.Plugins[0].State != "running" {
				return false
			}
		}
		return true
	})
	st := o.Status(ctx)
	require.Nil(t, st.AccountStatus)
	require.Equal(t, e.owner.ID, st.Accounts[0].Account.UserID)
	require.Equal(t, e.bob.ID, st.Accounts[1].Account.UserID)
	require.Equal(t, "second", st.Accounts[1].Plugins[0].Account)
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	require.NotContains(t, top, "account", "no top-level account with several")
	require.NotContains(t, top, "plugins")
	require.Contains(t, top, "accounts")

	// Alice writes to bob only: only account "second" counts it.
	updates := func(account string) float64 {
		v, _ := value(scrape(t, o), "tgrunner_updates_received_total", map[string]string{"account": account, "kind": "EVENT_KIND_NEW_MESSAGE"})
		return v
	}
	before := updates("main")
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = e.sb.As(e.alice.ID).SendText(sctx, sandbox.UserPeer(e.bob.ID), ".ping")
	require.NoError(t, err)
	_, err = e.sb.WaitMessage(sctx, func(m sandbox.Message) bool {
		return m.From == e.bob.ID && m.Peer == sandbox.UserPeer(e.alice.ID) && strings.HasPrefix(m.Text, "pong")
	})
	require.NoError(t, err, "account second answers")
	eventually(t, 10*time.Second, "the DM counted for account second", func() bool { return updates("second") >= 1 })
	require.Equal(t, before, updates("main"), "account main saw nothing new")
	for _, name := range []string{"main", "second"} {
		v, ok := value(scrape(t, o), "tgrunner_session_up", map[string]string{"account": name})
		require.True(t, ok && v == 1, "tgrunner_session_up{account=%q}", name)
	}
	v, ok := value(scrape(t, o), "tgrunner_plugin_events_delivered_total", map[string]string{"account": "second", "plugin": "ping"})
	require.True(t, ok && v >= 1, "ping delivered for second: %v", v)

	// The plugin is in both accounts: control must name one.
	c := ops.NewClient(filepath.Join(e.dir, config.DefaultSocketName))
	defer c.Close()
	_, err = c.PluginControl(ctx, "ping", "restart")
	require.ErrorContains(t, err, "plugin ping runs for accounts main, second: name one with --account")
	res, err := c.ForAccount("second").PluginControl(ctx, "ping", "restart")
	require.NoError(t, err)
	require.Equal(t, "second: ping: restarting", res.Message)
	recs, err := c.Audit(ctx, guard.AuditFilter{Source: guard.SourceOwner})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "second", recs[0].Account)

	code, _ := get(t, o, "/readyz")
	require.Equal(t, http.StatusOK, code)

	pageShowsAccounts(t, o)
}

// pageShowsAccounts loads the status page in Chromium: the accounts table
// lists both, and picking one shows that account's details.
func pageShowsAccounts(t *testing.T, o *ops.Ops) {
	bin := chromium()
	if bin == "" {
		t.Log("no chromium found: the accounts on the status page were not checked in a browser")
		return
	}
	ctx := browser(t, bin)
	_, err := chromedp.Run(ctx, chromedp.Navigate("http://"+o.Addr()+"/"))
	require.NoError(t, err)
	const read = `JSON.stringify({
	  rows: Array.from(document.querySelectorAll('#accounts tbody tr[data-key]')).map(r =>
	    r.dataset.key + " " + r.querySelector('[data-field="runs"]').textContent + " " + r.querySelector('[data-field="logged-in"]').textContent),
	  account: document.getElementById("account").textContent,
	  picker: !document.getElementById("acct-pick").hidden,
	})`
	type page struct {
		Rows    []string `json:"rows"`
		Account string   `json:"account"`
		Picker  bool     `json:"picker"`
	}
	wait := func(what string, cond func(page) bool) {
		t.Helper()
		var p page
		deadline := time.Now().Add(30 * time.Second)
		for {
			raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](read))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal([]byte(raw), &p))
			if cond(p) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; last: %+v", what, p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("both accounts and the owner's details", func(p page) bool {
		return p.Picker && len(p.Rows) == 2 && p.Rows[0] == "main here yes @owner" && p.Rows[1] == "second here yes @bob" &&
			strings.Contains(p.Account, "@owner")
	})
	_, err = chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const s = document.getElementById("acct-select");
	  s.value = "second"; s.dispatchEvent(new Event("change")); return ""; })()`))
	require.NoError(t, err)
	wait("bob's details after picking account second", func(p page) bool { return strings.Contains(p.Account, "@bob") })
}
