package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gotd/td/tg"
)

func TestDirectMessageReachesOtherClient(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	alice, err := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob", Username: "bob"})
	require.NoError(t, err)

	got := make(chan *tg.UpdateNewMessage, 10)
	var gotUsers tg.Entities
	bc := connect(t, s, clientConfig{phone: bob.Phone, setup: func(d *tg.UpdateDispatcher) {
		d.OnNewMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewMessage) error {
			gotUsers = e
			got <- u
			return nil
		})
	}})
	require.Equal(t, bob.ID, bc.Self.ID)
	ac := connect(t, s, clientConfig{phone: alice.Phone})
	require.Equal(t, alice.ID, ac.Self.ID)
	require.True(t, ac.Self.Self)

	target := ac.resolveUser(ctx, "bob")
	_, err = ac.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{
		Peer: ac.InputUser(target), Message: "hello bob", RandomID: 42,
	})
	require.NoError(t, err)

	select {
	case u := <-got:
		m := u.Message.(*tg.Message)
		require.Equal(t, "hello bob", m.Message)
		require.False(t, m.Out)
		require.Equal(t, alice.ID, m.FromID.(*tg.PeerUser).UserID)
		require.Contains(t, gotUsers.Users, alice.ID, "push must carry the sender")
	case <-ctx.Done():
		t.Fatal("bob did not receive the message")
	}

	hist, err := bc.API.MessagesGetHistory(ctx, &tg.MessagesGetHistoryRequest{
		Peer: bc.InputUser(bc.resolveUser(ctx, "alice")), Limit: 10,
	})
	require.NoError(t, err)
	msgs := hist.(*tg.MessagesMessages).Messages
	require.Len(t, msgs, 1)
	require.Equal(t, "hello bob", msgs[0].(*tg.Message).Message)

	// A forged access hash is refused like Telegram does.
	_, err = ac.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{
		Peer: &tg.InputPeerUser{UserID: bob.ID, AccessHash: target.AccessHash + 1}, Message: "x", RandomID: 43,
	})
	require.ErrorContains(t, err, "PEER_ID_INVALID")

	require.Equal(t, 1, s.ConnectedSessions(alice.ID))
	require.Equal(t, 1, s.MaxConcurrentSessions(bob.ID))
}

// A driver message can be backdated: a client reading history sees the
// given date, and the driver's own view agrees.
func TestDriverDatedAt(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.CreateUser(ctx, UserSpec{Phone: "9996631111", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, UserSpec{Phone: "9996632222", FirstName: "Bob", Username: "bob"})
	require.NoError(t, err)
	when := time.Now().Add(-time.Hour).Truncate(time.Second)
	_, err = s.As(alice.ID).SendText(ctx, UserPeer(bob.ID), "from an hour ago", DatedAt(when))
	require.NoError(t, err)

	bc := connect(t, s, clientConfig{phone: bob.Phone})
	hist, err := bc.API.MessagesGetHistory(ctx, &tg.MessagesGetHistoryRequest{
		Peer: bc.InputUser(bc.resolveUser(ctx, "alice")), Limit: 10,
	})
	require.NoError(t, err)
	msgs := hist.(*tg.MessagesMessages).Messages
	require.Len(t, msgs, 1)
	require.Equal(t, int(when.Unix()), msgs[0].(*tg.Message).Date)
	own, err := s.History(alice.ID, UserPeer(bob.ID))
	require.NoError(t, err)
	require.Len(t, own, 1)
	require.True(t, own[0].Date.Equal(when), "driver view %v, want %v", own[0].Date, when)
}
