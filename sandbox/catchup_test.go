package sandbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/tg"
)

// A client offline while 20,000 messages arrive gets all of them on
// reconnect through updates.Manager, in order, none lost or repeated.
func TestCatchUpAfterOffline(t *testing.T) {
	const total = 20000
	s := startServer(t, Options{DifferenceLimit: 1000})
	ctx := testCtx(t, 3*time.Minute)
	alice, err := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice"})
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob"})
	require.NoError(t, err)

	var (
		mu    sync.Mutex
		texts []string
		done  = make(chan struct{})
	)
	d := tg.NewUpdateDispatcher()
	d.OnNewMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewMessage) error {
		mu.Lock()
		defer mu.Unlock()
		texts = append(texts, u.Message.(*tg.Message).Message)
		if len(texts) == total {
			close(done)
		}
		return nil
	})
	mgr := updates.New(updates.Config{Handler: d})
	store := &session.StorageMemory{}

	first := connect(t, s, clientConfig{phone: bob.Phone, storage: store, manager: mgr})
	first.Close()
	require.Eventually(t, func() bool { return s.ConnectedSessions(bob.ID) == 0 }, 10*time.Second, 10*time.Millisecond)

	for i := 0; i < total; i++ {
		_, err := s.As(alice.ID).SendText(ctx, UserPeer(bob.ID), fmt.Sprintf("m%05d", i))
		require.NoError(t, err)
	}

	connect(t, s, clientConfig{phone: bob.Phone, storage: store, manager: mgr})
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("got %d of %d messages", len(texts), total)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, texts, total)
	for i, text := range texts {
		require.Equal(t, fmt.Sprintf("m%05d", i), text)
	}
}
