package peers_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func TestCacheRemembersAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/data"
	st, err := store.Open(ctx, dir, store.Options{})
	require.NoError(t, err)
	c := peers.New(st.Peers())
	require.NoError(t, c.Remember(ctx,
		[]tg.UserClass{&tg.User{ID: 7, AccessHash: 70, FirstName: "Alice", Username: "alice"}},
		[]tg.ChatClass{&tg.Channel{ID: 30, AccessHash: 300, Title: "News", Broadcast: true}, &tg.Chat{ID: 20, Title: "Friends"}},
	))
	// A min user (no usable access hash) never replaces the full one.
	require.NoError(t, c.Remember(ctx, []tg.UserClass{&tg.User{ID: 7, Min: true, AccessHash: 1, FirstName: "Alice"}}, nil))
	require.NoError(t, c.MarkWroteFirst(ctx, 7))
	require.NoError(t, st.Close())

	st, err = store.Open(ctx, dir, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	c = peers.New(st.Peers())
	for _, tc := range []struct {
		ref  *pb.Peer
		want tg.InputPeerClass
	}{
		{&pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 7}, &tg.InputPeerUser{UserID: 7, AccessHash: 70}},
		{&pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 1}, &tg.InputPeerSelf{}},
		{&pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: 30}, &tg.InputPeerChannel{ChannelID: 30, AccessHash: 300}},
		{&pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHAT, Id: 20}, &tg.InputPeerChat{ChatID: 20}},
	} {
		got, err := c.InputPeer(ctx, tc.ref, 1)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	_, err = c.InputPeer(ctx, &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 99}, 1)
	require.True(t, errors.Is(err, peers.ErrUnknownPeer))
	require.True(t, c.WroteFirst(ctx, 7))
	require.False(t, c.WroteFirst(ctx, 99))
	p, err := c.ByUsername(ctx, "@Alice")
	require.NoError(t, err)
	require.Equal(t, int64(7), p.Ref.ID)
	require.True(t, c.Channel(30).Broadcast)
}
