package sandbox

import (
	"strings"
	"testing"
	"time"

	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/stretchr/testify/require"
)

// A private channel and a basic group are joined by their invite links:
// the creator exports one link per chat, anyone checks it (title and
// size before joining, the chat once in) and imports it once.
func TestInviteLinks(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	alice, _ := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice"})
	bob, _ := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob"})
	carol, _ := s.CreateUser(ctx, UserSpec{Phone: "9996630003", FirstName: "Carol"})
	chanID, err := s.CreateChannel(ctx, alice.ID, ChannelSpec{Title: "Secret club", Megagroup: true})
	require.NoError(t, err)
	groupID, err := s.CreateGroup(ctx, alice.ID, "Family", carol.ID)
	require.NoError(t, err)

	chanLink, err := s.InviteLink(ctx, alice.ID, ChannelPeer(chanID))
	require.NoError(t, err)
	again, err := s.InviteLink(ctx, alice.ID, ChannelPeer(chanID))
	require.NoError(t, err)
	require.Equal(t, chanLink, again, "one primary link per chat")
	_, err = s.InviteLink(ctx, carol.ID, ChatPeer(groupID))
	require.True(t, tgerr.Is(err, "CHAT_ADMIN_REQUIRED"), "only the creator or an admin exports: %v", err)

	bc := connect(t, s, clientConfig{phone: bob.Phone})
	hash := strings.TrimPrefix(chanLink, "https://t.me/+")
	inv, err := bc.API.MessagesCheckChatInvite(ctx, hash)
	require.NoError(t, err)
	preview, ok := inv.(*tg.ChatInvite)
	require.True(t, ok, "%T", inv)
	require.Equal(t, "Secret club", preview.Title)
	require.True(t, preview.Channel && preview.Megagroup && !preview.Public)
	require.Equal(t, 1, preview.ParticipantsCount)

	res, err := bc.API.MessagesImportChatInvite(ctx, hash)
	require.NoError(t, err)
	joined := res.(*tg.MessagesChatInviteJoinResultOk).Updates.(*tg.Updates)
	require.Equal(t, chanID, joined.Chats[0].(*tg.Channel).ID)
	inv, err = bc.API.MessagesCheckChatInvite(ctx, hash)
	require.NoError(t, err)
	require.Equal(t, chanID, inv.(*tg.ChatInviteAlready).Chat.(*tg.Channel).ID)
	_, err = bc.API.MessagesImportChatInvite(ctx, hash)
	require.True(t, tgerr.Is(err, "USER_ALREADY_PARTICIPANT"), "%v", err)

	// The client exports a basic group's link as its creator; bob joins.
	ac := connect(t, s, clientConfig{phone: alice.Phone})
	exp, err := ac.API.MessagesExportChatInvite(ctx, &tg.MessagesExportChatInviteRequest{Peer: &tg.InputPeerChat{ChatID: groupID}})
	require.NoError(t, err)
	groupHash := strings.TrimPrefix(exp.(*tg.ChatInviteExported).Link, "https://t.me/+")
	_, err = bc.API.MessagesImportChatInvite(ctx, groupHash)
	require.NoError(t, err)
	_, err = s.As(bob.ID).SendText(ctx, ChatPeer(groupID), "hi family")
	require.NoError(t, err, "bob is a member now")

	_, err = bc.API.MessagesImportChatInvite(ctx, "nosuchhash")
	require.True(t, tgerr.Is(err, "INVITE_HASH_INVALID"), "%v", err)
}
