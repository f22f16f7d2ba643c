package action

import (
	"testing"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// everyKind builds one action of each kind in the contract's oneof, so a
// kind added to the proto without a name here fails the test.
func everyKind(t *testing.T) map[string]*pb.Action {
	t.Helper()
	out := map[string]*pb.Action{}
	oneof := (&pb.Action{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
	require.NotNil(t, oneof)
	for i := 0; i < oneof.Fields().Len(); i++ {
		f := oneof.Fields().Get(i)
		a := &pb.Action{}
		m := a.ProtoReflect()
		m.Set(f, protoreflect.ValueOfMessage(m.NewField(f).Message()))
		out[string(f.Name())] = a
	}
	return out
}

func TestKindNamesEveryAction(t *testing.T) {
	all := everyKind(t)
	require.Len(t, all, 25)
	for field, a := range all {
		require.Equal(t, field, Kind(a), "kind names equal the contract's field names")
	}
	require.Equal(t, "", Kind(nil))
	require.Equal(t, "", Kind(&pb.Action{}))
}

func TestIsWrite(t *testing.T) {
	writes := map[string]bool{"send": true, "edit": true, "delete": true, "forward": true, "react": true, "mark_read": true,
		"typing": true, "send_media": true, "join": true, "leave": true, "raw_invoke": true}
	sends := map[string]bool{"send": true, "send_media": true, "forward": true}
	for field, a := range everyKind(t) {
		require.Equal(t, writes[field], IsWrite(a), field)
		require.Equal(t, sends[field], IsSend(a), field)
	}
	require.False(t, IsWrite(nil))
}

func TestTargetChat(t *testing.T) {
	p := &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: 9}
	src := &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 3}
	for _, tc := range []struct {
		a    *pb.Action
		want *pb.Peer
	}{
		{&pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Edit{Edit: &pb.EditMessage{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Delete{Delete: &pb.DeleteMessages{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Forward{Forward: &pb.ForwardMessages{FromChat: src, ToChat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_React{React: &pb.SendReaction{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_MarkRead{MarkRead: &pb.MarkRead{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Typing{Typing: &pb.SetTyping{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_GetMessages{GetMessages: &pb.GetMessages{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_GetChat{GetChat: &pb.GetChat{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Download{Download: &pb.Download{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: p}}}}, p},
		{&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_InviteLink{InviteLink: "t.me/+x"}}}}, nil},
		{&pb.Action{Kind: &pb.Action_Leave{Leave: &pb.LeaveChat{Chat: p}}}, p},
		{&pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{}}}, nil},
		{&pb.Action{Kind: &pb.Action_GetMe{GetMe: &pb.GetMe{}}}, nil},
		{&pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{}}}, nil},
		{&pb.Action{Kind: &pb.Action_KvGet{KvGet: &pb.KVGet{}}}, nil},
		{nil, nil},
	} {
		require.Same(t, tc.want, TargetChat(tc.a), Kind(tc.a))
	}
	fwd := &pb.Action{Kind: &pb.Action_Forward{Forward: &pb.ForwardMessages{FromChat: src, ToChat: p}}}
	require.Same(t, src, SourceChat(fwd))
	require.Nil(t, SourceChat(&pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: p}}}))
}

func TestParseLink(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Link
		bad  string
	}{
		{in: "https://t.me/alice", want: Link{Username: "alice"}},
		{in: "t.me/alice/", want: Link{Username: "alice"}},
		{in: "http://telegram.me/some_chan/42", want: Link{Username: "some_chan"}},
		{in: "https://t.me/s/news", want: Link{Username: "news"}},
		{in: "t.me/+AbCd-ef_12", want: Link{InviteHash: "AbCd-ef_12"}},
		{in: "https://t.me/joinchat/AAAAAE", want: Link{InviteHash: "AAAAAE"}},
		{in: "https://t.me/+15551234567", want: Link{Phone: "+15551234567"}},
		{in: "https://t.me/c/1234/5", want: Link{ChannelID: 1234}},
		{in: "tg://resolve?domain=bob", want: Link{Username: "bob"}},
		{in: "tg://join?invite=XyZ", want: Link{InviteHash: "XyZ"}},
		{in: "", bad: "link: empty"},
		{in: "https://example.org/alice", bad: "not a t.me link"},
		{in: "https://t.me/", bad: "no path"},
		{in: "https://t.me/a", bad: "does not name"},
		{in: "https://t.me/c/x/1", bad: "bad channel id"},
		{in: "tg://settings", bad: "not a tg://resolve"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLink(tc.in)
			if tc.bad != "" {
				require.ErrorContains(t, err, tc.bad)
				require.Equal(t, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, ErrorOf(err).Code)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestInviteHash(t *testing.T) {
	for in, want := range map[string]string{
		"https://t.me/+AbC_d-1": "AbC_d-1", "t.me/joinchat/QQQ": "QQQ", "+Zz9": "Zz9", "Zz9": "Zz9", "tg://join?invite=abc": "abc",
	} {
		got, err := inviteHash(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "https://t.me/alice", "bad hash!", "+"} {
		_, err := inviteHash(in)
		require.Error(t, err, in)
		require.Equal(t, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, ErrorOf(err).Code, in)
	}
}

func TestRawMethod(t *testing.T) {
	enc := func(e bin.Encoder) []byte {
		var b bin.Buffer
		require.NoError(t, e.Encode(&b))
		return b.Buf
	}
	require.Equal(t, "messages.sendMessage", RawMethod(enc(&tg.MessagesSendMessageRequest{Peer: &tg.InputPeerSelf{}, Message: "x"})))
	require.Equal(t, "account.deleteAccount", RawMethod(enc(&tg.AccountDeleteAccountRequest{Reason: "x"})))
	require.Equal(t, "", RawMethod(enc(&tg.User{})), "a type is not a method")
	require.Equal(t, "", RawMethod([]byte{1}))
	_, err := checkRaw(enc(&tg.InvokeWithLayerRequest{Layer: tg.Layer, Query: &tg.HelpGetConfigRequest{}}))
	require.ErrorContains(t, err, "wraps another request")
}
