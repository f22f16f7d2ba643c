package sandbox

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gotd/td/telegram/downloader"
	"github.com/gotd/td/telegram/uploader"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
)

type collector struct {
	mu   sync.Mutex
	msgs []*tg.Message
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1000)} }

func (c *collector) add(m tg.MessageClass) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m.(*tg.Message))
	c.mu.Unlock()
	c.ch <- struct{}{}
}

func (c *collector) wait(t *testing.T, ctx context.Context, match func(*tg.Message) bool) *tg.Message {
	t.Helper()
	for {
		c.mu.Lock()
		for _, m := range c.msgs {
			if match(m) {
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-ctx.Done():
			t.Fatal("message not received")
		}
	}
}

func TestGroupsAndChannels(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	alice, _ := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice", Username: "alice"})
	bob, _ := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob", Username: "bob"})
	groupID, err := s.CreateGroup(ctx, alice.ID, "Friends", bob.ID)
	require.NoError(t, err)
	chanID, err := s.CreateChannel(ctx, alice.ID, ChannelSpec{Title: "News", Username: "news"})
	require.NoError(t, err)
	superID, err := s.CreateChannel(ctx, alice.ID, ChannelSpec{Title: "Chat", Username: "slowchat", Megagroup: true, SlowModeSeconds: 60})
	require.NoError(t, err)
	require.NoError(t, s.As(bob.ID).Join(ctx, ChannelPeer(superID)))

	got := newCollector()
	bc := connect(t, s, clientConfig{phone: bob.Phone, setup: func(d *tg.UpdateDispatcher) {
		d.OnNewMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewMessage) error {
			got.add(u.Message)
			return nil
		})
		d.OnNewChannelMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewChannelMessage) error {
			got.add(u.Message)
			return nil
		})
	}})

	// Basic group message from the driver reaches bob's client.
	_, err = s.As(alice.ID).SendText(ctx, ChatPeer(groupID), "group hello")
	require.NoError(t, err)
	m := got.wait(t, ctx, func(m *tg.Message) bool { return m.Message == "group hello" })
	require.Equal(t, groupID, m.PeerID.(*tg.PeerChat).ChatID)

	// Bob joins the public broadcast channel through the client and gets posts.
	res, err := bc.API.ContactsResolveUsername(ctx, &tg.ContactsResolveUsernameRequest{Username: "news"})
	require.NoError(t, err)
	news := res.Chats[0].(*tg.Channel)
	require.True(t, news.Broadcast)
	inNews := &tg.InputChannel{ChannelID: news.ID, AccessHash: news.AccessHash}
	_, err = bc.API.ChannelsJoinChannel(ctx, inNews)
	require.NoError(t, err)
	_, err = s.As(alice.ID).SendText(ctx, ChannelPeer(chanID), "post one")
	require.NoError(t, err)
	m = got.wait(t, ctx, func(m *tg.Message) bool { return m.Message == "post one" })
	require.True(t, m.Post)
	// Members cannot post in a broadcast channel.
	_, err = bc.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{
		Peer: &tg.InputPeerChannel{ChannelID: news.ID, AccessHash: news.AccessHash}, Message: "x", RandomID: 1,
	})
	require.True(t, tgerr.Is(err, "CHAT_ADMIN_REQUIRED"), "got %v", err)
	// A wrong channel access hash is CHANNEL_INVALID.
	_, err = bc.API.ChannelsGetMessages(ctx, &tg.ChannelsGetMessagesRequest{
		Channel: &tg.InputChannel{ChannelID: news.ID, AccessHash: news.AccessHash ^ 1},
		ID:      []tg.InputMessageClass{&tg.InputMessageID{ID: 1}},
	})
	require.True(t, tgerr.Is(err, "CHANNEL_INVALID"), "got %v", err)

	// Slow mode in the supergroup.
	res, err = bc.API.ContactsResolveUsername(ctx, &tg.ContactsResolveUsernameRequest{Username: "slowchat"})
	require.NoError(t, err)
	sc := res.Chats[0].(*tg.Channel)
	scPeer := &tg.InputPeerChannel{ChannelID: sc.ID, AccessHash: sc.AccessHash}
	_, err = bc.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{Peer: scPeer, Message: "first", RandomID: 2})
	require.NoError(t, err)
	_, err = bc.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{Peer: scPeer, Message: "second", RandomID: 3})
	require.True(t, tgerr.Is(err, "SLOWMODE_WAIT"), "got %v", err)
	sent, err := s.WaitMessage(ctx, func(m Message) bool { return m.Text == "first" && m.From == bob.ID })
	require.NoError(t, err)
	require.Equal(t, ChannelPeer(superID), sent.Peer)

	// Channel catch-up through getChannelDifference after being offline.
	bc.Close()
	for i := 0; i < 250; i++ {
		_, err := s.As(alice.ID).SendText(ctx, ChannelPeer(chanID), "backlog")
		require.NoError(t, err)
	}
	_, err = s.As(alice.ID).SendText(ctx, ChannelPeer(chanID), "last post")
	require.NoError(t, err)
	got2 := newCollector()
	bc2 := connect(t, s, clientConfig{phone: bob.Phone, setup: func(d *tg.UpdateDispatcher) {
		d.OnNewChannelMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewChannelMessage) error {
			got2.add(u.Message)
			return nil
		})
	}})
	// A fresh client learns the channel from dialogs, like a real one.
	_, err = bc2.API.MessagesGetDialogs(ctx, &tg.MessagesGetDialogsRequest{OffsetPeer: &tg.InputPeerEmpty{}, Limit: 50})
	require.NoError(t, err)
	hist, err := bc2.API.MessagesGetHistory(ctx, &tg.MessagesGetHistoryRequest{
		Peer: &tg.InputPeerChannel{ChannelID: news.ID, AccessHash: news.AccessHash}, Limit: 10,
	})
	require.NoError(t, err)
	cm := hist.(*tg.MessagesChannelMessages)
	require.Equal(t, 252, cm.Count)
	require.Equal(t, "last post", cm.Messages[0].(*tg.Message).Message)
	diff, err := bc2.API.UpdatesGetChannelDifference(ctx, &tg.UpdatesGetChannelDifferenceRequest{
		Channel: inNews, Filter: &tg.ChannelMessagesFilterEmpty{}, Pts: 1, Limit: 100,
	})
	require.NoError(t, err)
	d := diff.(*tg.UpdatesChannelDifference)
	require.False(t, d.Final, "backlog larger than the limit comes in parts")
	require.Len(t, d.NewMessages, 100)
	for _, m := range d.NewMessages {
		require.False(t, m.(*tg.Message).Out, "bob did not write the posts")
	}

	// The author catching up sees its own posts as outgoing, as live.
	ac := connect(t, s, clientConfig{phone: alice.Phone})
	res, err = ac.API.ContactsResolveUsername(ctx, &tg.ContactsResolveUsernameRequest{Username: "news"})
	require.NoError(t, err)
	own := res.Chats[0].(*tg.Channel)
	diff, err = ac.API.UpdatesGetChannelDifference(ctx, &tg.UpdatesGetChannelDifferenceRequest{
		Channel: &tg.InputChannel{ChannelID: own.ID, AccessHash: own.AccessHash}, Filter: &tg.ChannelMessagesFilterEmpty{}, Pts: 1, Limit: 100,
	})
	require.NoError(t, err)
	mine := diff.(*tg.UpdatesChannelDifference).NewMessages
	require.Len(t, mine, 100)
	for _, m := range mine {
		require.True(t, m.(*tg.Message).Out, "alice wrote every post: %+v", m)
	}
}

func TestMessageActionsAndMedia(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	alice, _ := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice", Username: "alice"})
	bob, _ := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob", Username: "bob"})

	edits := make(chan *tg.Message, 10)
	deletes := make(chan []int, 10)
	reacts := make(chan *tg.UpdateMessageReactions, 10)
	typing := make(chan struct{}, 10)
	got := newCollector()
	bc := connect(t, s, clientConfig{phone: bob.Phone, setup: func(d *tg.UpdateDispatcher) {
		d.OnNewMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewMessage) error {
			got.add(u.Message)
			return nil
		})
		d.OnEditMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateEditMessage) error {
			edits <- u.Message.(*tg.Message)
			return nil
		})
		d.OnDeleteMessages(func(ctx context.Context, e tg.Entities, u *tg.UpdateDeleteMessages) error {
			deletes <- u.Messages
			return nil
		})
		d.OnMessageReactions(func(ctx context.Context, e tg.Entities, u *tg.UpdateMessageReactions) error {
			reacts <- u
			return nil
		})
		d.OnUserTyping(func(ctx context.Context, e tg.Entities, u *tg.UpdateUserTyping) error {
			typing <- struct{}{}
			return nil
		})
	}})
	ac := connect(t, s, clientConfig{phone: alice.Phone})
	bobPeer := ac.InputUser(ac.resolveUser(ctx, "bob"))

	// Reply, entities, silent.
	first, err := s.As(alice.ID).SendText(ctx, UserPeer(bob.ID), "first")
	require.NoError(t, err)
	_, err = ac.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{
		Peer: bobPeer, Message: "bold reply", RandomID: 7, Silent: true,
		ReplyTo:  &tg.InputReplyToMessage{ReplyToMsgID: first},
		Entities: []tg.MessageEntityClass{&tg.MessageEntityBold{Offset: 0, Length: 4}},
	})
	require.NoError(t, err)
	reply := got.wait(t, ctx, func(m *tg.Message) bool { return m.Message == "bold reply" })
	require.True(t, reply.Silent)
	require.Len(t, reply.Entities, 1)
	firstAtBob := got.wait(t, ctx, func(m *tg.Message) bool { return m.Message == "first" })
	require.Equal(t, firstAtBob.ID, reply.ReplyTo.(*tg.MessageReplyHeader).ReplyToMsgID, "reply points at bob's copy")

	// Typing.
	_, err = ac.API.MessagesSetTyping(ctx, &tg.MessagesSetTypingRequest{Peer: bobPeer, Action: &tg.SendMessageTypingAction{}})
	require.NoError(t, err)
	<-typing

	// Edit and reaction reach bob.
	_, err = ac.API.MessagesEditMessage(ctx, &tg.MessagesEditMessageRequest{Peer: bobPeer, ID: first, Message: "first (edited)"})
	require.NoError(t, err)
	require.Equal(t, "first (edited)", (<-edits).Message)
	alicePeer := bc.InputUser(bc.resolveUser(ctx, "alice"))
	_, err = bc.API.MessagesSendReaction(ctx, &tg.MessagesSendReactionRequest{
		Peer: alicePeer, MsgID: firstAtBob.ID, Reaction: []tg.ReactionClass{&tg.ReactionEmoji{Emoticon: "👍"}},
	})
	require.NoError(t, err)
	dm, err := s.WaitMessage(ctx, func(m Message) bool { return m.Reactions[bob.ID] == "👍" })
	require.NoError(t, err)
	require.Equal(t, first, dm.ID)

	// Search and getMessages in one chat.
	found, err := bc.API.MessagesSearch(ctx, &tg.MessagesSearchRequest{Peer: alicePeer, Q: "edited", Filter: &tg.InputMessagesFilterEmpty{}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, found.(*tg.MessagesMessages).Messages, 1)

	// Forward to self (Saved Messages).
	fwd, err := bc.API.MessagesForwardMessages(ctx, &tg.MessagesForwardMessagesRequest{
		FromPeer: alicePeer, ID: []int{firstAtBob.ID}, RandomID: []int64{99}, ToPeer: &tg.InputPeerSelf{},
	})
	require.NoError(t, err)
	var fwdMsg *tg.Message
	for _, u := range fwd.(*tg.Updates).Updates {
		if nm, ok := u.(*tg.UpdateNewMessage); ok {
			fwdMsg = nm.Message.(*tg.Message)
		}
	}
	require.NotNil(t, fwdMsg)
	require.Equal(t, alice.ID, fwdMsg.FwdFrom.FromID.(*tg.PeerUser).UserID)

	// Read history tells the sender.
	_, err = bc.API.MessagesReadHistory(ctx, &tg.MessagesReadHistoryRequest{Peer: alicePeer})
	require.NoError(t, err)

	// Revoke deletes bob's copy too.
	_, err = ac.API.MessagesDeleteMessages(ctx, &tg.MessagesDeleteMessagesRequest{ID: []int{first}, Revoke: true})
	require.NoError(t, err)
	require.Equal(t, []int{firstAtBob.ID}, <-deletes)

	// Dialogs list both peers.
	dl, err := bc.API.MessagesGetDialogs(ctx, &tg.MessagesGetDialogsRequest{OffsetPeer: &tg.InputPeerEmpty{}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, dl.(*tg.MessagesDialogs).Dialogs, 2)

	// Media: upload a document, send it, download it back.
	payload := bytes.Repeat([]byte("sandbox-media "), 50000)
	up := uploader.NewUploader(ac.API)
	file, err := up.FromBytes(ctx, "notes.txt", payload)
	require.NoError(t, err)
	_, err = ac.API.MessagesSendMedia(ctx, &tg.MessagesSendMediaRequest{
		Peer: bobPeer, Message: "a file", RandomID: 8,
		Media: &tg.InputMediaUploadedDocument{File: file, MimeType: "text/plain",
			Attributes: []tg.DocumentAttributeClass{&tg.DocumentAttributeFilename{FileName: "notes.txt"}}},
	})
	require.NoError(t, err)
	withFile := got.wait(t, ctx, func(m *tg.Message) bool { return m.Message == "a file" })
	doc := withFile.Media.(*tg.MessageMediaDocument).Document.(*tg.Document)
	var out bytes.Buffer
	_, err = downloader.NewDownloader().Download(bc.API, &tg.InputDocumentFileLocation{
		ID: doc.ID, AccessHash: doc.AccessHash, FileReference: doc.FileReference,
	}).Stream(ctx, &out)
	require.NoError(t, err)
	require.Equal(t, payload, out.Bytes())
}

type (
	tgDispatcher = tg.UpdateDispatcher
	tgMessage    = tg.Message
)

func onNew(c *collector) func(context.Context, tg.Entities, *tg.UpdateNewMessage) error {
	return func(_ context.Context, _ tg.Entities, u *tg.UpdateNewMessage) error {
		c.add(u.Message)
		return nil
	}
}
