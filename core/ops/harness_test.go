package ops_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/crypto"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		panic(err)
	}
	return k
})

// env is a sandbox with the account's owner and two people who write to
// it, and a config running against it.
type env struct {
	sb    *sandbox.Server
	owner *sandbox.User
	alice *sandbox.User
	bob   *sandbox.User
	cfg   *config.Config
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	owner, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996621111", FirstName: "Owner", Username: "owner"})
	require.NoError(t, err)
	alice, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996622222", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)
	bob, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996623333", FirstName: "Bob", Username: "bob"})
	require.NoError(t, err)
	cfg := config.Default()
	cfg.Account.APIID = 1
	cfg.Account.APIHash = config.NewSecret("sandbox")
	cfg.Account.Phone = config.NewSecret(owner.Phone)
	cfg.Server.Type = config.ServerSandbox
	// Short: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "ops")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg.Storage.Dir = filepath.Join(dir, "data")
	return &env{sb: sb, owner: owner, alice: alice, bob: bob, cfg: cfg, dir: cfg.Storage.Dir}
}

// live is a running runner with its stack and ops.
type live struct {
	env   *env
	log   *zap.Logger
	ops   *ops.Ops
	stack *runner.Stack
	store *store.Store
	// done receives Run's result.
	done    chan error
	cancel  context.CancelFunc
	running bool
	ran     sync.Once
	runErr  error
	stop    func() error
}

// cancelRun stops the runner (not ops) and returns Run's result.
func (l *live) cancelRun() error {
	if !l.running {
		return nil
	}
	l.ran.Do(func() {
		l.cancel()
		l.runErr = <-l.done
	})
	return l.runErr
}

func cancelRun(t *testing.T, l *live) {
	t.Helper()
	require.NoError(t, l.cancelRun())
}

// start opens the store and starts ops (HTTP on a free loopback port and
// the socket), then the runner with the standard stack. With wait it
// returns once the session is up and the plugins started.
func (e *env) start(t *testing.T, wait bool) *live {
	t.Helper()
	l := e.startOps(t)
	l.run(t, wait)
	return l
}

// startOps opens the store and starts ops; the runner is not started yet,
// as in `runner run` before the login.
func (e *env) startOps(t *testing.T) *live {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, e.dir, store.Options{})
	require.NoError(t, err)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	stack, err := runner.NewStack(e.cfg, store.Bolt(st), log)
	require.NoError(t, err)
	o, err := ops.New(ops.Options{Config: e.cfg, Store: st, Stack: stack, Logger: log, Listen: "127.0.0.1:0", Notifier: nopNotifier{}})
	require.NoError(t, err)
	require.NoError(t, o.Start(ctx))
	l := &live{env: e, ops: o, stack: stack, store: st, log: log, done: make(chan error, 1), cancel: func() {}}
	var once sync.Once
	l.stop = func() error {
		err := l.cancelRun()
		once.Do(func() {
			require.NoError(t, o.Close())
			require.NoError(t, st.Close())
		})
		return err
	}
	t.Cleanup(func() { _ = l.stop() })
	return l
}

// run starts the runner.
func (l *live) run(t *testing.T, wait bool) {
	t.Helper()
	e := l.env
	ready := make(chan struct{})
	opts := runner.Options{
		Logger:   l.log,
		Sandbox:  e.sb,
		Login:    runner.SandboxLogin(e.sb, e.owner.Phone, ""),
		Services: []runner.Service{l.stack},
		OnReady:  func(*runner.Session) { close(ready) },
	}
	l.ops.Attach(&opts)
	r := runner.New(e.cfg, store.Bolt(l.store), opts)
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.running = true
	go func() {
		err := r.Run(runCtx)
		l.ops.SessionDown(err)
		l.done <- err
	}()
	if !wait {
		return
	}
	select {
	case <-ready:
	case err := <-l.done:
		t.Fatalf("runner stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("runner not ready in 30s")
	}
	select {
	case <-l.stack.Ready():
	case <-time.After(60 * time.Second):
		t.Fatal("plugins not up in 60s")
	}
}

type nopNotifier struct{}

func (nopNotifier) Ready() error                    { return nil }
func (nopNotifier) Reloading() error                { return nil }
func (nopNotifier) Stopping() error                 { return nil }
func (nopNotifier) Watchdog() error                 { return nil }
func (nopNotifier) WatchdogInterval() time.Duration { return 0 }

type builtPlugin struct {
	path, sum string
	err       error
}

var builds sync.Map

// buildPlugin compiles a plugin once per test binary.
func buildPlugin(t *testing.T, pkg string) (string, string) {
	t.Helper()
	f, _ := builds.LoadOrStore(pkg, sync.OnceValue(func() builtPlugin {
		dir, err := os.MkdirTemp("", "tgrunner-plugin-")
		if err != nil {
			return builtPlugin{err: err}
		}
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return builtPlugin{err: err}
		}
		path, sum, err := fileSum(out)
		return builtPlugin{path: path, sum: sum, err: err}
	}))
	b := f.(func() builtPlugin)()
	require.NoError(t, b.err, "build %s", pkg)
	return b.path, b.sum
}

func fileSum(path string) (string, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(b)
	return path, hex.EncodeToString(sum[:]), nil
}

// pluginConfig decodes a plugins: entry the way a user writes it.
func pluginConfig(t *testing.T, entry string) config.Plugin {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte("version: 1\nserver: sandbox\nplugins:\n"+entry), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	return c.Plugins[0]
}

func pingPlugin(t *testing.T) config.Plugin {
	path, sum := buildPlugin(t, "github.com/tgrunner/tgrunner/plugins/examples/ping")
	return pluginConfig(t, `
  - name: ping
    path: `+path+`
    sha256: `+sum+`
    permissions:
      actions: [send]
      chats: [private]
`)
}

// brokenPlugin exits at once; one crash quarantines it.
func brokenPlugin(t *testing.T) config.Plugin {
	path, sum, err := fileSum("/bin/false")
	if err != nil {
		t.Skip("no /bin/false to act as a crashing plugin")
	}
	return pluginConfig(t, `
  - name: broken
    path: `+path+`
    sha256: `+sum+`
    restart:
      max_crashes: 1
`)
}

// get fetches a URL from the ops address.
func get(t *testing.T, o *ops.Ops, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + o.Addr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// scrape parses /metrics.
func scrape(t *testing.T, o *ops.Ops) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, o, "/metrics")
	require.Equal(t, http.StatusOK, code, body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return fams
}

// value returns the value of the series of family name whose labels
// include want, and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping makes from write ".ping" to the owner and waits for the pong.
func (e *env) ping(t *testing.T, from *sandbox.User) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.sb.As(from.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	_, err = e.sb.WaitMessage(ctx, func(m sandbox.Message) bool {
		return m.From == e.owner.ID && m.Peer == sandbox.UserPeer(from.ID) && strings.HasPrefix(m.Text, "pong")
	})
	require.NoError(t, err, "no pong to %s", from.Username)
}
