package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRestartKeepsRSAKey(t *testing.T) {
	dir := t.TempDir()
	s1, err := Start(context.Background(), Options{Dir: dir})
	require.NoError(t, err)
	pem1 := s1.PublicKeyPEM()
	require.NoError(t, s1.Close())
	s2 := startServer(t, Options{Dir: dir})
	require.Equal(t, string(pem1), string(s2.PublicKeyPEM()))
}

func TestForcedDisconnectRecovers(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	alice, _ := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice"})
	bob, _ := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob"})
	got := newCollector()
	connect(t, s, clientConfig{phone: bob.Phone, setup: func(d *tgDispatcher) {
		d.OnNewMessage(onNew(got))
	}})
	require.Equal(t, 1, s.DisconnectUser(bob.ID))
	// Sent while bob reconnects: arrives by push or by getDifference.
	_, err := s.As(alice.ID).SendText(ctx, UserPeer(bob.ID), "after disconnect")
	require.NoError(t, err)
	// Once bob is back, the next push reveals the pts gap if the first one
	// was sent while no session was live; getDifference fills it.
	require.Eventually(t, func() bool { return s.ConnectedSessions(bob.ID) == 1 }, 30*time.Second, 10*time.Millisecond)
	_, err = s.As(alice.ID).SendText(ctx, UserPeer(bob.ID), "second")
	require.NoError(t, err)
	got.wait(t, ctx, func(m *tgMessage) bool { return m.Message == "after disconnect" })
	got.wait(t, ctx, func(m *tgMessage) bool { return m.Message == "second" })
}
