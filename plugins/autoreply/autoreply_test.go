package autoreply

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Harness {
	t.Helper()
	clk := sdktest.NewClock(time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC))
	return sdktest.New(t, build(clk.Now), sdktest.WithClock(clk), sdktest.WithConfig(config), sdktest.Quiet())
}

func sends(out sdktest.Outcome) []string {
	var texts []string
	for _, c := range out.Calls {
		if c.Name == "send" {
			texts = append(texts, c.Text())
		}
	}
	return texts
}

func TestAwayReplyOncePerPeriod(t *testing.T) {
	h := start(t, `{"period":"1h"}`)

	out := h.Handle(sdktest.PrivateText(".afk at lunch", sdktest.Outgoing()))
	require.Empty(t, out.Err)
	edits := h.Calls("edit")
	require.Len(t, edits, 1)
	require.Equal(t, "💤 Away replies on: at lunch", edits[0].Text())

	out = h.Handle(sdktest.PrivateText("are you there?"))
	require.Empty(t, out.Err)
	require.Equal(t, []string{"Hi Alice, I'm away right now (at lunch) and will answer when I'm back."}, sends(out))

	out = h.Handle(sdktest.PrivateText("hello??"))
	require.Empty(t, sends(out), "a second message within the period gets no reply")

	// Bob is another sender: he gets his own reply.
	bob := sdktest.PrivateText("hi", sdktest.From(sdktest.Bob()), sdktest.In(sdktest.PrivateChat(sdktest.Bob())))
	require.Len(t, sends(h.Handle(bob)), 1)

	h.Clock().Advance(61 * time.Minute)
	require.Len(t, sends(h.Handle(sdktest.PrivateText("still away?"))), 1, "after the period Alice gets a reply again")
}

func TestOwnerWritingTurnsItOffButOwnRepliesDoNot(t *testing.T) {
	h := start(t, `{}`)
	h.Handle(sdktest.PrivateText(".afk", sdktest.Outgoing()))
	out := h.Handle(sdktest.PrivateText("ping"))
	require.Len(t, sends(out), 1)
	reply := out.Calls[len(out.Calls)-2] // the send, before the KV write
	require.Equal(t, "send", reply.Name)
	replyID := reply.Result.GetMessage().GetId()

	// The reply comes back as an outgoing message: not the owner writing.
	h.Handle(sdktest.PrivateText(reply.Text(), sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(sdktest.Alice())), sdktest.WithID(replyID)))
	h.Clock().Advance(2 * time.Hour)
	require.Len(t, sends(h.Handle(sdktest.PrivateText("ping again"))), 1, "still away")

	// Now the owner writes to Bob: away ends.
	h.Handle(sdktest.PrivateText("hey Bob", sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(sdktest.Bob()))))
	h.Clock().Advance(2 * time.Hour)
	require.Empty(t, sends(h.Handle(sdktest.PrivateText("and now?"))), "the owner is back")
}

func TestIgnoreOutgoingAndBack(t *testing.T) {
	h := start(t, `{"ignore_outgoing":["^\\[pmguard\\]"]}`)
	h.Handle(sdktest.PrivateText(".afk", sdktest.Outgoing()))
	h.Handle(sdktest.PrivateText("[pmguard] strangers wait", sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(sdktest.Bob()))))
	require.Len(t, sends(h.Handle(sdktest.PrivateText("hi"))), 1, "an ignored automation message does not end away")

	out := h.Handle(sdktest.PrivateText(".back", sdktest.Outgoing()))
	require.Empty(t, out.Err)
	require.True(t, strings.HasPrefix(h.Calls("edit")[1].Text(), "👋 Away replies off"))
	h.Clock().Advance(2 * time.Hour)
	require.Empty(t, sends(h.Handle(sdktest.PrivateText("hi again"))))
}

func TestAutoOnAfterIdle(t *testing.T) {
	h := start(t, `{"auto_on_after":"30m","message":"away since {since} ({ago})"}`)
	h.Handle(sdktest.PrivateText("I'm here", sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(sdktest.Bob()))))
	h.Clock().Advance(10 * time.Minute)
	require.Empty(t, sends(h.Handle(sdktest.PrivateText("hi"))), "idle 10 min < 30 min")
	h.Clock().Advance(25 * time.Minute)
	require.Equal(t, []string{"away since 09:00 (35 min)"}, sends(h.Handle(sdktest.PrivateText("hi?"))))
}

func TestEnabledAndPersistentState(t *testing.T) {
	h := start(t, `{"enabled":true}`)
	require.Len(t, sends(h.Handle(sdktest.PrivateText("hi"))), 1)

	// A previous run left .back in the store: enabled no longer applies.
	h2 := start(t, `{"enabled":true}`)
	h2.SetKV(stateKey, []byte(`{"away":false,"set":true}`))
	require.Empty(t, sends(h2.Handle(sdktest.PrivateText("hi"))))
}

func TestWhoGetsReplies(t *testing.T) {
	h := start(t, `{"enabled":true,"only_contacts":true}`)
	require.Len(t, sends(h.Handle(sdktest.PrivateText("hi"))), 1, "Alice is a contact")
	bob := sdktest.PrivateText("hi", sdktest.From(sdktest.Bob()), sdktest.In(sdktest.PrivateChat(sdktest.Bob())))
	require.Empty(t, sends(h.Handle(bob)), "Bob is not")

	h = start(t, `{"enabled":true}`)
	bot := &pluginv1.User{Id: 777, FirstName: "Bot", Bot: true}
	require.Empty(t, sends(h.Handle(sdktest.PrivateText("/start", sdktest.From(bot), sdktest.In(sdktest.PrivateChat(bot))))))
	require.Empty(t, sends(h.Handle(sdktest.GroupText("hi all"))), "groups are not answered")
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"period":"5x"}`:              "period",
		`{"auto_on_after":"-1m"}`:      "auto_on_after",
		`{"ignore_outgoing":["("]}`:    "ignore_outgoing[0]",
		`{"message":""}`:               "message",
		`{"time_zone":"Mars/Olympus"}`: "time_zone",
		`{"perod":"1h"}`:               "perod: unknown key",
	} {
		_, err := sdktest.Start(t, New(), sdktest.WithConfig(cfg), sdktest.Quiet())
		require.Error(t, err, cfg)
		require.Contains(t, err.Error(), want, cfg)
	}
}
