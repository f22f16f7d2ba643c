package pluginhost_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gotd/td/tg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/pluginhost/hosttest"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func TestDeliversEveryEventAndAcksIt(t *testing.T) {
	e := start(t, pluginhost.Options{}, spec(t, "probe", "probe"))
	feed := e.feeds.Get("probe")
	for i := range 500 {
		feed.Publish(text(fmt.Sprintf("hello %d", i)))
	}
	e.waitAllAcked(t, "probe")
	st := e.status(t, "probe")
	if st.Delivered != 500 || st.State != pluginhost.StateRunning || st.Restarts != 0 {
		t.Fatalf("status %+v", st)
	}
	if st.Version != "1.0.0" || st.SDK != "tplug" || st.PID == 0 {
		t.Fatalf("info not in status: %+v", st)
	}
	assertNoBadAcks(t, feed)
}

func TestCrashingPluginIsRestartedAndOthersAreUnaffected(t *testing.T) {
	e := start(t, pluginhost.Options{}, spec(t, "crasher", "crasher"), spec(t, "calm", "probe"))
	crashFeed, calmFeed := e.feeds.Get("crasher"), e.feeds.Get("calm")
	for i := range 30 {
		crashFeed.Publish(text(fmt.Sprintf("c%d", i)))
		calmFeed.Publish(text(fmt.Sprintf("p%d", i)))
	}
	e.waitAllAcked(t, "calm")
	e.waitAllAcked(t, "crasher")

	crash := e.status(t, "crasher")
	// Every third event in a process kills it; the event is redelivered to
	// the next process as its first, so 30 events need at least 14 crashes.
	if crash.Restarts < 14 || crash.Delivered < 30 {
		t.Fatalf("crasher: want >= 14 restarts and all 30 events handled, got %+v", crash)
	}
	if !contains(crash.LastError, "session") && !contains(crash.LastError, "exited") {
		t.Fatalf("crasher: last error %q does not say the process died", crash.LastError)
	}
	calm := e.status(t, "calm")
	if calm.Restarts != 0 || calm.Delivered != 30 || calm.State != pluginhost.StateRunning {
		t.Fatalf("calm plugin was affected: %+v", calm)
	}
	assertNoBadAcks(t, crashFeed)
}

func TestHungPluginIsKilledAtItsDeadlineAndTheEventRedelivered(t *testing.T) {
	s := spec(t, "hanger", "probe")
	s.EventDeadline = 300 * time.Millisecond
	s.Grants = pluginhost.Grants{Actions: []string{"send"}, Chats: []pluginhost.ChatRef{mustChat(t, "user:5")}}
	e := start(t, pluginhost.Options{}, s)
	feed := e.feeds.Get("hanger")
	feed.Publish(text("send user:5"))
	feed.Publish(text("hang-once"))
	began := time.Now()
	for i := range 10 {
		feed.Publish(text(fmt.Sprintf("after %d", i)))
	}
	feed.Publish(text("send user:5"))
	e.waitAllAcked(t, "hanger")
	// The executor learns which process asked: the guard counts identical
	// answers to one event per process (see action.Call.Delivery).
	var launches []int
	for _, c := range e.exec.Calls() {
		launches = append(launches, c.Launch)
	}
	if len(launches) < 2 || launches[0] != 1 || launches[len(launches)-1] != 2 {
		t.Fatalf("want the sends from process 1 and then 2, got launches %v", launches)
	}
	if took := time.Since(began); took < s.EventDeadline {
		t.Fatalf("hang handled in %s, before the %s deadline", took, s.EventDeadline)
	}
	st := e.status(t, "hanger")
	// The plugin holds the ack of the event before the hang in its batch,
	// so that one may be the oldest unacked and is redelivered too.
	if st.Restarts != 1 || !contains(st.LastError, "not acked within 300ms") || st.Delivered < 12 {
		t.Fatalf("want one restart for the hang, got %+v", st)
	}
	if _, err := os.Stat(filepath.Join(s.WorkDir, "hung-once")); err != nil {
		t.Fatalf("the plugin did not run in its working directory: %v", err)
	}
}

func TestStdoutBeforeHandshakeIsAClearError(t *testing.T) {
	e := start(t, pluginhost.Options{}, spec(t, "noisy", "noisy"))
	st := e.waitState(t, "noisy", pluginhost.StateQuarantined)
	for _, want := range []string{`plugin "noisy"`, `"hello from noisy, loading config..."`, "stdout before the go-plugin handshake"} {
		if !contains(st.QuarantineReason, want) {
			t.Fatalf("reason %q does not contain %q", st.QuarantineReason, want)
		}
	}
}

func TestChecksumMismatchRefusesToStart(t *testing.T) {
	s := spec(t, "pinned", "probe")
	s.SHA256 = strings.Repeat("ab", 32)
	e := start(t, pluginhost.Options{}, s)
	st := e.waitState(t, "pinned", pluginhost.StateQuarantined)
	actual := sha256File(t, s.Path)
	for _, want := range []string{`plugin "pinned"`, "refusing to start", actual, s.SHA256} {
		if !contains(st.QuarantineReason, want) {
			t.Fatalf("reason %q does not contain %q", st.QuarantineReason, want)
		}
	}
	if st.Restarts != 0 {
		t.Fatalf("retried a pinned binary with the wrong checksum: %+v", st)
	}
	if _, err := os.Stat(s.WorkDir); err != nil {
		t.Fatalf("work dir: %v", err)
	}
}

func TestForbiddenActionsAndChatsAreDeniedAndAudited(t *testing.T) {
	limited := spec(t, "limited", "probe")
	limited.Grants = pluginhost.Grants{Actions: []string{"send"}, Chats: []pluginhost.ChatRef{
		mustChat(t, "user:5"), mustChat(t, "@alice"), mustChat(t, "group"),
	}}
	raw := spec(t, "raw", "probe")
	raw.Grants = pluginhost.Grants{Actions: []string{"raw_invoke"}}
	resolver := hosttest.Resolver{
		"user:7": {Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 7}, Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE, Username: "Alice"},
		"user:8": {Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 8}, Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE},
		"chat:9": {Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHAT, Id: 9}, Type: pluginv1.ChatType_CHAT_TYPE_GROUP},
	}
	e := start(t, pluginhost.Options{Resolver: resolver}, limited, raw)

	tl := func(id uint32) string {
		return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, id)) + "00000000"
	}
	cases := []struct {
		plugin, text, want string
	}{
		{"limited", "send user:5", "OK"},
		{"limited", "send user:7", "OK"}, // granted as @alice
		{"limited", "send chat:9", "OK"}, // granted as a group
		{"limited", "send user:8", "ERROR_CODE_FORBIDDEN: send: chat user:8 is not granted"},
		{"limited", "send channel:3", "ERROR_CODE_NOT_FOUND"},
		{"limited", "raw " + tl(tg.HelpGetConfigRequestTypeID), `ERROR_CODE_FORBIDDEN: action "raw_invoke" is not granted`},
		{"raw", "raw " + tl(tg.HelpGetConfigRequestTypeID), "OK"},
		{"raw", "raw " + tl(tg.AuthLogOutRequestTypeID), "ERROR_CODE_FORBIDDEN: raw_invoke: auth.logOut"},
		{"raw", "raw " + tl(tg.AccountDeleteAccountRequestTypeID), "ERROR_CODE_FORBIDDEN: raw_invoke: account.deleteAccount"},
		{"raw", "raw " + tl(tg.AccountUpdatePasswordSettingsRequestTypeID), "ERROR_CODE_FORBIDDEN"},
		{"raw", "raw " + tl(tg.InvokeWithLayerRequestTypeID), "ERROR_CODE_FORBIDDEN"},
		{"raw", "send user:5", `ERROR_CODE_FORBIDDEN: action "send" is not granted`},
	}
	for _, c := range cases {
		seq := e.feeds.Get(c.plugin).Publish(text(c.text))
		got := e.report(t, c.plugin, fmt.Sprintf("result:%d", seq))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s %q: got %q, want prefix %q", c.plugin, c.text, got, c.want)
		}
	}

	calls := e.exec.Calls()
	if len(calls) != 4 {
		t.Fatalf("executor got %d calls, want the 4 allowed ones: %+v", len(calls), calls)
	}
	for _, c := range calls {
		if c.Plugin != "limited" && c.Plugin != "raw" || c.CauseSeq == 0 {
			t.Fatalf("call without plugin name or cause: %+v", c)
		}
	}
	var denied []string
	for _, a := range e.audit.Entries() {
		if a.Kind == pluginhost.AuditDenied {
			denied = append(denied, a.Plugin+"/"+a.Action+"/"+a.Chat)
			if a.CauseSeq == 0 || a.Reason == "" {
				t.Errorf("audit entry without cause or reason: %+v", a)
			}
		}
	}
	want := "limited/send/user:8 limited/raw_invoke/ raw/raw_invoke/ raw/raw_invoke/ raw/raw_invoke/ raw/raw_invoke/ raw/send/"
	if got := strings.Join(denied, " "); got != want {
		t.Fatalf("denials audited:\n got %s\nwant %s", got, want)
	}
	if st := e.status(t, "raw"); st.Denied != 5 {
		t.Fatalf("raw: denied %d, want 5", st.Denied)
	}
}

func mustChat(t testing.TB, s string) pluginhost.ChatRef {
	t.Helper()
	c, err := pluginhost.ParseChatRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPluginEnvironmentHoldsNoRunnerSecrets(t *testing.T) {
	t.Setenv("TG_API_HASH", "0123456789abcdef-hash")
	t.Setenv("TGRUNNER_SESSION", "session-secret")
	t.Setenv("API_HASH", "another-hash")
	t.Setenv("MY_2FA", "hunter2")
	t.Setenv("UNLISTED_VAR", "unlisted")
	t.Setenv("WEATHER_TOKEN", "plugin-own-token")
	s := spec(t, "envprobe", "probe")
	s.EnvAllow = []string{"WEATHER_TOKEN", "MISSING_VAR"}
	e := start(t, pluginhost.Options{DenyEnv: []string{"TG_API_HASH"}}, s)
	e.feeds.Get("envprobe").Publish(text("env"), text("cwd"))
	env := e.report(t, "envprobe", "env")
	for _, secret := range []string{"0123456789abcdef-hash", "session-secret", "another-hash", "hunter2", "unlisted", "HOME=", "PATH="} {
		if contains(env, secret) {
			t.Errorf("plugin environment contains %q:\n%s", secret, env)
		}
	}
	var names []string
	for _, kv := range strings.Split(env, "\x00") {
		name, _, _ := strings.Cut(kv, "=")
		if name != "WEATHER_TOKEN" && !strings.HasPrefix(name, "PLUGIN_") && name != "TGRUNNER_PLUGIN_COOKIE" {
			names = append(names, name)
		}
	}
	if len(names) > 0 || !contains(env, "WEATHER_TOKEN=plugin-own-token") {
		t.Fatalf("want only WEATHER_TOKEN and go-plugin's variables, got unexpected %v in:\n%s", names, env)
	}
	if cwd := e.report(t, "envprobe", "cwd"); cwd != s.WorkDir {
		t.Fatalf("cwd %q, want %q", cwd, s.WorkDir)
	}
	fi, err := os.Stat(s.WorkDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("work dir mode: %v %v", fi.Mode(), err)
	}
}

func TestSecretLookingEnvAllowIsRejected(t *testing.T) {
	s := spec(t, "leaky", "probe")
	s.EnvAllow = []string{"TG_API_HASH"}
	_, err := pluginhost.New(pluginhost.Options{Feeds: (&hosttest.Feeds{}).Source, Executor: &hosttest.Executor{}}, s)
	if err == nil || !contains(err.Error(), `plugin "leaky": env: TG_API_HASH looks like one of the runner's secrets`) {
		t.Fatalf("got %v", err)
	}
}

func TestKill9MidStreamLosesNoEvent(t *testing.T) {
	s := spec(t, "victim", "probe")
	e := start(t, pluginhost.Options{}, s)
	feed := e.feeds.Get("victim")
	const n = 400
	for range n {
		feed.Publish(text("slow 2"))
	}
	waitFor(t, 15*time.Second, "some events delivered", func() bool { return e.status(t, "victim").Delivered >= 50 })
	st := e.status(t, "victim")
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitAllAcked(t, "victim")
	st = e.status(t, "victim")
	if st.Restarts != 1 {
		t.Fatalf("want one restart after kill -9, got %+v", st)
	}
	pos, last, _, bad := feed.Stats()
	if pos != n || last != n || len(bad) > 0 {
		t.Fatalf("feed position %d of %d, bad acks %v", pos, last, bad)
	}
	// Events in flight at the kill are delivered again (at least once);
	// nothing else is.
	if st.Delivered < n || st.Delivered > n+uint64(s.WithDefaults().Window) {
		t.Fatalf("delivered %d, want %d plus at most a window of redeliveries", st.Delivered, n)
	}
}

func TestQuarantineAfterTooManyCrashes(t *testing.T) {
	s := spec(t, "fragile", "crasher")
	s.Restart.MaxCrashes = 3
	e := start(t, pluginhost.Options{}, s)
	feed := e.feeds.Get("fragile")
	for range 30 {
		feed.Publish(text("x"))
	}
	st := e.waitState(t, "fragile", pluginhost.StateQuarantined)
	if st.Crashes != 3 || st.Restarts != 2 || !contains(st.QuarantineReason, "3 crashes within 1m0s") || st.PID != 0 {
		t.Fatalf("status %+v", st)
	}
	var audited bool
	for _, a := range e.audit.Entries() {
		audited = audited || a.Kind == pluginhost.AuditQuarantined && a.Plugin == "fragile"
	}
	if !audited {
		t.Fatal("quarantine not audited")
	}
	// It stays stopped: nothing more is delivered.
	delivered := st.Delivered
	time.Sleep(200 * time.Millisecond)
	if st := e.status(t, "fragile"); st.State != pluginhost.StateQuarantined || st.Delivered != delivered {
		t.Fatalf("quarantined plugin ran on: %+v", st)
	}
	// Enable brings it back with a clean crash count.
	if err := e.host.Enable("fragile"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "delivery after enable", func() bool { return e.status(t, "fragile").Delivered > delivered })
}

func TestControlDisableEnableRestart(t *testing.T) {
	e := start(t, pluginhost.Options{}, spec(t, "ctl", "probe"))
	feed := e.feeds.Get("ctl")
	feed.Publish(text("a"))
	e.waitAllAcked(t, "ctl")
	if err := e.host.Disable("ctl"); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, "ctl"); st.State != pluginhost.StateDisabled || st.PID != 0 {
		t.Fatalf("after disable: %+v", st)
	}
	feed.Publish(text("b"))
	time.Sleep(100 * time.Millisecond)
	if pos, _, _, _ := feed.Stats(); pos != 1 {
		t.Fatalf("disabled plugin got events: position %d", pos)
	}
	if err := e.host.Enable("ctl"); err != nil {
		t.Fatal(err)
	}
	e.waitAllAcked(t, "ctl")
	pid := e.waitState(t, "ctl", pluginhost.StateRunning).PID
	if err := e.host.Restart("ctl"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a new process", func() bool {
		st := e.status(t, "ctl")
		return st.State == pluginhost.StateRunning && st.PID != pid
	})
	if st := e.status(t, "ctl"); st.Crashes != 0 || st.Restarts != 2 {
		t.Fatalf("after restart: %+v", st)
	}
	if err := e.host.Restart("nope"); err == nil {
		t.Fatal("restart of an unknown plugin succeeded")
	}
}

func TestOverflowDropOldest(t *testing.T) {
	s := spec(t, "dropper", "probe")
	s.Queue = pluginhost.QueuePolicy{Size: 4, Overflow: pluginhost.OverflowDropOldest}
	s.Window = 1
	e := start(t, pluginhost.Options{}, s)
	feed := e.feeds.Get("dropper")
	e.waitState(t, "dropper", pluginhost.StateRunning)
	feed.Publish(text("slow 300"))
	for range 40 {
		feed.Publish(text("x"))
	}
	e.waitAllAcked(t, "dropper")
	st := e.status(t, "dropper")
	if st.Dropped == 0 || st.Delivered+st.Dropped != 41 {
		t.Fatalf("want some of 41 dropped and the rest delivered, got %+v", st)
	}
	var audited bool
	for _, a := range e.audit.Entries() {
		audited = audited || a.Kind == pluginhost.AuditDropped
	}
	if !audited {
		t.Fatal("drops not audited")
	}
}

func TestOverflowQuarantine(t *testing.T) {
	s := spec(t, "strict", "probe")
	s.Queue = pluginhost.QueuePolicy{Size: 2, Overflow: pluginhost.OverflowQuarantine}
	s.Window = 1
	e := start(t, pluginhost.Options{}, s)
	feed := e.feeds.Get("strict")
	e.waitState(t, "strict", pluginhost.StateRunning)
	feed.Publish(text("slow 500"))
	for range 10 {
		feed.Publish(text("x"))
	}
	st := e.waitState(t, "strict", pluginhost.StateQuarantined)
	if !contains(st.QuarantineReason, "queue overflow") {
		t.Fatalf("reason %q", st.QuarantineReason)
	}
	// Its events stay in the feed for when it is enabled again.
	if pos, _, _, _ := feed.Stats(); pos > 1 {
		t.Fatalf("events acked past the overflow: position %d", pos)
	}
	if err := e.host.Enable("strict"); err != nil {
		t.Fatal(err)
	}
}

// readCounter is a feed that remembers the highest seq it handed out.
type readCounter struct {
	*hosttest.Feed
	highest atomic.Uint64
}

func (r *readCounter) Read(ctx context.Context, after uint64, max int) ([]*pluginv1.Event, error) {
	evs, err := r.Feed.Read(ctx, after, max)
	if n := len(evs); n > 0 && evs[n-1].Seq > r.highest.Load() {
		r.highest.Store(evs[n-1].Seq)
	}
	return evs, err
}

func TestOverflowBlockStopsReadingTheFeed(t *testing.T) {
	s := spec(t, "blocker", "probe")
	s.Queue = pluginhost.QueuePolicy{Size: 3, Overflow: pluginhost.OverflowBlock}
	s.Window = 2
	feed := &readCounter{Feed: hosttest.NewFeed()}
	h, err := pluginhost.New(pluginhost.Options{
		Feeds:    func(context.Context, string) (pluginhost.Feed, error) { return feed, nil },
		Executor: &hosttest.Executor{}, KV: &hosttest.KV{},
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	for range 40 {
		feed.Publish(text("slow 10"))
	}
	for {
		// Never more read than queue + window beyond what the plugin acked.
		// (Read highest first: the acked count only grows meanwhile.)
		highest := feed.highest.Load()
		st, _ := h.StatusOf("blocker")
		if ahead := highest - st.Delivered; ahead > uint64(s.Queue.Size+s.Window) {
			t.Fatalf("read %d events ahead of the plugin's acks with queue %d and window %d", ahead, s.Queue.Size, s.Window)
		}
		if pos, last, _, _ := feed.Stats(); pos == last {
			break
		}
		time.Sleep(time.Millisecond)
	}
	st, _ := h.StatusOf("blocker")
	if st.Delivered != 40 || st.Dropped != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestChildProcessesDieWithThePlugin(t *testing.T) {
	e := start(t, pluginhost.Options{}, spec(t, "parent", "probe"))
	e.feeds.Get("parent").Publish(text("spawn"))
	child, err := strconv.Atoi(e.report(t, "parent", "child"))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(child) {
		t.Fatalf("child %d not running", child)
	}
	if err := e.host.Disable("parent"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the plugin's child to die", func() bool { return !alive(child) })
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func TestFiltersAreEvaluatedOnTheHost(t *testing.T) {
	s := spec(t, "picky", "probe")
	s.Filter = pluginhost.Filter{
		Events:       []pluginv1.EventKind{pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE},
		TextPrefixes: []string{"."},
		Chats:        []pluginhost.ChatRef{mustChat(t, "private")},
	}
	e := start(t, pluginhost.Options{}, s)
	feed := e.feeds.Get("picky")
	group := &pluginv1.Chat{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHAT, Id: 4}, Type: pluginv1.ChatType_CHAT_TYPE_GROUP}
	feed.Publish(
		text(".ping"),            // delivered
		text("ping"),             // no prefix
		chatText(group, ".ping"), // not a private chat
		&pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_TYPING},
		text(".pong"), // delivered
	)
	e.waitAllAcked(t, "picky")
	if st := e.status(t, "picky"); st.Delivered != 2 || st.Filtered != 3 {
		t.Fatalf("status %+v", st)
	}
}

func TestPluginLogsAreForwardedTaggedAndReleveled(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := start(t, pluginhost.Options{Logger: zap.New(core)}, spec(t, "chatty", "probe"))
	e.feeds.Get("chatty").Publish(text("log disk almost full"))
	e.waitAllAcked(t, "chatty")
	waitFor(t, 5*time.Second, "the plugin's log line", func() bool {
		return logs.FilterMessage("disk almost full").Len() > 0
	})
	entry := logs.FilterMessage("disk almost full").All()[0]
	fields := entry.ContextMap()
	if entry.Level != zap.WarnLevel || fields["plugin"] != "chatty" || fields["source"] != "plugin" {
		t.Fatalf("log entry %+v %v", entry.Entry, fields)
	}
}

func TestBuiltinPluginRunsTheRunnerBinaryItself(t *testing.T) {
	e := start(t, pluginhost.Options{}, pluginhost.Spec{
		Name: "echo", Builtin: "echo", WorkDir: filepath.Join(t.TempDir(), "echo"),
	})
	e.feeds.Get("echo").Publish(text("hi"), text("there"))
	e.waitAllAcked(t, "echo")
	st := e.status(t, "echo")
	if st.Version != "builtin" || st.Delivered != 2 {
		t.Fatalf("status %+v", st)
	}
}
