package rules_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/crypto"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// The integration harness follows core/runner's tests: a sandbox server
// over TCP, the real runner with its standard stack (guard, executor,
// plugin host), and the rules plugin as a separate process.

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		panic(err)
	}
	return k
})

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tgrunner-rules-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "rulesplugin")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/rulesplugin")
	cmd.Stderr = os.Stderr
	return out, cmd.Run()
})

type env struct {
	sb                *sandbox.Server
	owner, alice, bob *sandbox.User
	cfg               *config.Config
	dir               string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	mk := func(phone, name string) *sandbox.User {
		u, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: phone, FirstName: name, Username: strings.ToLower(name)})
		require.NoError(t, err)
		return u
	}
	e := &env{sb: sb, owner: mk("9996621111", "Owner"), alice: mk("9996622222", "Alice"), bob: mk("9996623333", "Bob")}
	require.NoError(t, sb.As(e.owner.ID).AddContact(ctx, e.alice.ID))
	e.dir = t.TempDir() + "/data"
	return e
}

// configure loads rules as a user writes them and runs them as an
// external plugin pinned by sha256, with the permissions RulesPlugin
// derives (the runner serves the same plugin as the builtin "rules").
func (e *env) configure(t *testing.T, rulesYAML string) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("version: 1\nserver: sandbox\nrules:\n"+rulesYAML), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	cfg.Account.Phone = config.NewSecret(e.owner.Phone)
	cfg.Storage.Dir = e.dir
	// Room for a test's bursts; the guard still sees every action.
	cfg.Limits.Send.PerChat = config.RateLimit{Rate: config.Rate{Count: 100, Per: time.Second}, Burst: 50}
	cfg.Limits.Send.Global = cfg.Limits.Send.PerChat
	cfg.Limits.Send.Plugin = cfg.Limits.Send.PerChat
	p, ok := config.RulesPlugin(cfg)
	require.True(t, ok)
	path, err := buildOnce()
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	p.Builtin, p.Path, p.SHA256 = "", path, hex.EncodeToString(sum[:])
	cfg.Plugins = []config.Plugin{p}
	e.cfg = cfg
}

// run starts the runner with the rules and returns once the plugins are
// up; stop ends it.
func (e *env) run(t *testing.T) (stop func()) {
	t.Helper()
	st, err := store.Open(context.Background(), e.dir, store.Options{})
	require.NoError(t, err)
	stack, err := runner.NewStack(e.cfg, store.Bolt(st), zaptest.NewLogger(t, zaptest.Level(testLogLevel)))
	require.NoError(t, err)
	ready := make(chan struct{}, 1)
	r := runner.New(e.cfg, store.Bolt(st), runner.Options{
		Services: []runner.Service{stack},
		Sandbox:  e.sb,
		Login:    runner.SandboxLogin(e.sb, e.owner.Phone, ""),
		OnReady:  func(*runner.Session) { ready <- struct{}{} },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-stack.Ready():
	case err := <-done:
		t.Fatalf("runner stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("plugins not up in 60s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			require.NoError(t, st.Close())
		})
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) waitMessage(t *testing.T, what string, match func(sandbox.Message) bool) sandbox.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := e.sb.WaitMessage(ctx, match)
	if err != nil {
		for _, m := range e.sb.Messages() {
			t.Logf("sandbox message: %+v", m)
		}
	}
	require.NoError(t, err, "waiting for %s", what)
	return m
}

// fromOwner matches a message the owner's account sent to peer with text.
func (e *env) fromOwner(peer sandbox.Peer, text string) func(sandbox.Message) bool {
	return func(m sandbox.Message) bool {
		return m.From == e.owner.ID && m.Peer == peer && m.Text == text
	}
}

func TestRulesEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.configure(t, `
  - id: hello
    triggers: [{trigger: message}]
    conditions:
      - {condition: incoming}
      - {condition: text, starts_with: "hello"}
    actions:
      - {action: reply, text: "Hi {{ .Sender.FirstName }}, you said {{ .Message.Text | upper }}"}
  - id: afk
    triggers: [{trigger: command, command: afk}]
    actions:
      - {action: reply, text: "afk: {{ .ArgText | default \"no reason\" }}"}
  - id: price
    triggers: [{trigger: regex, pattern: 'price of (?P<item>\w+)'}]
    actions:
      - {action: notify, text: "{{ .Sender.Mention }} asked about {{ .Groups.item }}"}
  - id: contacts_only
    triggers: [{trigger: command, command: secret}]
    conditions: [{condition: contact}]
    actions: [{action: reply, text: "for contacts"}]
  - id: once
    triggers: [{trigger: command, command: once}]
    conditions: [{condition: cooldown, period: 1h, per: sender}]
    actions: [{action: reply, text: "once per hour"}]
  - id: edits
    triggers: [{trigger: edited}]
    actions: [{action: notify, text: "edited: {{ .Message.Text }}"}]
  - id: thumbs
    triggers: [{trigger: reaction, emoji: "👍"}]
    actions: [{action: notify, text: "{{ .Sender.FirstName }} liked {{ .Message.ID }}"}]
  - id: react_back
    triggers: [{trigger: command, command: like}]
    actions: [{action: react, emoji: "👍"}, {action: mark_read}]
  - id: later
    triggers: [{trigger: command, command: later}]
    actions:
      - {action: reply, text: "wait for it"}
      - {action: wait, duration: 1s}
      - {action: call, rule: finish}
      - {action: reply, text: "never sent"}
  - id: finish
    actions:
      - {action: send, chat: "@alice", text: "called by later"}
      - {action: stop, reason: done}
  - id: mirror
    triggers: [{trigger: command, command: keep}]
    actions: [{action: copy, to: self}, {action: delete}]
`)
	stop := e.run(t)
	ctx := context.Background()
	alice := e.sb.As(e.alice.ID)
	toOwner := sandbox.UserPeer(e.owner.ID)
	aliceChat := sandbox.UserPeer(e.alice.ID)
	saved := sandbox.UserPeer(e.owner.ID)

	t.Run("message trigger, template, reply", func(t *testing.T) {
		_, err := alice.SendText(ctx, toOwner, "hello there")
		require.NoError(t, err)
		m := e.waitMessage(t, "the reply", e.fromOwner(aliceChat, "Hi Alice, you said HELLO THERE"))
		require.NotZero(t, m.ReplyTo)
	})
	t.Run("command trigger with arguments", func(t *testing.T) {
		_, err := alice.SendText(ctx, toOwner, ".afk lunch")
		require.NoError(t, err)
		e.waitMessage(t, "afk reply", e.fromOwner(aliceChat, "afk: lunch"))
	})
	t.Run("regex trigger, notify Saved Messages", func(t *testing.T) {
		_, err := alice.SendText(ctx, toOwner, "what is the price of milk")
		require.NoError(t, err)
		e.waitMessage(t, "the alert", e.fromOwner(saved, "@alice asked about milk"))
	})
	t.Run("contact condition", func(t *testing.T) {
		_, err := e.sb.As(e.bob.ID).SendText(ctx, toOwner, ".secret")
		require.NoError(t, err)
		_, err = alice.SendText(ctx, toOwner, ".secret")
		require.NoError(t, err)
		e.waitMessage(t, "the contact's answer", e.fromOwner(aliceChat, "for contacts"))
		require.Empty(t, e.ownerSaid(sandbox.UserPeer(e.bob.ID), "for contacts"), "bob is no contact")
	})
	t.Run("cooldown per sender", func(t *testing.T) {
		for range 2 {
			_, err := alice.SendText(ctx, toOwner, ".once")
			require.NoError(t, err)
		}
		_, err := alice.SendText(ctx, toOwner, ".afk marker")
		require.NoError(t, err)
		e.waitMessage(t, "the marker after both", e.fromOwner(aliceChat, "afk: marker"))
		require.Len(t, e.ownerSaid(aliceChat, "once per hour"), 1)
	})
	t.Run("edited trigger", func(t *testing.T) {
		id, err := alice.SendText(ctx, toOwner, "first draft")
		require.NoError(t, err)
		require.NoError(t, alice.Edit(ctx, toOwner, id, "second draft"))
		e.waitMessage(t, "the edit notice", e.fromOwner(saved, "edited: second draft"))
	})
	t.Run("react and mark read", func(t *testing.T) {
		id, err := alice.SendText(ctx, toOwner, ".like")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			for _, m := range e.sb.Messages(toOwner) {
				if m.From == e.alice.ID && m.ID == id && m.Reactions[e.owner.ID] == "👍" {
					return true
				}
			}
			return false
		}, 20*time.Second, 20*time.Millisecond, "the owner's reaction")
	})
	t.Run("reaction trigger", func(t *testing.T) {
		_, err := e.sb.As(e.owner.ID).SendText(ctx, aliceChat, "like this?")
		require.NoError(t, err)
		// Private chats number messages per account: react with Alice's id.
		hist, err := e.sb.History(e.alice.ID, toOwner)
		require.NoError(t, err)
		id := 0
		for _, m := range hist {
			if m.Text == "like this?" {
				id = m.ID
			}
		}
		require.NotZero(t, id, "Alice sees the message")
		require.NoError(t, alice.React(ctx, toOwner, id, "👍"))
		// The sandbox does not fill recent_reactions, so who reacted is
		// unknown here; the trigger still names the message.
		e.waitMessage(t, "the reaction notice", func(m sandbox.Message) bool {
			return m.From == e.owner.ID && m.Peer == saved && strings.Contains(m.Text, "liked ")
		})
	})
	t.Run("wait, call, stop", func(t *testing.T) {
		_, err := alice.SendText(ctx, toOwner, ".later")
		require.NoError(t, err)
		first := e.waitMessage(t, "the first reply", e.fromOwner(aliceChat, "wait for it"))
		called := e.waitMessage(t, "the called rule's message", e.fromOwner(aliceChat, "called by later"))
		require.GreaterOrEqual(t, called.Date.Sub(first.Date), time.Second-time.Millisecond*0, "sent after the wait")
		_, err = alice.SendText(ctx, toOwner, ".afk marker2")
		require.NoError(t, err)
		e.waitMessage(t, "a later marker", e.fromOwner(aliceChat, "afk: marker2"))
		require.Empty(t, e.ownerSaid(aliceChat, "never sent"), "stop ended the calling run too")
	})
	t.Run("copy without author, delete", func(t *testing.T) {
		id, err := alice.SendText(ctx, toOwner, ".keep this")
		require.NoError(t, err)
		e.waitMessage(t, "the copy", func(m sandbox.Message) bool {
			return m.From == e.owner.ID && m.Peer == saved && m.Text == ".keep this" && !m.Forwarded
		})
		require.Eventually(t, func() bool {
			for _, m := range e.sb.Messages(toOwner) {
				if m.ID == id && m.From == e.alice.ID {
					return m.Deleted
				}
			}
			return true
		}, 20*time.Second, 20*time.Millisecond, "the command message is deleted")
	})
	t.Run("the audit log names the rule", func(t *testing.T) {
		stop() // flushes the audit log
		st, err := store.Open(ctx, e.dir, store.Options{})
		require.NoError(t, err)
		defer func() { require.NoError(t, st.Close()) }()
		recs, err := guard.ReadAudit(ctx, st, guard.AuditFilter{Plugin: "rules"})
		require.NoError(t, err)
		byLabel := map[string][]string{}
		for _, r := range recs {
			require.Equal(t, guard.PluginSource("rules"), r.Source, "a label never changes the source")
			byLabel[r.Label] = append(byLabel[r.Label], r.Kind+"/"+r.Outcome)
		}
		require.NotContains(t, byLabel, "", "no call of the rules plugin goes unlabelled")
		require.Equal(t, []string{"send/ok"}, byLabel["hello"], "the reply of rule hello")
		// finish's @alice is looked up at start, under finish; its send,
		// made inside a run of later, carries its own id too.
		require.Equal(t, []string{"resolve/ok", "send/ok"}, byLabel["finish"])
		require.Equal(t, []string{"send/ok"}, byLabel["later"])
		require.Equal(t, []string{"send/ok", "send/ok", "send/ok"}, byLabel["afk"])
		require.Equal(t, []string{"react/ok", "mark_read/ok"}, byLabel["react_back"])
		require.Equal(t, []string{"forward/ok", "delete/ok"}, byLabel["mirror"])
		// The label is a filter of its own.
		hello, err := guard.ReadAudit(ctx, st, guard.AuditFilter{Label: "hello"})
		require.NoError(t, err)
		require.Len(t, hello, 1)
		require.Equal(t, "user:"+strconv.FormatInt(e.alice.ID, 10), hello[0].Chat)
		require.Equal(t, guard.OutcomeOK, hello[0].Outcome)
		require.NotZero(t, hello[0].MessageID)
	})
}

func (e *env) ownerSaid(peer sandbox.Peer, text string) []sandbox.Message {
	var out []sandbox.Message
	for _, m := range e.sb.Messages(peer) {
		if m.From == e.owner.ID && m.Peer == peer && m.Text == text {
			out = append(out, m)
		}
	}
	return out
}

// A message that arrives while the runner is down is caught up after the
// restart only by the rule that says catch_up: run; the started trigger
// fires at each start.
func TestRulesCatchUpAfterRestart(t *testing.T) {
	e := newEnv(t)
	e.configure(t, `
  - id: away
    catch_up: run
    triggers: [{trigger: message}]
    conditions: [{condition: incoming}, {condition: text, contains: "away"}]
    actions: [{action: reply, text: "caught up (missed={{ .Trigger.Missed }})"}]
  - id: live_only
    triggers: [{trigger: message}]
    conditions: [{condition: incoming}, {condition: text, contains: "away"}]
    actions: [{action: notify, text: "live: {{ .Message.Text }}"}]
  - id: boot
    triggers: [{trigger: started}]
    actions: [{action: notify, text: "rules started"}]
`)
	ctx := context.Background()
	saved := sandbox.UserPeer(e.owner.ID)
	stop := e.run(t)
	e.waitMessage(t, "the first start notice", e.fromOwner(saved, "rules started"))
	stop()

	// Sent while the runner is down, dated earlier than the catch-up grace
	// before the next start: a missed message, without waiting that long.
	_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), "are you away?",
		sandbox.DatedAt(time.Now().Add(-time.Minute)))
	require.NoError(t, err)

	e.run(t)
	e.waitMessage(t, "the caught-up reply", e.fromOwner(sandbox.UserPeer(e.alice.ID), "caught up (missed=true)"))
	require.Eventually(t, func() bool { return len(e.ownerSaid(saved, "rules started")) == 2 }, 20*time.Second, 20*time.Millisecond)
	require.Empty(t, e.ownerSaid(saved, "live: are you away?"), "catch_up: skip drops the missed message")
}

var testLogLevel = func() zap.AtomicLevel {
	l := zap.NewAtomicLevelAt(zap.WarnLevel)
	if os.Getenv("RULES_E2E_DEBUG") != "" {
		l.SetLevel(zap.DebugLevel)
	}
	return l
}()
