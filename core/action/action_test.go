package action

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/core/event"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func TestSendText(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("@alice")
	requireProto(t, userPeer(h.alice.ID), alice)

	t.Run("plain", func(t *testing.T) {
		h := h.with(t)
		res := h.must(sendText(alice, "hello alice"))
		m := res.GetMessage()
		require.NotNil(t, m)
		require.Positive(t, m.Id)
		require.Equal(t, "hello alice", m.Text)
		require.True(t, m.Outgoing)
		requireProto(t, alice, m.Chat.Peer)
		require.Equal(t, "Alice", m.Chat.Title)
		got := h.waitFrom(h.owner.ID, "hello alice")
		require.Equal(t, int(m.Id), got.ID)
		hist, err := h.s.History(h.alice.ID, sandbox.UserPeer(h.owner.ID))
		require.NoError(t, err)
		require.Equal(t, "hello alice", hist[len(hist)-1].Text, "alice sees it in her chat with the owner")
	})

	t.Run("same text twice is two messages", func(t *testing.T) {
		h := h.with(t)
		a := h.must(sendText(alice, "twice")).GetMessage()
		b := h.must(sendText(alice, "twice")).GetMessage()
		require.NotEqual(t, a.Id, b.Id)
		require.Len(t, filter(h.s.Messages(sandbox.UserPeer(h.alice.ID)), func(m sandbox.Message) bool { return m.Text == "twice" }), 2)
	})

	t.Run("markdown", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendAction(&pb.SendMessage{Chat: alice, ParseMode: pb.ParseMode_PARSE_MODE_MARKDOWN,
			Text: "**bold** 🙂 __it__ [site](https://example.org)"})).GetMessage()
		require.Equal(t, "bold 🙂 it site", m.Text)
		require.Equal(t, []*pb.TextEntity{
			{Type: pb.EntityType_ENTITY_TYPE_BOLD, Offset: 0, Length: 4},
			{Type: pb.EntityType_ENTITY_TYPE_ITALIC, Offset: 8, Length: 2},
			{Type: pb.EntityType_ENTITY_TYPE_TEXT_URL, Offset: 11, Length: 4, Url: "https://example.org"},
		}, stripEntities(m.Entities), "entities as the server stored them, offsets in UTF-16")
		h.waitFrom(h.owner.ID, "bold 🙂 it site")
	})

	t.Run("html with a mention", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendAction(&pb.SendMessage{Chat: alice, ParseMode: pb.ParseMode_PARSE_MODE_HTML,
			Text: `<b>hi</b> <a href="tg://user?id=` + itoa(h.alice.ID) + `">Alice</a> &amp; <code>x</code>`})).GetMessage()
		require.Equal(t, "hi Alice & x", m.Text)
		require.Equal(t, []*pb.TextEntity{
			{Type: pb.EntityType_ENTITY_TYPE_BOLD, Offset: 0, Length: 2},
			{Type: pb.EntityType_ENTITY_TYPE_MENTION_NAME, Offset: 3, Length: 5, UserId: h.alice.ID},
			{Type: pb.EntityType_ENTITY_TYPE_CODE, Offset: 11, Length: 1},
		}, stripEntities(m.Entities))
	})

	t.Run("explicit entities", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendAction(&pb.SendMessage{Chat: alice, Text: "x strike",
			Entities: []*pb.TextEntity{{Type: pb.EntityType_ENTITY_TYPE_STRIKE, Offset: 2, Length: 6}}})).GetMessage()
		require.Equal(t, []*pb.TextEntity{{Type: pb.EntityType_ENTITY_TYPE_STRIKE, Offset: 2, Length: 6}}, stripEntities(m.Entities))
	})

	t.Run("reply and silent", func(t *testing.T) {
		h := h.with(t)
		_, err := h.s.As(h.alice.ID).SendText(h.ctx, sandbox.UserPeer(h.owner.ID), "question?")
		require.NoError(t, err)
		qid := h.ownerCopyOf(alice, "question?")
		m := h.must(sendAction(&pb.SendMessage{Chat: alice, Text: "answer", ReplyToMessageId: qid, Silent: true})).GetMessage()
		require.Equal(t, qid, m.ReplyToMessageId)
		require.True(t, m.Silent)
		got := h.waitFrom(h.owner.ID, "answer")
		require.Equal(t, int(qid), got.ReplyTo)
		require.True(t, got.Silent)
	})

	t.Run("scheduled", func(t *testing.T) {
		h := h.with(t)
		at := time.Now().Add(2 * time.Second)
		m := h.must(sendAction(&pb.SendMessage{Chat: alice, Text: "later", ScheduleDate: at.Unix()})).GetMessage()
		require.Equal(t, at.Unix(), m.Date)
		require.Empty(t, filter(h.s.Messages(sandbox.UserPeer(h.alice.ID)), func(m sandbox.Message) bool { return m.Text == "later" }),
			"not delivered before its time")
		got := h.waitFrom(h.owner.ID, "later")
		require.GreaterOrEqual(t, got.Date.Unix(), at.Unix()-1)
	})

	t.Run("saved messages", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendText(userPeer(h.owner.ID), "note to self")).GetMessage()
		require.Equal(t, pb.ChatType_CHAT_TYPE_SELF, m.Chat.Type)
		h.waitFrom(h.owner.ID, "note to self")
	})

	t.Run("group and supergroup", func(t *testing.T) {
		h := h.with(t)
		gid, err := h.s.CreateGroup(h.ctx, h.alice.ID, "Friends", h.owner.ID, h.bob.ID)
		require.NoError(t, err)
		sg, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Talk", Username: "talk", Megagroup: true})
		require.NoError(t, err)
		require.NoError(t, h.s.As(h.owner.ID).Join(h.ctx, sandbox.ChannelPeer(sg)))

		m := h.must(sendText(chatPeer(gid), "hi group")).GetMessage()
		require.Equal(t, pb.ChatType_CHAT_TYPE_GROUP, m.Chat.Type)
		require.Equal(t, sandbox.ChatPeer(gid), h.waitFrom(h.owner.ID, "hi group").Peer)

		talk := h.resolve("talk")
		m = h.must(sendText(talk, "hi supergroup")).GetMessage()
		require.Equal(t, pb.ChatType_CHAT_TYPE_SUPERGROUP, m.Chat.Type)
		require.Equal(t, "Talk", m.Chat.Title)
		require.Equal(t, sandbox.ChannelPeer(sg), h.waitFrom(h.owner.ID, "hi supergroup").Peer)
	})
}

func TestPeersSurviveRestart(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")
	_, err := h.s.CreateChannel(h.ctx, h.bob.ID, sandbox.ChannelSpec{Title: "Bob's", Username: "bobs", Megagroup: true})
	require.NoError(t, err)
	bobs := h.resolve("bobs")
	h.must(&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: bobs}}}})

	h.restart()
	h.must(sendText(alice, "after restart"))
	h.waitFrom(h.owner.ID, "after restart")
	h.must(sendText(bobs, "channel after restart"))
	h.waitFrom(h.owner.ID, "channel after restart")
	// A user the runner never saw stays unknown across the restart.
	h.fails(sendText(userPeer(h.bob.ID), "hi bob"), pb.ErrorCode_ERROR_CODE_NOT_FOUND)
}

func TestEditDelete(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")
	bob := h.resolve("bob")

	t.Run("edit", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendText(alice, "draft")).GetMessage()
		e := h.must(&pb.Action{Kind: &pb.Action_Edit{Edit: &pb.EditMessage{Chat: alice, MessageId: m.Id,
			Text: "**final**", ParseMode: pb.ParseMode_PARSE_MODE_MARKDOWN}}}).GetMessage()
		require.Equal(t, m.Id, e.Id)
		require.Equal(t, "final", e.Text)
		require.Positive(t, e.EditDate)
		require.Equal(t, []*pb.TextEntity{{Type: pb.EntityType_ENTITY_TYPE_BOLD, Offset: 0, Length: 5}}, stripEntities(e.Entities))
		got := h.waitFrom(h.owner.ID, "final")
		require.True(t, got.Edited)
		require.Equal(t, int(m.Id), got.ID)
	})

	t.Run("edit someone else's message", func(t *testing.T) {
		h := h.with(t)
		_, err := h.s.As(h.alice.ID).SendText(h.ctx, sandbox.UserPeer(h.owner.ID), "alice's words")
		require.NoError(t, err)
		id := h.ownerCopyOf(alice, "alice's words")
		e := h.fails(&pb.Action{Kind: &pb.Action_Edit{Edit: &pb.EditMessage{Chat: alice, MessageId: id, Text: "mine now"}}},
			pb.ErrorCode_ERROR_CODE_FORBIDDEN)
		require.Equal(t, "MESSAGE_AUTHOR_REQUIRED", e.RpcError)
	})

	t.Run("delete for everyone", func(t *testing.T) {
		h := h.with(t)
		a := h.must(sendText(alice, "oops 1")).GetMessage()
		b := h.must(sendText(alice, "oops 2")).GetMessage()
		h.must(&pb.Action{Kind: &pb.Action_Delete{Delete: &pb.DeleteMessages{Chat: alice, MessageIds: []int64{a.Id, b.Id}, Revoke: true}}})
		hist, err := h.s.History(h.alice.ID, sandbox.UserPeer(h.owner.ID))
		require.NoError(t, err)
		for _, m := range hist {
			require.NotContains(t, []string{"oops 1", "oops 2"}, m.Text, "deleted on alice's side too")
		}
	})

	t.Run("delete refuses ids of another chat", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendText(bob, "for bob")).GetMessage()
		e := h.fails(&pb.Action{Kind: &pb.Action_Delete{Delete: &pb.DeleteMessages{Chat: alice, MessageIds: []int64{m.Id}, Revoke: true}}},
			pb.ErrorCode_ERROR_CODE_NOT_FOUND)
		require.Contains(t, e.Message, "not found in user:")
		hist, err := h.s.History(h.bob.ID, sandbox.UserPeer(h.owner.ID))
		require.NoError(t, err)
		require.Equal(t, "for bob", hist[len(hist)-1].Text, "bob's message survived")
	})

	t.Run("delete in a channel", func(t *testing.T) {
		h := h.with(t)
		cid, err := h.s.CreateChannel(h.ctx, h.owner.ID, sandbox.ChannelSpec{Title: "Mine", Username: "minechan"})
		require.NoError(t, err)
		ch := h.resolve("minechan")
		requireProto(t, channelPeer(cid), ch)
		m := h.must(sendText(ch, "post")).GetMessage()
		require.True(t, m.Post)
		h.must(&pb.Action{Kind: &pb.Action_Delete{Delete: &pb.DeleteMessages{Chat: ch, MessageIds: []int64{m.Id}}}})
		hist, err := h.s.History(h.owner.ID, sandbox.ChannelPeer(cid))
		require.NoError(t, err)
		require.Empty(t, hist)
	})
}

func TestForwardReactRead(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")
	bob := h.resolve("bob")
	_, err := h.s.As(h.alice.ID).SendText(h.ctx, sandbox.UserPeer(h.owner.ID), "news from alice")
	require.NoError(t, err)
	src := h.ownerCopyOf(alice, "news from alice")

	t.Run("forward", func(t *testing.T) {
		h := h.with(t)
		res := h.must(&pb.Action{Kind: &pb.Action_Forward{Forward: &pb.ForwardMessages{FromChat: alice, MessageIds: []int64{src}, ToChat: bob}}})
		ms := res.GetMessages().GetMessages()
		require.Len(t, ms, 1)
		require.Equal(t, "news from alice", ms[0].Text)
		requireProto(t, bob, ms[0].Chat.Peer)
		require.NotNil(t, ms[0].Forward)
		requireProto(t, userPeer(h.alice.ID), ms[0].Forward.From)
		got, err := h.s.History(h.bob.ID, sandbox.UserPeer(h.owner.ID))
		require.NoError(t, err)
		require.True(t, got[len(got)-1].Forwarded)
	})

	t.Run("forward as a copy", func(t *testing.T) {
		h := h.with(t)
		res := h.must(&pb.Action{Kind: &pb.Action_Forward{Forward: &pb.ForwardMessages{FromChat: alice, MessageIds: []int64{src}, ToChat: bob, DropAuthor: true, Silent: true}}})
		ms := res.GetMessages().GetMessages()
		require.Len(t, ms, 1)
		require.Nil(t, ms[0].Forward)
		got, err := h.s.History(h.bob.ID, sandbox.UserPeer(h.owner.ID))
		require.NoError(t, err)
		last := got[len(got)-1]
		require.Equal(t, "news from alice", last.Text)
		require.False(t, last.Forwarded)
		require.True(t, last.Silent)
	})

	t.Run("react and unreact", func(t *testing.T) {
		h := h.with(t)
		react := func(r string) {
			h.must(&pb.Action{Kind: &pb.Action_React{React: &pb.SendReaction{Chat: alice, MessageId: src, Reaction: r}}})
		}
		react("👍")
		m := h.waitFrom(h.alice.ID, "news from alice")
		require.Equal(t, map[int64]string{h.owner.ID: "👍"}, m.Reactions)
		react("")
		m = h.waitFrom(h.alice.ID, "news from alice")
		require.Empty(t, m.Reactions)
	})

	t.Run("mark read", func(t *testing.T) {
		h := h.with(t)
		require.Equal(t, 1, h.unread(alice))
		h.must(&pb.Action{Kind: &pb.Action_MarkRead{MarkRead: &pb.MarkRead{Chat: alice}}})
		require.Equal(t, 0, h.unread(alice))
	})

	t.Run("mark a supergroup read", func(t *testing.T) {
		h := h.with(t)
		sg, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Busy", Username: "busy", Megagroup: true})
		require.NoError(t, err)
		require.NoError(t, h.s.As(h.owner.ID).Join(h.ctx, sandbox.ChannelPeer(sg)))
		for _, text := range []string{"a", "b"} {
			_, err := h.s.As(h.alice.ID).SendText(h.ctx, sandbox.ChannelPeer(sg), text)
			require.NoError(t, err)
		}
		busy := h.resolve("busy")
		require.Equal(t, 2, h.unread(busy))
		h.must(&pb.Action{Kind: &pb.Action_MarkRead{MarkRead: &pb.MarkRead{Chat: busy}}})
		require.Equal(t, 0, h.unread(busy))
	})
}

// unread is the owner's unread count in a chat.
func (h *harness) unread(chat *pb.Peer) int {
	h.t.Helper()
	res, err := h.api.MessagesGetDialogs(h.ctx, &tg.MessagesGetDialogsRequest{OffsetPeer: &tg.InputPeerEmpty{}, Limit: 100})
	require.NoError(h.t, err)
	ds, ok := res.AsModified()
	require.True(h.t, ok)
	for _, d := range ds.GetDialogs() {
		if d, ok := d.(*tg.Dialog); ok && proto.Equal(event.PeerOf(d.Peer), chat) {
			return d.UnreadCount
		}
	}
	h.t.Fatalf("no dialog with %s", peerString(chat))
	return 0
}

func TestConcurrentSends(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")
	const n = 30
	results := make(chan *pb.ActionResult, n)
	for i := range n {
		go func() {
			results <- h.x.Execute(h.ctx, Call{Source: "plugin:test", Action: sendText(alice, "parallel "+itoa(int64(i)))})
		}()
	}
	ids := map[int64]bool{}
	for range n {
		res := <-results
		require.Nil(t, res.Error)
		ids[res.GetMessage().Id] = true
	}
	require.Len(t, ids, n, "every send got its own message")
	hist, err := h.s.History(h.alice.ID, sandbox.UserPeer(h.owner.ID))
	require.NoError(t, err)
	require.Len(t, hist, n)
}

func TestTypingReachesTheOtherSide(t *testing.T) {
	h := newHarness(t, Options{})
	typing := make(chan *tg.UpdateUserTyping, 10)
	h.login(h.alice.Phone, func(ctx context.Context, u tg.UpdatesClass) error {
		var list []tg.UpdateClass
		switch u := u.(type) {
		case *tg.Updates:
			list = u.Updates
		case *tg.UpdateShort:
			list = []tg.UpdateClass{u.Update}
		}
		for _, upd := range list {
			if tu, ok := upd.(*tg.UpdateUserTyping); ok {
				typing <- tu
			}
		}
		return nil
	})
	alice := h.resolve("alice")
	h.must(&pb.Action{Kind: &pb.Action_Typing{Typing: &pb.SetTyping{Chat: alice, Action: "upload_photo"}}})
	select {
	case u := <-typing:
		require.Equal(t, h.owner.ID, u.UserID)
		require.IsType(t, &tg.SendMessageUploadPhotoAction{}, u.Action)
	case <-time.After(15 * time.Second):
		t.Fatal("alice's client saw no typing")
	}
	e := h.fails(&pb.Action{Kind: &pb.Action_Typing{Typing: &pb.SetTyping{Chat: alice, Action: "dancing"}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	require.Contains(t, e.Message, "action")
}

func TestReads(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")
	bob := h.resolve("bob")
	for _, text := range []string{"one", "two", "three"} {
		_, err := h.s.As(h.alice.ID).SendText(h.ctx, sandbox.UserPeer(h.owner.ID), text)
		require.NoError(t, err)
	}
	h.must(sendText(bob, "to bob"))

	t.Run("history newest first", func(t *testing.T) {
		h := h.with(t)
		ms := h.must(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: alice, Limit: 2}}}).GetMessages().GetMessages()
		require.Equal(t, []string{"three", "two"}, texts(ms))
		requireProto(t, userPeer(h.alice.ID), ms[0].From)
		require.Equal(t, "Alice", ms[0].Sender.FirstName)
		older := h.must(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: alice, OffsetId: ms[1].Id}}}).GetMessages().GetMessages()
		require.Equal(t, []string{"one"}, texts(older))
	})

	t.Run("get messages stays in its chat", func(t *testing.T) {
		h := h.with(t)
		all := h.must(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: alice}}}).GetMessages().GetMessages()
		toBob := h.ownerCopyOf(bob, "to bob")
		ids := []int64{all[2].Id, all[0].Id, toBob, 99999}
		ms := h.must(&pb.Action{Kind: &pb.Action_GetMessages{GetMessages: &pb.GetMessages{Chat: alice, MessageIds: ids}}}).GetMessages().GetMessages()
		require.Equal(t, []string{"one", "three"}, texts(ms), "in the order asked, without bob's message or unknown ids")
	})

	t.Run("channel messages", func(t *testing.T) {
		h := h.with(t)
		cid, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Feed", Username: "feedchan"})
		require.NoError(t, err)
		var ids []int64
		for _, text := range []string{"post 1", "post 2"} {
			id, err := h.s.As(h.alice.ID).SendText(h.ctx, sandbox.ChannelPeer(cid), text)
			require.NoError(t, err)
			ids = append(ids, int64(id))
		}
		feed := h.resolve("feedchan")
		ms := h.must(&pb.Action{Kind: &pb.Action_GetMessages{GetMessages: &pb.GetMessages{Chat: feed, MessageIds: []int64{ids[1], ids[0]}}}}).GetMessages().GetMessages()
		require.Equal(t, []string{"post 2", "post 1"}, texts(ms))
		require.True(t, ms[0].Post)
		require.Equal(t, pb.ChatType_CHAT_TYPE_CHANNEL, ms[0].Chat.Type)
		ms = h.must(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: feed}}}).GetMessages().GetMessages()
		require.Equal(t, []string{"post 2", "post 1"}, texts(ms))
	})

	t.Run("resolve", func(t *testing.T) {
		h := h.with(t)
		require.NoError(t, h.s.As(h.owner.ID).AddContact(h.ctx, h.bob.ID))
		_, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Alice News", Username: "alicenews"})
		require.NoError(t, err)
		for _, tc := range []struct {
			name  string
			q     *pb.Resolve
			want  *pb.Peer
			title string
			typ   pb.ChatType
		}{
			{"username", &pb.Resolve{Query: &pb.Resolve_Username{Username: "@Alice"}}, alice, "Alice", pb.ChatType_CHAT_TYPE_PRIVATE},
			{"link", &pb.Resolve{Query: &pb.Resolve_Link{Link: "https://t.me/alice"}}, alice, "Alice", pb.ChatType_CHAT_TYPE_PRIVATE},
			{"message link", &pb.Resolve{Query: &pb.Resolve_Link{Link: "t.me/alicenews/12"}}, nil, "Alice News", pb.ChatType_CHAT_TYPE_CHANNEL},
			{"tg link", &pb.Resolve{Query: &pb.Resolve_Link{Link: "tg://resolve?domain=bob"}}, bob, "Bob", pb.ChatType_CHAT_TYPE_PRIVATE},
			{"contact phone", &pb.Resolve{Query: &pb.Resolve_Phone{Phone: "+" + h.bob.Phone}}, bob, "Bob", pb.ChatType_CHAT_TYPE_PRIVATE},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				c := h.must(&pb.Action{Kind: &pb.Action_Resolve{Resolve: tc.q}}).GetChat()
				require.NotNil(t, c)
				if tc.want != nil {
					requireProto(t, tc.want, c.Peer)
				}
				require.Equal(t, tc.title, c.Title)
				require.Equal(t, tc.typ, c.Type)
			})
		}
		// The resolved channel is addressable afterwards.
		news := h.resolve("alicenews")
		h.must(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: news}}})

		e := h.fails(&pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Link{Link: "https://t.me/+AbCdEf123"}}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		require.Contains(t, e.Message, "invite link")
		e = h.fails(&pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: "nobody_here"}}}}, pb.ErrorCode_ERROR_CODE_NOT_FOUND)
		require.Equal(t, "USERNAME_NOT_OCCUPIED", e.RpcError)
		h.fails(&pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Phone{Phone: "+" + h.alice.Phone}}}}, pb.ErrorCode_ERROR_CODE_NOT_FOUND)
	})

	t.Run("get chat", func(t *testing.T) {
		h := h.with(t)
		gid, err := h.s.CreateGroup(h.ctx, h.alice.ID, "Trio", h.owner.ID, h.bob.ID)
		require.NoError(t, err)
		sg, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Slow", Username: "slowgroup", Megagroup: true, SlowModeSeconds: 30})
		require.NoError(t, err)
		require.NoError(t, h.s.As(h.owner.ID).Join(h.ctx, sandbox.ChannelPeer(sg)))
		slow := h.resolve("slowgroup")

		c := h.must(&pb.Action{Kind: &pb.Action_GetChat{GetChat: &pb.GetChat{Chat: alice}}}).GetChat()
		requireProto(t, &pb.Chat{Peer: alice, Type: pb.ChatType_CHAT_TYPE_PRIVATE, Title: "Alice", Username: "alice"}, c)
		c = h.must(&pb.Action{Kind: &pb.Action_GetChat{GetChat: &pb.GetChat{Chat: userPeer(h.owner.ID)}}}).GetChat()
		require.Equal(t, pb.ChatType_CHAT_TYPE_SELF, c.Type)
		c = h.must(&pb.Action{Kind: &pb.Action_GetChat{GetChat: &pb.GetChat{Chat: chatPeer(gid)}}}).GetChat()
		requireProto(t, &pb.Chat{Peer: chatPeer(gid), Type: pb.ChatType_CHAT_TYPE_GROUP, Title: "Trio", MembersCount: 3}, c)
		c = h.must(&pb.Action{Kind: &pb.Action_GetChat{GetChat: &pb.GetChat{Chat: slow}}}).GetChat()
		requireProto(t, &pb.Chat{Peer: channelPeer(sg), Type: pb.ChatType_CHAT_TYPE_SUPERGROUP, Title: "Slow", Username: "slowgroup",
			MembersCount: 2, SlowModeSeconds: 30}, c)
	})

	t.Run("get me", func(t *testing.T) {
		h := h.with(t)
		u := h.must(&pb.Action{Kind: &pb.Action_GetMe{GetMe: &pb.GetMe{}}}).GetUser()
		requireProto(t, &pb.User{Id: h.owner.ID, FirstName: "Owner", Username: "owner", Self: true}, u)
	})
}

func TestMedia(t *testing.T) {
	h := newHarness(t, Options{MaxDownloadBytes: 3 << 20, MaxUploadBytes: 4 << 20})
	alice := h.resolve("alice")
	doc := bytes.Repeat([]byte("tgrunner media "), 140_000) // ~2 MiB: several parts each way

	t.Run("document round trip", func(t *testing.T) {
		h := h.with(t)
		m := h.must(&pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice, Data: doc, FileName: "notes.txt",
			MimeType: "text/plain", Caption: "the notes"}}}).GetMessage()
		require.Equal(t, "the notes", m.Text)
		requireProto(t, &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_DOCUMENT, MimeType: "text/plain", Size: int64(len(doc)), FileName: "notes.txt"}, m.Media)
		require.True(t, h.waitFrom(h.owner.ID, "the notes").HasMedia)

		f := h.must(&pb.Action{Kind: &pb.Action_Download{Download: &pb.Download{Chat: alice, MessageId: m.Id}}}).GetFile()
		require.Equal(t, "notes.txt", f.FileName)
		require.Equal(t, "text/plain", f.MimeType)
		require.True(t, bytes.Equal(doc, f.Data), "downloaded bytes equal the uploaded ones")

		e := h.fails(&pb.Action{Kind: &pb.Action_Download{Download: &pb.Download{Chat: alice, MessageId: m.Id, MaxBytes: 1000}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		require.Contains(t, e.Message, "over the limit of 1000 bytes")
	})

	t.Run("photo", func(t *testing.T) {
		h := h.with(t)
		photo := append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte{7}, 5000)...)
		m := h.must(&pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice, Data: photo, AsPhoto: true}}}).GetMessage()
		require.Equal(t, pb.MediaKind_MEDIA_KIND_PHOTO, m.Media.Kind)
		f := h.must(&pb.Action{Kind: &pb.Action_Download{Download: &pb.Download{Chat: alice, MessageId: m.Id}}}).GetFile()
		require.Equal(t, photo, f.Data)
		require.Equal(t, "image/jpeg", f.MimeType)
	})

	t.Run("caps", func(t *testing.T) {
		h := h.with(t)
		big := make([]byte, 3<<20+1)
		m := h.must(&pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice, Data: big, FileName: "big.bin"}}}).GetMessage()
		require.Equal(t, "application/octet-stream", m.Media.MimeType)
		e := h.fails(&pb.Action{Kind: &pb.Action_Download{Download: &pb.Download{Chat: alice, MessageId: m.Id}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		require.Contains(t, e.Message, "over the limit of 3145728 bytes", "the executor's cap applies without max_bytes")

		before := len(h.s.Messages())
		e = h.fails(&pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice, Data: make([]byte, 4<<20+1)}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		require.Contains(t, e.Message, "data:")
		require.Len(t, h.s.Messages(), before)
	})

	t.Run("text message has nothing to download", func(t *testing.T) {
		h := h.with(t)
		m := h.must(sendText(alice, "just text")).GetMessage()
		e := h.fails(&pb.Action{Kind: &pb.Action_Download{Download: &pb.Download{Chat: alice, MessageId: m.Id}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
		require.Contains(t, e.Message, "no media")
	})
}

func TestJoinLeave(t *testing.T) {
	h := newHarness(t, Options{})
	cid, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Open", Username: "opengroup", Megagroup: true})
	require.NoError(t, err)
	gid, err := h.s.CreateGroup(h.ctx, h.alice.ID, "Basic", h.owner.ID)
	require.NoError(t, err)
	open := h.resolve("opengroup")

	h.fails(sendText(open, "before joining"), pb.ErrorCode_ERROR_CODE_FORBIDDEN)
	c := h.must(&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: open}}}}).GetChat()
	requireProto(t, channelPeer(cid), c.Peer)
	require.Equal(t, "Open", c.Title)
	h.must(sendText(open, "after joining"))
	h.waitFrom(h.owner.ID, "after joining")

	h.must(&pb.Action{Kind: &pb.Action_Leave{Leave: &pb.LeaveChat{Chat: open}}})
	e := h.fails(sendText(open, "after leaving"), pb.ErrorCode_ERROR_CODE_FORBIDDEN)
	require.Equal(t, "CHAT_WRITE_FORBIDDEN", e.RpcError)

	h.must(sendText(chatPeer(gid), "in basic"))
	h.must(&pb.Action{Kind: &pb.Action_Leave{Leave: &pb.LeaveChat{Chat: chatPeer(gid)}}})
	h.fails(sendText(chatPeer(gid), "left basic"), pb.ErrorCode_ERROR_CODE_NOT_FOUND)

	e = h.fails(&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: chatPeer(gid)}}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	require.Contains(t, e.Message, "invite_link")
	e = h.fails(&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_InviteLink{InviteLink: "https://t.me/opengroup"}}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	require.Contains(t, e.Message, "not an invite link")
}

func TestRawInvoke(t *testing.T) {
	h := newHarness(t, Options{})
	encode := func(req bin.Encoder) []byte {
		var b bin.Buffer
		require.NoError(t, req.Encode(&b))
		return b.Buf
	}
	raw := h.must(&pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: encode(&tg.UsersGetUsersRequest{ID: []tg.InputUserClass{&tg.InputUserSelf{}}})}}}).GetRawTl()
	var users tg.UserClassVector
	require.NoError(t, users.Decode(&bin.Buffer{Buf: raw}))
	require.Len(t, users.Elems, 1)
	require.Equal(t, h.owner.ID, users.Elems[0].GetID())

	e := h.fails(&pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: encode(&tg.ContactsResolveUsernameRequest{Username: "nobody_here"})}}}, pb.ErrorCode_ERROR_CODE_NOT_FOUND)
	require.Equal(t, "USERNAME_NOT_OCCUPIED", e.RpcError)

	wrapped := encode(&tg.InvokeWithoutUpdatesRequest{Query: &tg.UsersGetUsersRequest{ID: []tg.InputUserClass{&tg.InputUserSelf{}}}})
	e = h.fails(&pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: wrapped}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	require.Contains(t, e.Message, "invokeWithoutUpdates")
	h.fails(&pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: encode(&tg.User{ID: 1})}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	h.fails(&pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: []byte{1, 2}}}}, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
}

func TestErrorsFromTheServer(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")

	t.Run("unknown peer", func(t *testing.T) {
		h := h.with(t)
		e := h.fails(sendText(userPeer(h.bob.ID), "never resolved"), pb.ErrorCode_ERROR_CODE_NOT_FOUND)
		require.Contains(t, e.Message, "user:")
		require.Contains(t, e.Message, "resolve it by username first")
		h.fails(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: channelPeer(424242)}}}, pb.ErrorCode_ERROR_CODE_NOT_FOUND)
		h.fails(sendText(chatPeer(424242), "no such group"), pb.ErrorCode_ERROR_CODE_NOT_FOUND)
	})

	t.Run("broadcast channel without admin rights", func(t *testing.T) {
		h := h.with(t)
		_, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Alice Posts", Username: "aliceposts"})
		require.NoError(t, err)
		posts := h.resolve("aliceposts")
		h.must(&pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: posts}}}})
		e := h.fails(sendText(posts, "can I post?"), pb.ErrorCode_ERROR_CODE_FORBIDDEN)
		require.Equal(t, "CHAT_ADMIN_REQUIRED", e.RpcError)
	})

	t.Run("flood wait", func(t *testing.T) {
		h := h.with(t)
		h.s.SetFaults(sandbox.Faults{MethodLimits: map[string]sandbox.Limit{"messages.sendMessage": {Count: 1, Window: time.Minute}}})
		defer h.s.SetFaults(sandbox.Faults{})
		h.must(sendText(alice, "first"))
		before := len(h.s.Messages())
		e := h.fails(sendText(alice, "second"), pb.ErrorCode_ERROR_CODE_FLOOD_WAIT)
		require.Equal(t, "FLOOD_WAIT", e.RpcError)
		require.Greater(t, e.RetryAfterSeconds, int32(50))
		require.LessOrEqual(t, e.RetryAfterSeconds, int32(60))
		require.Contains(t, e.Message, "wait")
		require.Len(t, h.s.Messages(), before, "nothing was sent")
	})

	t.Run("slow mode", func(t *testing.T) {
		h := h.with(t)
		sg, err := h.s.CreateChannel(h.ctx, h.alice.ID, sandbox.ChannelSpec{Title: "Slow", Username: "slowtalk", Megagroup: true, SlowModeSeconds: 60})
		require.NoError(t, err)
		require.NoError(t, h.s.As(h.owner.ID).Join(h.ctx, sandbox.ChannelPeer(sg)))
		slow := h.resolve("slowtalk")
		h.must(sendText(slow, "one"))
		e := h.fails(sendText(slow, "two"), pb.ErrorCode_ERROR_CODE_FLOOD_WAIT)
		require.Equal(t, "SLOWMODE_WAIT", e.RpcError)
		require.Greater(t, e.RetryAfterSeconds, int32(50))
		require.Contains(t, e.Message, "slow mode")
	})

	t.Run("deadline while the server is slow", func(t *testing.T) {
		h := h.with(t)
		h.s.SetFaults(sandbox.Faults{Latency: 3 * time.Second})
		defer h.s.SetFaults(sandbox.Faults{})
		ctx, cancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
		defer cancel()
		res := h.x.Execute(ctx, Call{Source: "owner", Action: &pb.Action{Kind: &pb.Action_GetMe{GetMe: &pb.GetMe{}}}})
		require.NotNil(t, res.Error)
		require.Equal(t, pb.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED, res.Error.Code, res.Error.Message)
	})

	t.Run("cancelled", func(t *testing.T) {
		h := h.with(t)
		ctx, cancel := context.WithCancel(h.ctx)
		cancel()
		res := h.x.Execute(ctx, Call{Source: "owner", Action: sendText(alice, "never")})
		require.Equal(t, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, res.Error.GetCode())
	})
}

// TestPeerFlood has its own account: the sandbox counts every stranger the
// account ever wrote to first.
func TestPeerFlood(t *testing.T) {
	h := newHarness(t, Options{})
	h.user("Stranger", "stranger_one")
	s2 := h.user("Other", "stranger_two")
	p1, p2 := h.resolve("stranger_one"), h.resolve("stranger_two")
	h.s.SetFaults(sandbox.Faults{PeerFloodLimit: 1})
	defer h.s.SetFaults(sandbox.Faults{})
	h.must(sendText(p1, "hello stranger"))
	h.waitFrom(h.owner.ID, "hello stranger")
	e := h.fails(sendText(p2, "hello other"), pb.ErrorCode_ERROR_CODE_FORBIDDEN)
	require.Equal(t, "PEER_FLOOD", e.RpcError)
	require.Contains(t, e.Message, "never wrote")
	hist, err := h.s.History(s2.ID, sandbox.UserPeer(h.owner.ID))
	require.NoError(t, err)
	require.Empty(t, hist)
	// Someone who wrote first is no stranger.
	_, err = h.s.As(s2.ID).SendText(h.ctx, sandbox.UserPeer(h.owner.ID), "hi owner")
	require.NoError(t, err)
	h.must(sendText(p2, "hello other, again"))
}

// TestValidationBeforeRPC checks that bad input is refused, naming the
// field, without reaching the server: the sandbox answers every call with
// INTERNAL while these run.
func TestValidationBeforeRPC(t *testing.T) {
	h := newHarness(t, Options{})
	alice := h.resolve("alice")
	h.s.SetFaults(sandbox.Faults{Errors: map[string]string{
		"messages.sendMessage": "500:SHOULD_NOT_BE_CALLED", "messages.getMessages": "500:SHOULD_NOT_BE_CALLED",
		"messages.deleteMessages": "500:SHOULD_NOT_BE_CALLED", "messages.getHistory": "500:SHOULD_NOT_BE_CALLED",
		"messages.forwardMessages": "500:SHOULD_NOT_BE_CALLED", "messages.editMessage": "500:SHOULD_NOT_BE_CALLED",
		"contacts.resolveUsername": "500:SHOULD_NOT_BE_CALLED", "upload.saveFilePart": "500:SHOULD_NOT_BE_CALLED",
	}})
	ids := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(i + 1)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		a     *pb.Action
		field string
	}{
		{"no action", &pb.Action{}, "no action kind"},
		{"no chat", sendText(nil, "hi"), "chat: missing"},
		{"chat without kind", sendText(&pb.Peer{Id: 5}, "hi"), "chat: peer kind"},
		{"empty text", sendText(alice, "  \n"), "text: empty"},
		{"markup only", sendAction(&pb.SendMessage{Chat: alice, Text: "<b></b>", ParseMode: pb.ParseMode_PARSE_MODE_HTML}), "text: empty after styling"},
		{"too long", sendText(alice, strings.Repeat("a", MaxTextUnits+1)), "text: 4097 UTF-16 units"},
		{"too long in UTF-16", sendText(alice, strings.Repeat("🙂", MaxTextUnits/2)+"a"), "text: 4097 UTF-16 units"},
		{"bad UTF-8", sendText(alice, "a\xffb"), "text: not valid UTF-8"},
		{"entity out of range", sendAction(&pb.SendMessage{Chat: alice, Text: "abc", Entities: []*pb.TextEntity{{Type: pb.EntityType_ENTITY_TYPE_BOLD, Offset: 2, Length: 2}}}), "entities[0]"},
		{"entities with markdown", sendAction(&pb.SendMessage{Chat: alice, Text: "abc", ParseMode: pb.ParseMode_PARSE_MODE_MARKDOWN, Entities: []*pb.TextEntity{{Type: pb.EntityType_ENTITY_TYPE_BOLD, Length: 1}}}), "entities: only allowed"},
		{"bad parse mode", sendAction(&pb.SendMessage{Chat: alice, Text: "abc", ParseMode: 9}), "parse_mode"},
		{"bad reply", sendAction(&pb.SendMessage{Chat: alice, Text: "abc", ReplyToMessageId: -1}), "reply_to_message_id"},
		{"too many ids", &pb.Action{Kind: &pb.Action_Delete{Delete: &pb.DeleteMessages{Chat: alice, MessageIds: ids(101)}}}, "message_ids: 101 ids"},
		{"no ids", &pb.Action{Kind: &pb.Action_GetMessages{GetMessages: &pb.GetMessages{Chat: alice}}}, "message_ids: empty"},
		{"zero id", &pb.Action{Kind: &pb.Action_Forward{Forward: &pb.ForwardMessages{FromChat: alice, ToChat: alice, MessageIds: []int64{3, 0}}}}, "message_ids[1]"},
		{"forward without target", &pb.Action{Kind: &pb.Action_Forward{Forward: &pb.ForwardMessages{FromChat: alice, MessageIds: []int64{3}}}}, "to_chat: missing"},
		{"edit without id", &pb.Action{Kind: &pb.Action_Edit{Edit: &pb.EditMessage{Chat: alice, Text: "x"}}}, "message_id"},
		{"history limit", &pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: alice, Limit: 101}}}, "limit"},
		{"bad username", &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: "a b"}}}}, "username"},
		{"empty resolve", &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{}}}, "one of username, link or phone"},
		{"not a phone", &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Phone{Phone: "call me"}}}}, "phone"},
		{"not a t.me link", &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Link{Link: "https://example.org/alice"}}}}, "not a t.me link"},
		{"empty media", &pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice}}}, "data: empty"},
		{"bad file name", &pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice, Data: []byte("x"), FileName: "../etc/passwd"}}}, "file_name"},
		{"long caption", &pb.Action{Kind: &pb.Action_SendMedia{SendMedia: &pb.SendMedia{Chat: alice, Data: []byte("x"), Caption: strings.Repeat("c", 1025)}}}, "caption: 1025"},
		{"leave a private chat", &pb.Action{Kind: &pb.Action_Leave{Leave: &pb.LeaveChat{Chat: alice}}}, "private chat"},
		{"bad reaction", &pb.Action{Kind: &pb.Action_React{React: &pb.SendReaction{Chat: alice, MessageId: 1, Reaction: "custom:x"}}}, "reaction"},
		{"kv", &pb.Action{Kind: &pb.Action_KvGet{KvGet: &pb.KVGet{Key: "k"}}}, "kv actions are served by the plugin host"},
		{"runner control", &pb.Action{Kind: &pb.Action_Pause{Pause: &pb.PauseRunner{}}}, "pause"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			e := h.fails(tc.a, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
			require.Contains(t, e.Message, tc.field)
			require.Empty(t, e.RpcError, "refused before any RPC")
		})
	}
}

func filter(ms []sandbox.Message, keep func(sandbox.Message) bool) []sandbox.Message {
	var out []sandbox.Message
	for _, m := range ms {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

func texts(ms []*pb.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// stripEntities makes entities comparable with require.Equal: fresh
// copies without protobuf's internal state.
func stripEntities(in []*pb.TextEntity) []*pb.TextEntity {
	out := make([]*pb.TextEntity, len(in))
	for i, e := range in {
		out[i] = &pb.TextEntity{Type: e.Type, Offset: e.Offset, Length: e.Length, Url: e.Url, UserId: e.UserId, Language: e.Language, CustomEmojiId: e.CustomEmojiId}
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// requireProto compares protobuf messages by value.
func requireProto(t *testing.T, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		t.Fatalf("protobuf mismatch\nwant: %v\n got: %v", prototext.Format(want), prototext.Format(got))
	}
}
