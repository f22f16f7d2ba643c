package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/sandbox"
)

// Reload while events stream: add a plugin, change a rule, change a limit,
// remove a plugin, and break the config. Every ".ping" is answered exactly
// once throughout, and the MTProto session is never re-established.
func TestReloadWhileEventsStream(t *testing.T) {
	pingPath, pingSum := buildPlugin(t, "github.com/tgrunner/tgrunner/plugins/examples/ping")
	runnerPath, _ := buildPlugin(t, "github.com/tgrunner/tgrunner/cmd/runner")
	e := newEnv(t)
	e.selfPath = runnerPath
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tgrunner.yaml")
	// Limits well above the stream's rate: this test is about reloads,
	// not about the guard holding pongs back.
	limits := func(perChat string) string {
		return "limits:\n  send:\n    per_chat: {rate: " + perChat + ", burst: 20}\n    per_group: {rate: 100/s, burst: 20}\n" +
			"    global: {rate: 100/s, burst: 20}\n    plugin: {rate: 100/s, burst: 20}\n"
	}
	writeCfg := func(body string) {
		t.Helper()
		head := "version: 1\nserver: sandbox\nstorage:\n  dir: " + e.dir + "\n"
		if !strings.Contains(body, "limits:") {
			head += limits("50/s")
		}
		require.NoError(t, os.WriteFile(cfgPath, []byte(head+body), 0o600))
	}
	pingEntry := func(name, prefix string) string {
		return fmt.Sprintf(`  - name: %s
    path: %s
    sha256: %s
    command_prefix: %q
    permissions:
      actions: [send]
      chats: [private]
`, name, pingPath, pingSum, prefix)
	}
	load := func() *config.Config {
		t.Helper()
		cfg, err := config.Load(context.Background(), cfgPath, config.LoadOptions{LookupEnv: config.MapEnv(nil)})
		require.NoError(t, err)
		cfg.Account = e.cfg.Account
		return cfg
	}
	writeCfg("plugins:\n" + pingEntry("ping", "."))
	e.cfg = load()
	readyCalls := 0
	var readyMu sync.Mutex
	stack, _ := e.runStackWith(t, runner.Options{OnReady: func(*runner.Session) {
		readyMu.Lock()
		readyCalls++
		readyMu.Unlock()
	}})
	reload := func() runner.ReloadReport {
		t.Helper()
		cfg := load()
		rep, err := stack.Reload(context.Background(), cfg)
		require.NoError(t, err)
		return rep
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := e.sb.As(e.alice.ID)
	toOwner := sandbox.UserPeer(e.owner.ID)

	// Stream pings until told to stop.
	var (
		mu    sync.Mutex
		pings []int
	)
	stopStream := make(chan struct{})
	streamDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopStream:
				streamDone <- nil
				return
			case <-time.After(40 * time.Millisecond):
			}
			id, err := alice.SendText(ctx, toOwner, ".ping")
			if err != nil {
				streamDone <- err
				return
			}
			mu.Lock()
			pings = append(pings, id)
			mu.Unlock()
		}
	}()
	waitReply := func(text string) {
		t.Helper()
		_, err := e.sb.WaitMessage(ctx, func(m sandbox.Message) bool {
			return m.From == e.owner.ID && strings.HasPrefix(m.Text, text)
		})
		require.NoError(t, err, "waiting for %q", text)
	}
	waitReply("pong")

	// 1. Add a plugin: a second ping answering "!ping".
	writeCfg("plugins:\n" + pingEntry("ping", ".") + pingEntry("ping2", "!"))
	rep := reload()
	require.Equal(t, []string{"ping2"}, rep.Added)
	require.Empty(t, rep.Restarted, "the unchanged plugin is not restarted")
	bang, err := alice.SendText(ctx, toOwner, "!ping")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		h, _ := e.sb.History(e.alice.ID, toOwner)
		for _, m := range h {
			if m.From == e.owner.ID && strings.HasPrefix(m.Text, "pong") && m.ReplyTo == bang {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "ping2 answers !ping")

	// 2. Change a rule: rules are the builtin rules plugin.
	rules := "rules:\n  - id: hello\n    triggers:\n      - trigger: command\n        command: hello\n    actions:\n      - action: reply\n        text: \"%s\"\n"
	writeCfg("plugins:\n" + pingEntry("ping", ".") + pingEntry("ping2", "!") + fmt.Sprintf(rules, "hi v1"))
	rep = reload()
	require.Contains(t, rep.Added, "rules")
	_, err = alice.SendText(ctx, toOwner, ".hello")
	require.NoError(t, err)
	waitReply("hi v1")
	writeCfg("plugins:\n" + pingEntry("ping", ".") + pingEntry("ping2", "!") + fmt.Sprintf(rules, "hi v2"))
	rep = reload()
	require.Equal(t, []string{"rules"}, rep.Restarted, "only the rules plugin restarts")
	_, err = alice.SendText(ctx, toOwner, ".hello")
	require.NoError(t, err)
	waitReply("hi v2")

	// 3. Change a limit.
	writeCfg(limits("40/s") + "plugins:\n" + pingEntry("ping", ".") + pingEntry("ping2", "!") + fmt.Sprintf(rules, "hi v2"))
	rep = reload()
	require.True(t, rep.LimitsChanged)
	require.Empty(t, rep.Restarted)

	// 4. Remove a plugin.
	writeCfg(limits("40/s") + "plugins:\n" + pingEntry("ping", ".") + fmt.Sprintf(rules, "hi v2"))
	rep = reload()
	require.Equal(t, []string{"ping2"}, rep.Removed)

	// 5. Break the config: rejected, the old one keeps running.
	require.NoError(t, os.WriteFile(cfgPath, []byte("version: 1\nserver: sandbox\nplugins:\n  - name: ping\n    path: /nonexistent\n"), 0o600))
	_, err = stack.ReloadFile(context.Background(), cfgPath, config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.Error(t, err)
	require.Contains(t, err.Error(), "the running config stays")

	close(stopStream)
	require.NoError(t, <-streamDone)
	mu.Lock()
	sent := append([]int(nil), pings...)
	mu.Unlock()

	// Every .ping gets exactly one pong, in reply to it.
	require.Eventually(t, func() bool {
		return countReplies(t, e, sent) == nil
	}, 60*time.Second, 100*time.Millisecond, "every ping answered once: %v", countReplies(t, e, sent))

	readyMu.Lock()
	require.Equal(t, 1, readyCalls, "the session was never re-established")
	readyMu.Unlock()
	require.Equal(t, 1, e.sb.MaxConcurrentSessions(e.owner.ID))
	require.Equal(t, 1, e.sb.ConnectedSessions(e.owner.ID))
}

// countReplies checks that each ping has exactly one pong replying to it.
func countReplies(t *testing.T, e *env, pings []int) error {
	h, err := e.sb.History(e.alice.ID, sandbox.UserPeer(e.owner.ID))
	if err != nil {
		return err
	}
	replies := map[int]int{}
	for _, m := range h {
		if m.From == e.owner.ID && strings.HasPrefix(m.Text, "pong") {
			replies[m.ReplyTo]++
		}
	}
	for _, id := range pings {
		if replies[id] != 1 {
			return fmt.Errorf("ping %d got %d pongs (of %d pings)", id, replies[id], len(pings))
		}
	}
	return nil
}
