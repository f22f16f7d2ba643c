package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/pluginhost/hosttest"
	"github.com/tgrunner/tgrunner/core/pluginhost/testdata/plugins/tplug"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// testPlugins are built once per test binary from testdata/plugins.
var testPlugins = []string{"probe", "crasher", "noisy"}

var pluginBin = map[string]string{}

func TestMain(m *testing.M) {
	// Builtin plugins are served by re-executing the runner binary as
	// `<binary> plugin NAME`; here the test binary plays the runner.
	if len(os.Args) >= 3 && os.Args[1] == "plugin" {
		tplug.Serve(tplug.Plugin{Info: &pluginv1.PluginInfo{Name: os.Args[2], Version: "builtin", Sdk: "tplug"}})
		return
	}
	if len(os.Args) >= 3 && os.Args[1] == "echo" {
		echoChild(os.Args[2]) // BenchmarkCrossProcessFloor
		return
	}
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range testPlugins {
		args = append(args, "./testdata/plugins/"+p)
		pluginBin[p] = filepath.Join(dir, p)
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build test plugins:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a host wired to in-memory runner pieces.
type env struct {
	host  *pluginhost.Host
	feeds *hosttest.Feeds
	exec  *hosttest.Executor
	audit *hosttest.Auditor
	kv    *hosttest.KV
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// spec is a plugin spec with test-sized timeouts.
func spec(t testing.TB, name, plugin string) pluginhost.Spec {
	path := pluginBin[plugin]
	return pluginhost.Spec{
		Name: name, Path: path, SHA256: sha256File(t, path),
		WorkDir:        filepath.Join(t.TempDir(), name),
		StartTimeout:   10 * time.Second,
		EventDeadline:  5 * time.Second,
		HealthInterval: 500 * time.Millisecond,
		Restart: pluginhost.RestartPolicy{
			BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
			MaxCrashes: 1000, Window: time.Minute,
		},
	}
}

func start(t testing.TB, opts pluginhost.Options, specs ...pluginhost.Spec) *env {
	t.Helper()
	e := &env{feeds: &hosttest.Feeds{}, exec: &hosttest.Executor{}, audit: &hosttest.Auditor{}, kv: &hosttest.KV{}}
	opts.Feeds = e.feeds.Source
	opts.Executor = e.exec
	opts.Auditor = e.audit
	opts.KV = e.kv
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	h, err := pluginhost.New(opts, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.host = h
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}

func text(s string) *pluginv1.Event {
	return chatText(&pluginv1.Chat{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 100}, Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE}, s)
}

func chatText(chat *pluginv1.Chat, s string) *pluginv1.Event {
	return &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE, Account: "main",
		Payload: &pluginv1.Event_NewMessage{NewMessage: &pluginv1.Message{Id: 1, Chat: chat, Text: s}}}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) status(t testing.TB, name string) pluginhost.Status {
	t.Helper()
	st, ok := e.host.StatusOf(name)
	if !ok {
		t.Fatalf("no plugin %q", name)
	}
	return st
}

func (e *env) waitState(t testing.TB, name string, s pluginhost.State) pluginhost.Status {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%s to be %s", name, s), func() bool { return e.status(t, name).State == s })
	return e.status(t, name)
}

func (e *env) waitAllAcked(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.feeds.Get(name).WaitAllAcked(ctx); err != nil {
		t.Fatalf("%s: %v; status %+v", name, err, e.status(t, name))
	}
}

// report waits for a value the plugin reported through its KV namespace.
func (e *env) report(t testing.TB, name, key string) string {
	t.Helper()
	var v []byte
	waitFor(t, 15*time.Second, fmt.Sprintf("%s to report %s", name, key), func() bool {
		var ok bool
		v, ok, _ = e.kv.Get(context.Background(), name, key)
		return ok
	})
	return string(v)
}

func assertNoBadAcks(t testing.TB, f *hosttest.Feed) {
	t.Helper()
	if _, _, _, bad := f.Stats(); len(bad) > 0 {
		t.Fatalf("acks of seqs never published: %v", bad)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
