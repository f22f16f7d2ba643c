package sdktest

import (
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// The cast of the fake account. Each call returns a fresh copy.

// Me is the account the harness's runner is logged in as.
func Me() *pluginv1.User {
	return &pluginv1.User{Id: 1000, FirstName: "Me", Username: "me", Self: true}
}

// Alice is another user, the default author of incoming messages.
func Alice() *pluginv1.User {
	return &pluginv1.User{Id: 2001, FirstName: "Alice", Username: "alice", Contact: true}
}

// Bob is a third user.
func Bob() *pluginv1.User {
	return &pluginv1.User{Id: 2002, FirstName: "Bob", Username: "bob"}
}

// PrivateChat is the one-to-one chat with u.
func PrivateChat(u *pluginv1.User) *pluginv1.Chat {
	t := pluginv1.ChatType_CHAT_TYPE_PRIVATE
	if u.GetSelf() {
		t = pluginv1.ChatType_CHAT_TYPE_SELF
	}
	return &pluginv1.Chat{
		Peer: sdk.UserPeer(u.GetId()), Type: t, Username: u.GetUsername(),
		Title: strings.TrimSpace(u.GetFirstName() + " " + u.GetLastName()),
	}
}

// SavedMessages is the account's chat with itself.
func SavedMessages() *pluginv1.Chat { return PrivateChat(Me()) }

// GroupChat is a basic group.
func GroupChat() *pluginv1.Chat {
	return &pluginv1.Chat{Peer: sdk.ChatPeer(3001), Type: pluginv1.ChatType_CHAT_TYPE_GROUP, Title: "Test group", MembersCount: 3}
}

// SupergroupChat is a supergroup.
func SupergroupChat() *pluginv1.Chat {
	return &pluginv1.Chat{Peer: sdk.ChannelPeer(4001), Type: pluginv1.ChatType_CHAT_TYPE_SUPERGROUP, Title: "Test supergroup", Username: "testsuper", MembersCount: 120}
}

// ChannelChat is a broadcast channel.
func ChannelChat() *pluginv1.Chat {
	return &pluginv1.Chat{Peer: sdk.ChannelPeer(5001), Type: pluginv1.ChatType_CHAT_TYPE_CHANNEL, Title: "Test channel", Username: "testchannel"}
}

// MsgOption adjusts a message built by the helpers below.
type MsgOption func(*pluginv1.Message)

// From sets the author.
func From(u *pluginv1.User) MsgOption {
	return func(m *pluginv1.Message) {
		m.Sender = u
		m.From = sdk.UserPeer(u.GetId())
		m.Outgoing = u.GetSelf()
	}
}

// In sets the chat.
func In(chat *pluginv1.Chat) MsgOption { return func(m *pluginv1.Message) { m.Chat = chat } }

// Outgoing makes the account the author.
func Outgoing() MsgOption { return From(Me()) }

// WithMedia attaches media of a kind.
func WithMedia(kind pluginv1.MediaKind) MsgOption {
	return func(m *pluginv1.Message) { m.Media = &pluginv1.Media{Kind: kind} }
}

// ReplyingTo makes the message a reply.
func ReplyingTo(messageID int64) MsgOption {
	return func(m *pluginv1.Message) { m.ReplyToMessageId = messageID }
}

// WithID sets the message id (the harness numbers messages otherwise).
func WithID(id int64) MsgOption { return func(m *pluginv1.Message) { m.Id = id } }

// Mentioned marks the account as mentioned.
func Mentioned() MsgOption { return func(m *pluginv1.Message) { m.Mentioned = true } }

// NewMessage wraps a message in an event; the harness fills in the seq,
// the id and the date when they are zero.
func NewMessage(m *pluginv1.Message) *pluginv1.Event {
	return &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE, Payload: &pluginv1.Event_NewMessage{NewMessage: m}}
}

func text(chat *pluginv1.Chat, author *pluginv1.User, s string, opts []MsgOption) *pluginv1.Event {
	m := &pluginv1.Message{Chat: chat, Text: s}
	From(author)(m)
	for _, o := range opts {
		o(m)
	}
	return NewMessage(m)
}

// PrivateText is a message from Alice in her private chat with the account.
func PrivateText(s string, opts ...MsgOption) *pluginv1.Event {
	return text(PrivateChat(Alice()), Alice(), s, opts)
}

// GroupText is a message from Alice in GroupChat.
func GroupText(s string, opts ...MsgOption) *pluginv1.Event {
	return text(GroupChat(), Alice(), s, opts)
}

// GroupCommand is a command from Alice in GroupChat, with the default
// prefix: GroupCommand("ping", "a", "b") is ".ping a b". For another
// prefix use GroupText("!ping").
func GroupCommand(name string, args ...string) *pluginv1.Event {
	return GroupText(strings.TrimSpace(sdk.DefaultCommandPrefix + name + " " + strings.Join(args, " ")))
}

// SupergroupText is a message from Alice in SupergroupChat.
func SupergroupText(s string, opts ...MsgOption) *pluginv1.Event {
	return text(SupergroupChat(), Alice(), s, opts)
}

// ChannelPost is a post in ChannelChat (no user author).
func ChannelPost(s string, opts ...MsgOption) *pluginv1.Event {
	ch := ChannelChat()
	m := &pluginv1.Message{Chat: ch, Text: s, From: ch.GetPeer(), Post: true}
	for _, o := range opts {
		o(m)
	}
	return NewMessage(m)
}

// SavedText is a message the account wrote in its Saved Messages.
func SavedText(s string, opts ...MsgOption) *pluginv1.Event {
	return text(SavedMessages(), Me(), s, opts)
}

// Edit is the edit of a message event's message, with a new text. Feed
// the original first so both share the message id.
func Edit(ev *pluginv1.Event, newText string) *pluginv1.Event {
	m := proto.Clone(ev.GetNewMessage()).(*pluginv1.Message)
	if m == nil {
		m = proto.Clone(ev.GetEditedMessage()).(*pluginv1.Message)
	}
	m.Text = newText
	m.EditDate = m.GetDate() + 1
	return &pluginv1.Event{
		Account: ev.GetAccount(), Kind: pluginv1.EventKind_EVENT_KIND_EDITED_MESSAGE,
		Payload: &pluginv1.Event_EditedMessage{EditedMessage: m},
	}
}

// ReactionEvent is a user's reaction to a message.
func ReactionEvent(chat *pluginv1.Chat, messageID int64, u *pluginv1.User, emoji string) *pluginv1.Event {
	return &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_REACTION, Payload: &pluginv1.Event_Reaction{Reaction: &pluginv1.Reaction{
		Chat: chat, MessageId: messageID, User: u,
		Reactions: []*pluginv1.ReactionCount{{Reaction: emoji, Count: 1}},
	}}}
}

// Joined is u joining chat.
func Joined(chat *pluginv1.Chat, u *pluginv1.User) *pluginv1.Event {
	return &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_CHAT_ACTION, Payload: &pluginv1.Event_ChatAction{ChatAction: &pluginv1.ChatAction{
		Action: pluginv1.ChatActionKind_CHAT_ACTION_KIND_JOINED, Chat: chat, Actor: u, Users: []*pluginv1.User{u},
	}}}
}

// Deleted is the deletion of messages in a channel or supergroup.
func Deleted(chat *pluginv1.Chat, ids ...int64) *pluginv1.Event {
	return &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_DELETED_MESSAGES, Payload: &pluginv1.Event_DeletedMessages{DeletedMessages: &pluginv1.DeletedMessages{
		Chat: chat, MessageIds: ids,
	}}}
}
