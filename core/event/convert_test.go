package event

import (
	"testing"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

const self = 100

func testEntities() Entities {
	return NewEntities(self,
		[]tg.UserClass{
			&tg.User{ID: self, Self: true, FirstName: "Owner"},
			&tg.User{ID: 7, FirstName: "Alice", LastName: "A", Username: "alice", Contact: true},
		},
		[]tg.ChatClass{
			&tg.Chat{ID: 20, Title: "Friends", ParticipantsCount: 3},
			&tg.Channel{ID: 30, Title: "News", Broadcast: true, Username: "news"},
			&tg.Channel{ID: 31, Title: "Talk", Megagroup: true},
		}, nil)
}

func TestConvert(t *testing.T) {
	e := testEntities()
	for _, tc := range []struct {
		name     string
		update   tg.UpdateClass
		kind     pb.EventKind
		chatKey  string
		dedupKey string
		chatType pb.ChatType
		check    func(t *testing.T, ev *pb.Event)
		dropped  bool
	}{
		{
			name:     "incoming private message",
			update:   &tg.UpdateNewMessage{Message: &tg.Message{ID: 5, PeerID: &tg.PeerUser{UserID: 7}, Message: "hi", Date: 1000}, Pts: 3},
			kind:     pb.EventKind_EVENT_KIND_NEW_MESSAGE,
			chatKey:  "user:7",
			dedupKey: "new:user:7:5",
			chatType: pb.ChatType_CHAT_TYPE_PRIVATE,
			check: func(t *testing.T, ev *pb.Event) {
				m := ev.GetNewMessage()
				require.Equal(t, "hi", m.Text)
				require.Equal(t, int64(7), m.Sender.Id)
				require.Equal(t, "alice", m.Sender.Username)
				require.True(t, m.Sender.Contact)
				require.False(t, m.Outgoing)
				require.Equal(t, "Alice A", m.Chat.Title)
			},
		},
		{
			name:     "outgoing to saved messages",
			update:   &tg.UpdateNewMessage{Message: &tg.Message{ID: 6, Out: true, PeerID: &tg.PeerUser{UserID: self}, Message: ".ping"}},
			kind:     pb.EventKind_EVENT_KIND_NEW_MESSAGE,
			chatKey:  "user:100",
			dedupKey: "new:user:100:6",
			chatType: pb.ChatType_CHAT_TYPE_SELF,
			check: func(t *testing.T, ev *pb.Event) {
				require.True(t, ev.GetNewMessage().Sender.Self)
				require.True(t, ev.GetNewMessage().Outgoing)
			},
		},
		{
			name: "group message with entities and reply",
			update: &tg.UpdateNewMessage{Message: &tg.Message{ID: 9, PeerID: &tg.PeerChat{ChatID: 20}, FromID: &tg.PeerUser{UserID: 7},
				Message: "bold", Entities: []tg.MessageEntityClass{&tg.MessageEntityBold{Offset: 0, Length: 4}},
				ReplyTo: &tg.MessageReplyHeader{ReplyToMsgID: 8}}},
			kind:     pb.EventKind_EVENT_KIND_NEW_MESSAGE,
			chatKey:  "chat:20",
			dedupKey: "new:chat:20:9",
			chatType: pb.ChatType_CHAT_TYPE_GROUP,
			check: func(t *testing.T, ev *pb.Event) {
				m := ev.GetNewMessage()
				require.Equal(t, int64(8), m.ReplyToMessageId)
				require.Len(t, m.Entities, 1)
				require.Equal(t, pb.EntityType_ENTITY_TYPE_BOLD, m.Entities[0].Type)
			},
		},
		{
			name:     "channel post",
			update:   &tg.UpdateNewChannelMessage{Message: &tg.Message{ID: 1, Post: true, PeerID: &tg.PeerChannel{ChannelID: 30}, Message: "news"}},
			kind:     pb.EventKind_EVENT_KIND_NEW_MESSAGE,
			chatKey:  "channel:30",
			dedupKey: "new:channel:30:1",
			chatType: pb.ChatType_CHAT_TYPE_CHANNEL,
		},
		{
			name:     "supergroup edit",
			update:   &tg.UpdateEditChannelMessage{Message: &tg.Message{ID: 4, PeerID: &tg.PeerChannel{ChannelID: 31}, FromID: &tg.PeerUser{UserID: 7}, EditDate: 50}, Pts: 77},
			kind:     pb.EventKind_EVENT_KIND_EDITED_MESSAGE,
			chatKey:  "channel:31",
			dedupKey: "edit:channel:31:4:50:77",
			chatType: pb.ChatType_CHAT_TYPE_SUPERGROUP,
		},
		{
			name:     "private delete has no chat",
			update:   &tg.UpdateDeleteMessages{Messages: []int{1, 2}, Pts: 9},
			kind:     pb.EventKind_EVENT_KIND_DELETED_MESSAGES,
			chatKey:  "common",
			dedupKey: "del:common:9",
		},
		{
			name:     "channel delete",
			update:   &tg.UpdateDeleteChannelMessages{ChannelID: 31, Messages: []int{3}, Pts: 10},
			kind:     pb.EventKind_EVENT_KIND_DELETED_MESSAGES,
			chatKey:  "channel:31",
			dedupKey: "del:channel:31:10",
		},
		{
			name: "member joined",
			update: &tg.UpdateNewMessage{Message: &tg.MessageService{ID: 11, PeerID: &tg.PeerChat{ChatID: 20}, FromID: &tg.PeerUser{UserID: 7},
				Action: &tg.MessageActionChatAddUser{Users: []int64{7}}}},
			kind:     pb.EventKind_EVENT_KIND_CHAT_ACTION,
			chatKey:  "chat:20",
			dedupKey: "new:chat:20:11",
			check: func(t *testing.T, ev *pb.Event) {
				require.Equal(t, pb.ChatActionKind_CHAT_ACTION_KIND_JOINED, ev.GetChatAction().Action)
			},
		},
		{
			name: "member left",
			update: &tg.UpdateNewMessage{Message: &tg.MessageService{ID: 12, PeerID: &tg.PeerChat{ChatID: 20}, FromID: &tg.PeerUser{UserID: 7},
				Action: &tg.MessageActionChatDeleteUser{UserID: 7}}},
			kind:    pb.EventKind_EVENT_KIND_CHAT_ACTION,
			chatKey: "chat:20", dedupKey: "new:chat:20:12",
			check: func(t *testing.T, ev *pb.Event) {
				require.Equal(t, pb.ChatActionKind_CHAT_ACTION_KIND_LEFT, ev.GetChatAction().Action)
			},
		},
		{
			name: "reaction",
			update: &tg.UpdateMessageReactions{Peer: &tg.PeerUser{UserID: 7}, MsgID: 5, Reactions: tg.MessageReactions{
				Results: []tg.ReactionCount{{Reaction: &tg.ReactionEmoji{Emoticon: "👍"}, Count: 1}}}},
			kind:    pb.EventKind_EVENT_KIND_REACTION,
			chatKey: "user:7",
			check: func(t *testing.T, ev *pb.Event) {
				require.Equal(t, "👍", ev.GetReaction().Reactions[0].Reaction)
			},
		},
		{
			name:     "read outbox",
			update:   &tg.UpdateReadHistoryOutbox{Peer: &tg.PeerUser{UserID: 7}, MaxID: 5, Pts: 4},
			kind:     pb.EventKind_EVENT_KIND_READ,
			chatKey:  "user:7",
			dedupKey: "read:user:7:out:5",
			check: func(t *testing.T, ev *pb.Event) {
				require.True(t, ev.GetRead().Outbox)
			},
		},
		{
			name:    "typing",
			update:  &tg.UpdateUserTyping{UserID: 7, Action: &tg.SendMessageTypingAction{}},
			kind:    pb.EventKind_EVENT_KIND_TYPING,
			chatKey: "user:7",
			check: func(t *testing.T, ev *pb.Event) {
				require.Equal(t, "typing", ev.GetTyping().Action)
			},
		},
		{
			name:    "status",
			update:  &tg.UpdateUserStatus{UserID: 7, Status: &tg.UserStatusOnline{Expires: 99}},
			kind:    pb.EventKind_EVENT_KIND_USER_STATUS,
			chatKey: "user:7",
			check: func(t *testing.T, ev *pb.Event) {
				require.True(t, ev.GetUserStatus().Online)
			},
		},
		{name: "unrelated update", update: &tg.UpdateConfig{}, dropped: true},
		{name: "empty message", update: &tg.UpdateNewMessage{Message: &tg.MessageEmpty{ID: 1}}, dropped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := Convert(tc.update, e, 1000)
			if tc.dropped {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.kind, c.Event.Kind)
			require.Equal(t, tc.chatKey, c.ChatKey)
			require.Equal(t, tc.dedupKey, c.DedupKey)
			if tc.chatType != 0 {
				var chat *pb.Chat
				if m := c.Event.GetNewMessage(); m != nil {
					chat = m.Chat
				} else if m := c.Event.GetEditedMessage(); m != nil {
					chat = m.Chat
				}
				require.Equal(t, tc.chatType, chat.Type)
			}
			if tc.check != nil {
				tc.check(t, c.Event)
			}
		})
	}
}

func TestEntitiesRoundTrip(t *testing.T) {
	in := []tg.MessageEntityClass{
		&tg.MessageEntityBold{Offset: 0, Length: 2},
		&tg.MessageEntityTextURL{Offset: 3, Length: 4, URL: "https://example.org"},
		&tg.MessageEntityPre{Offset: 8, Length: 3, Language: "go"},
		&tg.MessageEntityCustomEmoji{Offset: 12, Length: 2, DocumentID: 42},
	}
	require.Equal(t, in, ToTL(TextEntities(in)))
}

// FuzzConvert feeds random TL bodies through the decoder and the converter:
// whatever Telegram sends must never panic the intake.
func FuzzConvert(f *testing.F) {
	for _, u := range []tg.UpdateClass{
		&tg.UpdateNewMessage{Message: &tg.Message{ID: 5, PeerID: &tg.PeerUser{UserID: 7}, Message: "hi"}},
		&tg.UpdateDeleteChannelMessages{ChannelID: 31, Messages: []int{3}},
		&tg.UpdateMessageReactions{Peer: &tg.PeerChat{ChatID: 1}},
	} {
		f.Add(Raw(u))
	}
	e := testEntities()
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := tg.DecodeUpdate(&bin.Buffer{Buf: data})
		if err != nil {
			return
		}
		_, _ = Convert(u, e, 0)
	})
}
