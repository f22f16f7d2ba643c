package kit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func TestParseChatRef(t *testing.T) {
	for in, want := range map[string]ChatRef{
		"me":             {Self: true},
		"Saved":          {Self: true},
		"@news":          {Username: "news"},
		"user:5":         {Peer: sdk.UserPeer(5)},
		"channel:7":      {Peer: sdk.ChannelPeer(7)},
		"42":             {Peer: sdk.UserPeer(42)},
		"-45":            {Peer: sdk.ChatPeer(45)},
		"-1001234567890": {Peer: sdk.ChannelPeer(1234567890)},
		"group":          {Kind: pb.ChatType_CHAT_TYPE_GROUP},
		"channel":        {Kind: pb.ChatType_CHAT_TYPE_CHANNEL},
	} {
		got, err := ParseChatRef("f", in)
		require.NoError(t, err, in)
		got.Raw = ""
		require.Equal(t, want.Self, got.Self, in)
		require.Equal(t, want.Username, got.Username, in)
		require.Equal(t, want.Kind, got.Kind, in)
		require.Equal(t, sdk.PeerString(want.Peer), sdk.PeerString(got.Peer), in)
	}
	for in, want := range map[string]string{
		"":        "f: empty chat",
		"@":       "f: empty username",
		"bob":     `f: "bob" is not a chat`,
		"0":       "f: chat id 0",
		"group:1": `unknown kind "group"`,
	} {
		_, err := ParseChatRef("f", in)
		require.ErrorContains(t, err, want, in)
	}
	_, err := ParseTarget("to", "private")
	require.ErrorContains(t, err, "to: \"private\" is a kind of chat")
}

func TestMatches(t *testing.T) {
	super := &pb.Chat{Peer: sdk.ChannelPeer(9), Type: pb.ChatType_CHAT_TYPE_SUPERGROUP, Username: "Chat"}
	saved := &pb.Chat{Peer: sdk.UserPeer(1), Type: pb.ChatType_CHAT_TYPE_SELF}
	refs, err := ParseChatRefs("chats", []string{"group", "@chat"})
	require.NoError(t, err)
	require.True(t, refs[0].Matches(super, 1), "group covers supergroups")
	require.True(t, refs[1].Matches(super, 1), "usernames ignore case")
	me, _ := ParseChatRef("x", "me")
	require.True(t, me.Matches(saved, 1))
	require.False(t, MatchesAny(nil, super, 1))
}

func TestWhereAndLinks(t *testing.T) {
	for _, tc := range []struct {
		chat *pb.Chat
		want string
	}{
		{&pb.Chat{Peer: sdk.ChannelPeer(9), Type: pb.ChatType_CHAT_TYPE_CHANNEL, Title: "News", Username: "news"}, "in News: https://t.me/news/3"},
		{&pb.Chat{Peer: sdk.ChannelPeer(9), Type: pb.ChatType_CHAT_TYPE_SUPERGROUP, Title: "Ops"}, "in Ops: https://t.me/c/9/3"},
		{&pb.Chat{Peer: sdk.UserPeer(5), Type: pb.ChatType_CHAT_TYPE_PRIVATE, Title: "Alice"}, "in private chat with Alice"},
		{&pb.Chat{Peer: sdk.ChatPeer(4), Type: pb.ChatType_CHAT_TYPE_GROUP, Title: "Friends"}, "in group Friends"},
		{&pb.Chat{Peer: sdk.UserPeer(1), Type: pb.ChatType_CHAT_TYPE_SELF}, "in Saved Messages"},
	} {
		require.Equal(t, tc.want, Where(tc.chat, 3))
	}
	require.Equal(t, int64(-1000000000009), ChatID(sdk.ChannelPeer(9)))
	require.Equal(t, int64(-4), ChatID(sdk.ChatPeer(4)))
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"name": "Bob", "n": "{name}"}
	require.Equal(t, "Hi Bob, {typo} {n}", Expand("Hi {name}, {typo} {n}", map[string]string{"name": "Bob", "n": "{n}"}))
	require.Equal(t, "{name}", Expand("{n}", vars), "values are not expanded again")
	require.Equal(t, "open { brace", Expand("open { brace", vars))
}

func TestFromOwner(t *testing.T) {
	me := &pb.User{Id: 1, Self: true}
	alice := &pb.User{Id: 2}
	require.True(t, FromOwner(&pb.Message{Outgoing: true, Sender: me}))
	require.False(t, FromOwner(&pb.Message{Outgoing: true, Sender: alice}), "a wrongly flagged message of another member")
	require.False(t, FromOwner(&pb.Message{Sender: me}))
	require.True(t, WrittenByMe(&pb.Message{Sender: me}))
	require.False(t, WrittenByMe(&pb.Message{Sender: me, Post: true}), "channel posts never")
}

func TestSent(t *testing.T) {
	var s Sent
	to := sdk.UserPeer(5)
	s.Add(to, &pb.Message{Id: 10})
	require.True(t, s.Has(&pb.Message{Id: 10, Chat: &pb.Chat{Peer: to}}))
	require.False(t, s.Has(&pb.Message{Id: 10, Chat: &pb.Chat{Peer: sdk.UserPeer(6)}}))
	for i := range 100 {
		s.Add(to, &pb.Message{Id: int64(100 + i)})
	}
	require.False(t, s.Has(&pb.Message{Id: 10, Chat: &pb.Chat{Peer: to}}), "old ids are forgotten")
}

func FuzzParseChatRef(f *testing.F) {
	for _, s := range []string{"me", "@x", "user:1", "-100123", "group", "chat:-1", "  42 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseChatRef("f", s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: f: ") {
				t.Fatalf("error does not name the field: %v", err)
			}
			return
		}
		set := 0
		for _, b := range []bool{r.Self, r.Peer != nil, r.Username != "", r.Kind != 0} {
			if b {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("%q parsed into %d meanings: %+v", s, set, r)
		}
	})
}

func FuzzExpand(f *testing.F) {
	f.Add("Hi {name}, {x", "Bob")
	f.Fuzz(func(t *testing.T, tmpl, name string) {
		out := Expand(tmpl, map[string]string{"name": name})
		if !strings.Contains(tmpl, "{name}") && out != tmpl {
			t.Fatalf("changed a template without placeholders: %q -> %q", tmpl, out)
		}
	})
}
