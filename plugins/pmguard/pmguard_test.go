package pmguard

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Harness {
	t.Helper()
	return sdktest.New(t, New(), sdktest.WithConfig(config), sdktest.Quiet())
}

func stranger() *pb.User { return &pb.User{Id: 4004, FirstName: "Eve", Username: "eve"} }

func fromEve(text string) *pb.Event {
	return sdktest.PrivateText(text, sdktest.From(stranger()), sdktest.In(sdktest.PrivateChat(stranger())))
}

func named(out sdktest.Outcome, name string) []*sdktest.Call {
	var calls []*sdktest.Call
	for _, c := range out.Calls {
		if c.Name == name {
			calls = append(calls, c)
		}
	}
	return calls
}

func TestStrangerGetsNoticeThenIsReported(t *testing.T) {
	h := start(t, `{"max_messages":3,"mark_read":true}`)
	out := h.Handle(fromEve("hi"))
	require.Empty(t, out.Err)
	sends := named(out, "send")
	require.Len(t, sends, 1)
	require.True(t, strings.HasPrefix(sends[0].Text(), "Hi Eve, this is an automatic message"))
	require.Equal(t, "user:4004", sdk.PeerString(sends[0].Chat()))

	require.Empty(t, named(h.Handle(fromEve("hello?")), "send"), "no answer to the second message")

	out = h.Handle(fromEve("HELLO??"))
	sends = named(out, "send")
	require.Len(t, sends, 2)
	require.Equal(t, "You have sent 3 messages without approval; I won't answer more of them.", sends[0].Text())
	require.Equal(t, "user:1000", sdk.PeerString(sends[1].Chat()), "reported in Saved Messages")
	require.Equal(t, "🛡 pmguard: Eve (@eve) [user:4004] wrote 3 messages without approval; no more answers to them. To let them in: .approve @eve (or .approve in their chat).", sends[1].Text())
	require.Len(t, named(out, "mark_read"), 1)

	out = h.Handle(fromEve("!!!"))
	require.Empty(t, named(out, "send"), "silence over the limit")
	require.Len(t, named(out, "mark_read"), 1)
}

func TestContactsBotsAndConfigApprovals(t *testing.T) {
	h := start(t, `{"approved":["@bob"]}`)
	require.Empty(t, h.Handle(sdktest.PrivateText("hi")).Calls, "Alice is a contact")
	bob := sdktest.PrivateText("hi", sdktest.From(sdktest.Bob()), sdktest.In(sdktest.PrivateChat(sdktest.Bob())))
	require.Empty(t, named(h.Handle(bob), "send"), "Bob is approved in the config")
	bot := &pb.User{Id: 9, FirstName: "B", Bot: true}
	require.Empty(t, h.Handle(sdktest.PrivateText("/start", sdktest.From(bot), sdktest.In(sdktest.PrivateChat(bot)))).Calls)

	h = start(t, `{"approve_contacts":false}`)
	require.Len(t, named(h.Handle(sdktest.PrivateText("hi")), "send"), 1, "contacts need approval too when asked")
}

func TestApproveInChatAndByUsername(t *testing.T) {
	h := start(t, `{}`)
	h.Handle(fromEve("hi"))
	out := h.Handle(sdktest.PrivateText(".approve", sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(stranger()))))
	require.Empty(t, out.Err)
	require.Equal(t, "✅ Approved Eve", named(out, "edit")[0].Text())
	require.Contains(t, h.KV(), "approved/4004")
	require.NotContains(t, h.KV(), "count/4004", "the count starts over")
	require.Empty(t, named(h.Handle(fromEve("thanks")), "send"))

	// .disapprove @eve from Saved Messages: resolved through the runner.
	h.AddChat(sdktest.PrivateChat(stranger()))
	out = h.Handle(sdktest.SavedText(".disapprove @eve"))
	require.Empty(t, out.Err)
	require.Equal(t, "🚫 Eve is no longer approved", named(out, "edit")[0].Text())
	require.Len(t, named(h.Handle(fromEve("hi again")), "send"), 1, "a notice again")

	out = h.Handle(sdktest.SavedText(".approve user:4004"))
	require.Equal(t, "✅ Approved user:4004", named(out, "edit")[0].Text())
	out = h.Handle(sdktest.SavedText(".approved"))
	require.Equal(t, "Approved: user:4004", named(out, "edit")[0].Text())

	out = h.Handle(sdktest.SavedText(".approve"))
	require.Contains(t, named(out, "edit")[0].Text(), "say whom")
	out = h.Handle(sdktest.SavedText(".approve group"))
	require.Contains(t, named(out, "edit")[0].Text(), "is not a user")
}

func TestApproveOnOutgoingIgnoresOwnNotices(t *testing.T) {
	h := start(t, `{"approve_on_outgoing":true}`)
	out := h.Handle(fromEve("hi"))
	notice := named(out, "send")[0]
	// The notice comes back as an outgoing message: not the owner writing.
	h.Handle(sdktest.PrivateText(notice.Text(), sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(stranger())), sdktest.WithID(notice.Result.GetMessage().GetId())))
	require.NotContains(t, h.KV(), "approved/4004")
	h.Handle(sdktest.PrivateText("oh hi Eve", sdktest.Outgoing(), sdktest.In(sdktest.PrivateChat(stranger()))))
	require.Contains(t, h.KV(), "approved/4004")
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"max_messages":0}`:         "max_messages",
		`{"notice":" "}`:             "notice",
		`{"report_to":"private"}`:    "report_to",
		`{"approved":["channel:1"]}`: "approved[0]",
	} {
		_, err := sdktest.Start(t, New(), sdktest.WithConfig(cfg), sdktest.Quiet())
		require.Error(t, err, cfg)
		require.Contains(t, err.Error(), want, cfg)
	}
}
