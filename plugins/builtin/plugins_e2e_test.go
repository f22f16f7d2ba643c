package builtin_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sandbox"
)

// Each test runs the real runner against the sandbox with one builtin
// plugin as a separate process (the test binary re-executed as
// `plugin NAME`), and talks to it as sandbox users.

func TestAutoreplyE2E(t *testing.T) {
	w := newWorld(t, `
  - name: autoreply
    builtin: autoreply
    permissions: {actions: [send, edit], chats: [private]}
    config: {period: 1h}
`)
	alice := sandbox.UserPeer(w.alice)
	// The owner, on another device, goes away in the chat with Bob.
	cmd := w.say(t, w.owner, sandbox.UserPeer(w.bob), ".afk lunch")
	w.waitEdited(t, sandbox.UserPeer(w.bob), cmd, func(s string) bool { return s == "💤 Away replies on: lunch" })

	w.say(t, w.alice, sandbox.UserPeer(w.owner), "are you there?")
	reply := w.waitFrom(t, w.owner, alice, has("(lunch)"))
	require.Equal(t, "Hi Alice, I'm away right now (lunch) and will answer when I'm back.", reply.Text)
	require.NotZero(t, reply.ReplyTo)

	w.say(t, w.alice, sandbox.UserPeer(w.owner), "hello??")
	w.handled(t, "autoreply", "hello??")
	require.Len(t, w.sentBy(w.owner, alice), 1, "once per period")

	// The owner writes: away is over.
	w.say(t, w.owner, sandbox.UserPeer(w.bob), "back at my desk")
	w.handled(t, "autoreply", "back at my desk")
	w.say(t, w.bob, sandbox.UserPeer(w.owner), "lunch?")
	w.handled(t, "autoreply", "lunch?")
	require.Empty(t, w.sentBy(w.owner, sandbox.UserPeer(w.bob))[2:], "no away reply once the owner wrote")
}

func TestPMGuardE2E(t *testing.T) {
	w := newWorld(t, `
  - name: pmguard
    builtin: pmguard
    permissions: {actions: [send, edit, resolve], chats: [private, self]}
    config: {max_messages: 2}
`)
	carol, saved := sandbox.UserPeer(w.carol), sandbox.UserPeer(w.owner)
	w.say(t, w.carol, saved, "hi, remember me?")
	w.waitFrom(t, w.owner, carol, has("I don't know you yet"))
	w.say(t, w.carol, saved, "hello???")
	w.waitFrom(t, w.owner, carol, has("You have sent 2 messages without approval"))
	report := w.waitFrom(t, w.owner, saved, has("🛡 pmguard: Carol (@carol)"))
	require.Contains(t, report.Text, ".approve @carol")

	// Contacts pass.
	w.say(t, w.alice, saved, "hey")
	w.handled(t, "pmguard", "hey")
	require.Empty(t, w.sentBy(w.owner, sandbox.UserPeer(w.alice)))

	cmd := w.say(t, w.owner, saved, ".approve @carol")
	w.waitEdited(t, saved, cmd, func(s string) bool { return s == "✅ Approved Carol" })
	w.say(t, w.carol, saved, "thanks!")
	w.handled(t, "pmguard", "thanks!")
	require.Len(t, w.sentBy(w.owner, carol), 2, "nothing more to an approved user")
}

func TestAlertsE2E(t *testing.T) {
	w := newWorld(t, `
  - name: alerts
    builtin: alerts
    permissions: {actions: [send], chats: [self, group, "@sandboxchat"]}
    config: {keywords: [deploy failed]}
`)
	saved := sandbox.UserPeer(w.owner)
	id := w.say(t, w.alice, sandbox.ChannelPeer(w.chat), "Deploy failed on prod, again")
	alert := w.waitFrom(t, w.owner, saved, has("Sandbox Chat"))
	require.Equal(t, "🔔 Alert: \"deploy failed\"\nAlice (@alice) in Sandbox Chat: https://t.me/sandboxchat/"+itoa(id)+"\n> Deploy failed on prod, again", alert.Text)

	w.say(t, w.bob, sandbox.ChatPeer(w.friends), "deploy failed? again?")
	alert = w.waitFrom(t, w.owner, saved, has("in group Friends"))
	require.Equal(t, "🔔 Alert: \"deploy failed\"\nBob (@bob) in group Friends\n> deploy failed? again?", alert.Text)
}

func TestForwardE2E(t *testing.T) {
	w := newWorld(t, `
  - name: forward
    builtin: forward
    permissions: {actions: [forward, send], chats: [self, "@sandboxnews"]}
    config: {sources: ["@sandboxnews"], target: me, mode: copy, keywords: [release], dedupe_content: true}
`)
	news, saved := sandbox.ChannelPeer(w.news), sandbox.UserPeer(w.owner)
	w.say(t, w.alice, news, "Release 1.0 is out")
	copied := w.waitFrom(t, w.owner, saved, has("Release 1.0"))
	require.Equal(t, "Release 1.0 is out", copied.Text)
	require.False(t, copied.Forwarded, "a copy has no forward header")

	w.say(t, w.alice, news, "coffee break")
	w.say(t, w.alice, news, "Release  1.0 is out")
	w.handled(t, "forward", "Release  1.0 is out")
	require.Equal(t, []string{"Release 1.0 is out"}, w.sentBy(w.owner, saved), "filtered and deduplicated")
}

func TestScheduleE2E(t *testing.T) {
	w := newWorld(t, `
  - name: schedule
    builtin: schedule
    permissions: {actions: [send, forward, history, resolve], chats: [self, "@sandboxnews"]}
    config:
      jobs:
        - {name: digest, cron: "@every 1s", to: me, text: "Digest: {count} new", forward: {from: "@sandboxnews", new: true}}
`)
	news, saved := sandbox.ChannelPeer(w.news), sandbox.UserPeer(w.owner)
	w.say(t, w.alice, news, "first post")
	w.say(t, w.alice, news, "second post")
	w.waitFrom(t, w.owner, saved, func(s string) bool { return strings.HasPrefix(s, "Digest: ") })
	w.waitFrom(t, w.owner, saved, has("second post"))
	w.say(t, w.alice, news, "third post")
	w.waitFrom(t, w.owner, saved, has("third post"))
	var fwd []string
	for _, m := range w.sb.Messages(saved) {
		if m.Forwarded {
			fwd = append(fwd, m.Text)
		}
	}
	require.Equal(t, []string{"first post", "second post", "third post"}, fwd, "each post once, in order")
}

func TestAdminE2E(t *testing.T) {
	w := newWorld(t, `
  - name: admin
    builtin: admin
    permissions: {actions: [send, edit, delete, history, runner_control], chats: [private, group, channel, self]}
`)
	saved, friends := sandbox.UserPeer(w.owner), sandbox.ChatPeer(w.friends)
	id := w.say(t, w.owner, saved, ".ping")
	w.waitEdited(t, saved, id, has("ms round trip"))

	id = w.say(t, w.owner, saved, ".help")
	help := w.waitEdited(t, saved, id, has("Commands:"))
	require.Contains(t, help, "\n  .purge N: Delete your own last N messages in this chat")

	id = w.say(t, w.owner, saved, ".status")
	status := w.waitEdited(t, saved, id, has("plugins:"))
	require.Contains(t, status, "▶️ running")
	require.Contains(t, status, "\n  admin 1.0.0 running")

	id = w.say(t, w.owner, saved, ".pause testing")
	w.waitEdited(t, saved, id, has("⏸ Paused"))
	waitPaused(t, w, true)
	ping := w.say(t, w.owner, saved, ".ping")
	// Resume from another chat: the held .ping answer blocks its own chat.
	id = w.say(t, w.owner, sandbox.UserPeer(w.alice), ".resume")
	w.waitEdited(t, sandbox.UserPeer(w.alice), id, has("▶️ Resumed"))
	w.waitEdited(t, saved, ping, has("ms round trip"))
	waitPaused(t, w, false)

	for _, s := range []string{"one", "two", "three"} {
		w.say(t, w.owner, friends, s)
	}
	w.say(t, w.alice, friends, "alice's")
	w.say(t, w.owner, friends, ".purge 2")
	ctx := ctxT(t)
	for {
		hist, err := w.sb.History(w.owner, friends)
		require.NoError(t, err)
		var texts []string
		for _, m := range hist {
			texts = append(texts, m.Text)
		}
		if !contains(texts, ".purge 2") && len(texts) > 0 {
			require.Equal(t, []string{"one", "alice's"}, texts, "the command and the owner's last two are gone")
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not purged: %q", texts)
		case <-waitTick():
		}
	}
}

func waitPaused(t *testing.T, w *world, want bool) {
	t.Helper()
	ctx := ctxT(t)
	for w.stack.Guard().Snapshot(ctx).Paused != want {
		select {
		case <-ctx.Done():
			t.Fatalf("paused is not %v", want)
		case <-waitTick():
		}
	}
}
