package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// A request relayed to another runner reaches its handler and the answer
// comes back; a runner that does not listen is known at once.
func TestRelayForwardsAndAnswers(t *testing.T) {
	rdb := redistest.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := "tgrtest" + account(t)
	asker := lease.NewRelay(rdb, prefix, "runner-a")
	holder := lease.NewRelay(rdb, prefix, "runner-b")
	got := make(chan lease.RelayRequest, 1)
	require.NoError(t, holder.Serve(ctx, func(_ context.Context, req lease.RelayRequest) lease.RelayResponse {
		got <- req
		return lease.RelayResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"ok":true}`)}
	}))

	resp, err := asker.Forward(ctx, "runner-b", lease.RelayRequest{Method: "POST", Path: "/v1/plugins/ping/restart?account=p2", Body: []byte("{}")}, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, lease.RelayResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"ok":true}`)}, resp)
	req := <-got
	require.Equal(t, "runner-a", req.From)
	require.Equal(t, "POST", req.Method)
	require.Equal(t, "/v1/plugins/ping/restart?account=p2", req.Path)
	require.Equal(t, []byte("{}"), req.Body)

	_, err = asker.Forward(ctx, "runner-gone", lease.RelayRequest{Method: "GET", Path: "/v1/plugins"}, 5*time.Second)
	require.ErrorIs(t, err, lease.ErrNotListening)

	// Once the holder stops serving it no longer listens.
	cancel()
	require.Eventually(t, func() bool {
		_, err := asker.Forward(context.Background(), "runner-b", lease.RelayRequest{Method: "GET", Path: "/v1/plugins"}, time.Second)
		return err != nil
	}, 5*time.Second, 50*time.Millisecond)
}
