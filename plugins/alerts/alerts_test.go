package alerts

import (
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

func TestAlertLinksByChatKind(t *testing.T) {
	h := start(t, `{"keywords":["server down"],"patterns":["(?i)deploy(ed)? failed"]}`)
	private := &pb.Chat{Peer: sdk.ChannelPeer(4321), Type: pb.ChatType_CHAT_TYPE_SUPERGROUP, Title: "Ops"}
	tests := []struct {
		name string
		ev   *pb.Event
		want string
	}{
		{"public supergroup", sdktest.SupergroupText("The SERVER DOWN again", sdktest.WithID(12)),
			"🔔 Alert: \"server down\"\nAlice (@alice) in Test supergroup: https://t.me/testsuper/12\n> The SERVER DOWN again"},
		{"private supergroup", sdktest.SupergroupText("deploy failed\nsee logs", sdktest.In(private), sdktest.WithID(7)),
			"🔔 Alert: \"/(?i)deploy(ed)? failed/\"\nAlice (@alice) in Ops: https://t.me/c/4321/7\n> deploy failed\n> see logs"},
		{"private chat", sdktest.PrivateText("server down, deploy failed"),
			"🔔 Alert: \"server down\", \"/(?i)deploy(ed)? failed/\"\nAlice (@alice) in private chat with Alice\n> server down, deploy failed"},
		{"basic group", sdktest.GroupText("server down"),
			"🔔 Alert: \"server down\"\nAlice (@alice) in group Test group\n> server down"},
		{"channel post", sdktest.ChannelPost("server down", sdktest.WithID(3)),
			"🔔 Alert: \"server down\"\nA post in Test channel: https://t.me/testchannel/3\n> server down"},
	}
	for _, tc := range tests {
		out := h.Handle(tc.ev)
		require.Empty(t, out.Err, tc.name)
		require.Len(t, out.Calls, 1, tc.name)
		require.Equal(t, "send", out.Calls[0].Name)
		require.Equal(t, sdk.UserPeer(sdktest.Me().GetId()).String(), out.Calls[0].Chat().String(), "to Saved Messages")
		require.Equal(t, tc.want, out.Calls[0].Text(), tc.name)
	}
	require.Empty(t, h.Handle(sdktest.GroupText("all good")).Calls)
	require.Empty(t, h.Handle(sdktest.GroupText("server down", sdktest.Outgoing())).Calls, "own messages are not watched")
}

func TestChatsNotifyWholeWordsAndEdits(t *testing.T) {
	h := start(t, `{"keywords":["Go"],"whole_words":true,"case_sensitive":true,"chats":["group","@testsuper"],
		"exclude_chats":["chat:3001"],"notify":"channel:99","edits":true,"quote_chars":5}`)
	require.Empty(t, h.Handle(sdktest.GroupText("Go go")).Calls, "excluded chat")
	require.Empty(t, h.Handle(sdktest.PrivateText("Go")).Calls, "private chats are not watched")
	require.Empty(t, h.Handle(sdktest.SupergroupText("Golang")).Calls, "whole words only")
	require.Empty(t, h.Handle(sdktest.SupergroupText("go")).Calls, "case sensitive")

	orig := sdktest.SupergroupText("hello")
	h.Handle(orig)
	out := h.Handle(sdktest.Edit(orig, "let's Go, everyone"))
	require.Len(t, out.Calls, 3) // kv_get, kv_set, send
	send := out.Calls[2]
	require.Equal(t, "channel:99", sdk.PeerString(send.Chat()))
	require.Contains(t, send.Text(), "> let's…")
	out = h.Handle(sdktest.Edit(orig, "Go Go Go"))
	require.Empty(t, h.Calls("send")[1:], "each message alerts once")
	require.Empty(t, out.Err)
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{}`:                                  "keywords: set keywords or patterns",
		`{"patterns":["("]}`:                  "patterns[0]",
		`{"keywords":["a"],"chats":["x:1"]}`:  "chats[0]",
		`{"keywords":["a"],"notify":"group"}`: "notify",
		`{"keywords":[" "]}`:                  "keywords[0]",
	} {
		_, err := sdktest.Start(t, New(), sdktest.WithConfig(cfg), sdktest.Quiet())
		require.Error(t, err, cfg)
		require.Contains(t, err.Error(), want, cfg)
	}
}
