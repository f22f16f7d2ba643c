package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/crypto"
	"github.com/spf13/cobra"
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

var opsTestKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		panic(err)
	}
	return k
})

// opsEnv is a sandbox, a config file for the CLI, and an in-process runner
// using the storage that config names, as `runner run` would.
type opsEnv struct {
	sb      *sandbox.Server
	owner   *sandbox.User
	alice   *sandbox.User
	cfgPath string
	cfg     *config.Config
}

func newOpsEnv(t *testing.T, plugins string) *opsEnv {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: opsTestKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	owner, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996621111", FirstName: "Owner", Username: "owner"})
	require.NoError(t, err)
	alice, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996622222", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)
	// Short: the socket path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "rs")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := writeConfig(t, dir, "tgrunner.yaml", "version: 1\nserver: sandbox\nstorage:\n  dir: "+filepath.Join(dir, "data")+"\n"+plugins)
	cfg, err := config.Load(ctx, path, config.LoadOptions{})
	require.NoError(t, err)
	cfg.Storage.Dir = runnerStorageDir(cfg)
	return &opsEnv{sb: sb, owner: owner, alice: alice, cfgPath: path, cfg: cfg}
}

type liveRunner struct {
	socket string
	store  *store.Store
	stop   func() error
}

// start runs the runner with ops like `runner run` does. login false
// requires the session to be in the storage already.
func (e *opsEnv) start(t *testing.T, login bool) *liveRunner {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, e.cfg.Storage.Dir, store.Options{})
	require.NoError(t, err)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	stack, err := runner.NewStack(e.cfg, store.Bolt(st), log)
	require.NoError(t, err)
	ready := make(chan struct{})
	opts := runner.Options{Logger: log, Sandbox: e.sb, Services: []runner.Service{stack},
		OnReady: func(*runner.Session) { close(ready) }}
	if login {
		opts.Login = runner.SandboxLogin(e.sb, e.owner.Phone, "")
	}
	// Wired as `runner run` wires it.
	cmd := &cobra.Command{}
	cmd.Flags().String("config", e.cfgPath, "")
	finish, _, err := startOps(ctx, cmd, e.cfg, st, stack, &opts, log)
	require.NoError(t, err)
	r := runner.New(e.cfg, store.Bolt(st), opts)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("runner stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("runner not ready in 30s")
	}
	select {
	case <-stack.Ready():
	case <-time.After(60 * time.Second):
		t.Fatal("plugins not up in 60s")
	}
	var once sync.Once
	var runErr error
	l := &liveRunner{store: st, socket: e.cfg.Ops.SocketPath(st.Dir())}
	l.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			finish(runErr)
			require.NoError(t, st.Close())
		})
		return runErr
	}
	t.Cleanup(func() { _ = l.stop() })
	return l
}

// cli runs `runner ARGS... --config <the env's config>` in process.
func (e *opsEnv) cli(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "runner", SilenceErrors: true, SilenceUsage: true}
	root.PersistentFlags().String("config", "", "config file")
	root.AddCommand(opsCommands()...)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append(args, "--config", e.cfgPath))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func buildPingPlugin(t *testing.T) (path, sum string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ping")
	cmd := exec.Command("go", "build", "-o", out, "github.com/tgrunner/tgrunner/plugins/examples/ping")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return out, hex.EncodeToString(s[:])
}

func (e *opsEnv) ping(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	_, err = e.sb.WaitMessage(ctx, func(m sandbox.Message) bool {
		return m.From == e.owner.ID && m.Peer == sandbox.UserPeer(e.alice.ID) && strings.HasPrefix(m.Text, "pong")
	})
	require.NoError(t, err)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runner status, pause, resume, reload, plugins and audit against a live
// runner, compared with what the runner itself reports.
func TestStatusAndControlAgainstLiveRunner(t *testing.T) {
	bin, sum := buildPingPlugin(t)
	e := newOpsEnv(t, "plugins:\n  - name: ping\n    path: "+bin+"\n    sha256: "+sum+"\n    permissions:\n      actions: [send]\n      chats: [private]\n")

	_, _, err := e.cli(t, "status")
	var notRunning *ops.NotRunningError
	require.ErrorAs(t, err, &notRunning, "status without a runner")
	require.Contains(t, err.Error(), "no runner is running")

	l := e.start(t, true)
	e.ping(t)
	waitFor(t, "the .ping acked", func() bool {
		st := e.mustStatus(t)
		return len(st.Plugins) == 1 && st.Plugins[0].Delivered >= 1 && st.Journal.Lag == 0
	})

	out, _, err := e.cli(t, "status", "--json")
	require.NoError(t, err)
	var got ops.Status
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	want, err := ops.NewClient(l.socket).Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, want.Account, got.Account)
	require.Equal(t, e.owner.ID, got.Account.UserID)
	require.Equal(t, "owner", got.Account.Username)
	require.True(t, got.Account.LoggedIn)
	require.Equal(t, "ready", got.Connection.State)
	require.Equal(t, "sandbox", got.Connection.Server)
	require.Equal(t, want.Journal.LastSeq, got.Journal.LastSeq)
	require.Equal(t, uint64(0), got.Journal.Lag)
	require.Len(t, got.Plugins, 1)
	gp, wp := got.Plugins[0], want.Plugins[0]
	require.Equal(t, "ping", gp.Name)
	require.Equal(t, "running", gp.State)
	require.Equal(t, wp.Delivered, gp.Delivered)
	require.Equal(t, wp.PID, gp.PID)
	require.Equal(t, 0, gp.Restarts)
	require.Equal(t, 0, gp.QueueDepth)
	require.NotNil(t, got.Guard)
	require.False(t, got.Guard.Paused)
	require.False(t, got.Guard.DryRun)
	var budgetNames []string
	for _, b := range got.Guard.Budgets {
		budgetNames = append(budgetNames, b.Name)
	}
	require.Contains(t, budgetNames, "global")
	require.True(t, got.Ready.Ready, "%v", got.Ready.Problems)

	out, _, err = e.cli(t, "status")
	require.NoError(t, err)
	require.Contains(t, out, "Owner @owner (id "+itoa(e.owner.ID)+"), logged in since")
	require.Contains(t, out, "ready to sandbox")
	require.Regexp(t, `Update lag\s+0 events`, out)
	require.Regexp(t, `Writes\s+flowing`, out)
	require.Regexp(t, `ping\s+running\s+0\s+0\s+`+itoa(int64(wp.Delivered))+`\s+0\s+0\s+0\s+-`, out)

	// Pause and resume go to the guard; the status shows it.
	out, _, err = e.cli(t, "pause", "maintenance", "window")
	require.NoError(t, err)
	require.Contains(t, out, "paused")
	snap := e.mustStatus(t)
	require.True(t, snap.Guard.Paused)
	require.Equal(t, "maintenance window", snap.Guard.PauseReason)
	out, _, err = e.cli(t, "status")
	require.NoError(t, err)
	require.Contains(t, out, "PAUSED: maintenance window")
	_, _, err = e.cli(t, "resume")
	require.NoError(t, err)
	require.False(t, e.mustStatus(t).Guard.Paused)

	// Reload: a broken config is refused and the running one stays; a
	// good one is applied.
	good, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.cfgPath, append(good, []byte("limits:\n  dry_run: maybe\n")...), 0o600))
	cmd := &cobra.Command{}
	cmd.Flags().String("socket", l.socket, "")
	c, err := dialRunner(cmd)
	require.NoError(t, err)
	_, err = c.Reload(context.Background())
	require.ErrorContains(t, err, "reload refused, the old config keeps running")
	require.ErrorContains(t, err, "limits.dry_run")
	require.NoError(t, os.WriteFile(e.cfgPath, append(good, []byte("limits:\n  dry_run: true\n")...), 0o600))
	out, _, err = e.cli(t, "reload")
	require.NoError(t, err)
	require.Contains(t, out, "reloaded")
	require.True(t, e.mustStatus(t).Guard.DryRun, "the reloaded limits are live")
	require.NoError(t, os.WriteFile(e.cfgPath, good, 0o600))
	_, _, err = e.cli(t, "reload")
	require.NoError(t, err)
	require.False(t, e.mustStatus(t).Guard.DryRun)
	_, _, err = e.cli(t, "reload", "--account", "main")
	require.ErrorContains(t, err, "--account main: reload re-reads the whole config")
	c.Close()

	// Plugins.
	out, _, err = e.cli(t, "plugins", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^ping\s+running`, out)
	out, _, err = e.cli(t, "plugins", "status", "ping")
	require.NoError(t, err)
	require.Regexp(t, `State\s+running since`, out)
	_, _, err = e.cli(t, "plugins", "status", "nope")
	require.ErrorContains(t, err, `no plugin named "nope"`)
	_, _, err = e.cli(t, "plugins", "restart")
	require.ErrorContains(t, err, "takes a plugin name")
	_, _, err = e.cli(t, "plugins", "disable", "ping")
	require.NoError(t, err)
	require.Equal(t, "disabled", e.mustStatus(t).Plugins[0].State)
	_, _, err = e.cli(t, "plugins", "enable", "ping")
	require.NoError(t, err)
	waitFor(t, "ping running again", func() bool { return e.mustStatus(t).Plugins[0].State == "running" })
	out, _, err = e.cli(t, "plugins", "restart", "ping")
	require.NoError(t, err)
	require.Contains(t, out, "ping: restarting")
	waitFor(t, "ping restarted", func() bool {
		p := e.mustStatus(t).Plugins[0]
		return p.State == "running" && p.Restarts == 2
	})
	e.ping(t)

	// The audit log through the socket, while the runner holds the storage.
	cmd = &cobra.Command{Use: "audit"}
	cmd.Flags().String("config", e.cfgPath, "")
	cmd.SetContext(context.Background())
	recs, ok, err := auditThroughRunner(cmd, guard.AuditFilter{})
	require.NoError(t, err)
	require.True(t, ok)
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Source+" "+r.Kind+" "+r.Outcome)
	}
	require.Contains(t, kinds, "plugin:ping send ok")
	require.Contains(t, kinds, "owner pause ok")
	require.Contains(t, kinds, "owner resume ok")
	require.Contains(t, kinds, "owner plugin_restart ok")
	recs, _, err = auditThroughRunner(cmd, guard.AuditFilter{Source: "owner", Limit: 1})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "plugin_restart", recs[0].Kind)

	// --socket and $TGRUNNER_SOCKET reach the runner without the config.
	root := &cobra.Command{Use: "runner", SilenceErrors: true, SilenceUsage: true}
	root.PersistentFlags().String("config", "/nonexistent.yaml", "")
	root.AddCommand(opsCommands()...)
	var buf bytes.Buffer
	root.SetOut(&buf)
	root.SetArgs([]string{"status", "--socket", l.socket})
	require.NoError(t, root.ExecuteContext(context.Background()))
	require.Contains(t, buf.String(), "@owner")

	// The socket is the owner's only.
	fi, err := os.Stat(l.socket)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, l.stop())
	_, err = os.Stat(l.socket)
	require.ErrorIs(t, err, os.ErrNotExist, "the socket is removed at stop")
}

func (e *opsEnv) mustStatus(t *testing.T) ops.Status {
	t.Helper()
	out, _, err := e.cli(t, "status", "--json")
	require.NoError(t, err)
	var st ops.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	return st
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
