package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

type builtPlugin struct {
	path, sum string
	err       error
}

var builds sync.Map // package path → func() builtPlugin

// buildPlugin compiles a plugin binary once per test binary and returns its
// path and sha256.
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
		b, err := os.ReadFile(out)
		if err != nil {
			return builtPlugin{err: err}
		}
		sum := sha256.Sum256(b)
		return builtPlugin{path: out, sum: hex.EncodeToString(sum[:])}
	}))
	b := f.(func() builtPlugin)()
	require.NoError(t, b.err, "build %s", pkg)
	return b.path, b.sum
}

// pluginConfig decodes a plugins: entry the way a user writes it.
func pluginConfig(t *testing.T, entry string) config.Plugin {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte("version: 1\nserver: sandbox\nplugins:\n"+entry), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	return c.Plugins[0]
}

// pingPlugin is the example ping plugin, built once, allowed to send and
// edit in private chats.
func pingPlugin(t *testing.T) config.Plugin {
	t.Helper()
	path, sum := buildPlugin(t, "github.com/tgrunner/tgrunner/plugins/examples/ping")
	return pluginConfig(t, `
  - name: ping
    path: `+path+`
    sha256: `+sum+`
    permissions:
      actions: [send, edit]
      chats: [private]
`)
}

// The thin slice, end to end: a sandbox user writes ".ping" to the owner,
// the runner journals it, the plugin host delivers it to the ping plugin
// (a separate process), the plugin replies through the guard, and the
// sandbox user sees "pong".
func TestPingPluginAnswersThroughRunner(t *testing.T) {
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pingPlugin(t)}
	e.runStack(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	reply, err := e.sb.WaitMessage(ctx, func(m sandbox.Message) bool {
		return m.From == e.owner.ID && m.Peer == sandbox.UserPeer(e.alice.ID) && strings.HasPrefix(m.Text, "pong")
	})
	require.NoError(t, err, "no pong from the plugin")
	require.NotZero(t, reply.ReplyTo, "pong replies to the .ping")
}

// A send retried with the same random_id (a resumed waiting action after a
// crash) reaches the chat once.
func TestRetriedSendIsNotDoubled(t *testing.T) {
	e := newEnv(t)
	stack, _ := e.runStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The runner must know Alice to address her.
	_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), "hello")
	require.NoError(t, err)
	_, err = e.sb.WaitMessage(ctx, func(m sandbox.Message) bool { return m.Text == "hello" })
	require.NoError(t, err)
	require.Eventually(t, func() bool { return stack.Executor() != nil }, 10*time.Second, 10*time.Millisecond)

	send := &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{
		Chat: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: e.alice.ID}, Text: "only once",
	}}}
	var first *pb.ActionResult
	require.Eventually(t, func() bool {
		first = stack.Executor().Execute(ctx, action.Call{Source: "runner", Action: send})
		return first.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_FOUND
	}, 10*time.Second, 50*time.Millisecond, "alice known to the runner")
	require.Nil(t, first.GetError())
	require.NotZero(t, send.GetSend().GetRandomId(), "the guard fixed a random_id")

	again := stack.Executor().Execute(ctx, action.Call{Source: "runner", Action: send})
	require.Nil(t, again.GetError(), "the retry is reported done")
	history, err := e.sb.History(e.alice.ID, sandbox.UserPeer(e.owner.ID))
	require.NoError(t, err)
	n := 0
	for _, m := range history {
		if m.Text == "only once" {
			n++
		}
	}
	require.Equal(t, 1, n, "sent exactly once")
}

// A raw TL call a plugin may make is audited once, by the guard, with its
// method and outcome; a refused one once, as denied. (The plugin host's
// own note of a raw call let through is not a second record.)
func TestRawInvokeAuditedOnce(t *testing.T) {
	path, sum := buildPlugin(t, "github.com/tgrunner/tgrunner/core/pluginhost/testdata/plugins/probe")
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pluginConfig(t, `
  - name: probe
    path: `+path+`
    sha256: `+sum+`
    permissions:
      actions: [raw_invoke]
      chats: [private]
`)}
	stack, _ := e.runStack(t)
	encode := func(req bin.Encoder) string {
		var b bin.Buffer
		require.NoError(t, req.Encode(&b))
		return hex.EncodeToString(b.Raw())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, text := range []string{"raw " + encode(&tg.HelpGetConfigRequest{}), "raw " + encode(&tg.AuthLogOutRequest{})} {
		_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), text)
		require.NoError(t, err)
	}
	var recs []guard.AuditRecord
	require.Eventually(t, func() bool {
		require.NoError(t, stack.Guard().FlushAudit(ctx))
		var err error
		recs, err = stack.Guard().Audit(ctx, guard.AuditFilter{Source: guard.PluginSource("probe")})
		require.NoError(t, err)
		return len(recs) >= 2
	}, 30*time.Second, 50*time.Millisecond)
	// Nothing more arrives late (the host's note of the allowed call would).
	read := func() []guard.AuditRecord {
		require.NoError(t, stack.Guard().FlushAudit(ctx))
		recs, err := stack.Guard().Audit(ctx, guard.AuditFilter{Source: guard.PluginSource("probe")})
		require.NoError(t, err)
		return recs
	}
	require.Never(t, func() bool { return len(read()) > 2 }, 500*time.Millisecond, 50*time.Millisecond)
	recs = read()
	require.Len(t, recs, 2, "%+v", recs)
	byOutcome := map[string]guard.AuditRecord{}
	for _, r := range recs {
		require.Equal(t, "raw_invoke", r.Kind)
		byOutcome[r.Outcome] = r
	}
	require.Equal(t, "help.getConfig", byOutcome[guard.OutcomeOK].Method, "%+v", recs)
	require.Contains(t, byOutcome[guard.OutcomeDenied].Reason+byOutcome[guard.OutcomeDenied].Method, "auth.logOut", "%+v", recs)
}

// Telegram's passing internal errors are retried: a pong that meets two
// RPC_CALL_FAILs still goes out, once; a pong carried out whose answer was
// lost (-503 Timeout) is retried, recognised by its random_id, and not
// sent twice.
func TestInternalErrorsRetriedOnce(t *testing.T) {
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pingPlugin(t)}
	e.runStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob, err := e.sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996627777", FirstName: "Bob"})
	require.NoError(t, err)
	pongs := func(to *sandbox.User) int {
		h, err := e.sb.History(e.owner.ID, sandbox.UserPeer(to.ID))
		require.NoError(t, err)
		n := 0
		for _, m := range h {
			if m.From == e.owner.ID && strings.HasPrefix(m.Text, "pong") {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		from  *sandbox.User
		flaky sandbox.Flaky
	}{
		{e.alice, sandbox.Flaky{Error: "500:RPC_CALL_FAIL", Times: 2}},
		{bob, sandbox.Flaky{Error: "-503:Timeout", Times: 1, Done: true}},
	} {
		e.sb.SetFaults(sandbox.Faults{Flaky: map[string]sandbox.Flaky{"messages.sendMessage": tc.flaky}})
		_, err := e.sb.As(tc.from.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return pongs(tc.from) >= 1 }, 30*time.Second, 20*time.Millisecond, "pong despite %s", tc.flaky.Error)
		require.Never(t, func() bool { return pongs(tc.from) > 1 }, time.Second, 50*time.Millisecond, "one pong despite %s", tc.flaky.Error)
	}
}

// An edit, join or leave whose first attempt went through but whose answer
// was lost is repeated, and the repeat's "already so" answer
// (MESSAGE_NOT_MODIFIED, USER_ALREADY_PARTICIPANT, USER_NOT_PARTICIPANT)
// is reported as done, not as an error.
func TestRepeatAfterLostAnswerIsDone(t *testing.T) {
	e := newEnv(t)
	stack, _ := e.runStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob, err := e.sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996627778", FirstName: "Bob"})
	require.NoError(t, err)
	_, err = e.sb.CreateChannel(ctx, bob.ID, sandbox.ChannelSpec{Title: "Lost answers", Username: "lostanswers"})
	require.NoError(t, err)
	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), "hello")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return stack.Executor() != nil }, 10*time.Second, 10*time.Millisecond)
	exec := func(a *pb.Action) *pb.ActionResult {
		return stack.Executor().Execute(ctx, action.Call{Source: "runner", Action: a})
	}
	lose := func(method string) {
		e.sb.SetFaults(sandbox.Faults{Flaky: map[string]sandbox.Flaky{method: {Error: "-503:Timeout", Times: 1, Done: true}}})
	}
	alice := &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: e.alice.ID}

	var sent *pb.ActionResult
	require.Eventually(t, func() bool {
		sent = exec(&pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: alice, Text: "draft"}}})
		return sent.GetError().GetCode() != pb.ErrorCode_ERROR_CODE_NOT_FOUND
	}, 10*time.Second, 50*time.Millisecond, "alice known to the runner")
	require.Nil(t, sent.GetError())
	id := sent.GetMessage().GetId()

	lose("messages.editMessage")
	edited := exec(&pb.Action{Kind: &pb.Action_Edit{Edit: &pb.EditMessage{Chat: alice, MessageId: id, Text: "final"}}})
	require.Nil(t, edited.GetError(), "edit done by the first attempt")
	require.Equal(t, "final", edited.GetMessage().GetText())
	history, err := e.sb.History(e.alice.ID, sandbox.UserPeer(e.owner.ID))
	require.NoError(t, err)
	require.Equal(t, "final", history[len(history)-1].Text)
	require.True(t, history[len(history)-1].Edited)

	resolved := exec(&pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: "lostanswers"}}}})
	require.Nil(t, resolved.GetError())
	channel := resolved.GetChat().GetPeer()
	require.NotNil(t, channel)
	join := &pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: channel}}}}
	leave := &pb.Action{Kind: &pb.Action_Leave{Leave: &pb.LeaveChat{Chat: channel}}}

	lose("channels.joinChannel")
	joined := exec(join)
	require.Nil(t, joined.GetError(), "join done by the first attempt")
	require.Equal(t, channel.GetId(), joined.GetChat().GetPeer().GetId())
	require.Equal(t, "Lost answers", joined.GetChat().GetTitle())
	e.sb.SetFaults(sandbox.Faults{})
	require.Contains(t, exec(join).GetError().GetRpcError(), "USER_ALREADY_PARTICIPANT", "a plain repeat is still an error")

	lose("channels.leaveChannel")
	require.Nil(t, exec(leave).GetError(), "leave done by the first attempt")
	e.sb.SetFaults(sandbox.Faults{})
	require.Contains(t, exec(leave).GetError().GetRpcError(), "USER_NOT_PARTICIPANT", "a plain repeat is still an error")

	// Joining a private channel by its invite link: the chat comes from
	// messages.checkChatInvite once the repeat finds the account in.
	private, err := e.sb.CreateChannel(ctx, bob.ID, sandbox.ChannelSpec{Title: "Lost invite"})
	require.NoError(t, err)
	link, err := e.sb.InviteLink(ctx, bob.ID, sandbox.ChannelPeer(private))
	require.NoError(t, err)
	byLink := &pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_InviteLink{InviteLink: link}}}}
	lose("messages.importChatInvite")
	joined = exec(byLink)
	require.Nil(t, joined.GetError(), "join by link done by the first attempt")
	require.Equal(t, private, joined.GetChat().GetPeer().GetId())
	require.Equal(t, "Lost invite", joined.GetChat().GetTitle())
	e.sb.SetFaults(sandbox.Faults{})
	require.Contains(t, exec(byLink).GetError().GetRpcError(), "USER_ALREADY_PARTICIPANT", "a plain repeat is still an error")
}
