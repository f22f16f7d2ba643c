package runner_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Messages that arrive while the runner is down, and while it catches up,
// reach the journal in the order they were sent.
func TestCatchUpKeepsOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := store.Open(ctx, e.dir, store.Options{})
	require.NoError(t, err)
	_, err = runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owner.Phone, "")})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	const offline, live = 2500, 500
	for i := range offline {
		_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), fmt.Sprintf("m %d", i))
		require.NoError(t, err)
	}
	sessions := make(chan *runner.Session, 1)
	go func() {
		for i := offline; i < offline+live; i++ {
			if _, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), fmt.Sprintf("m %d", i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	e.run(t, runner.Options{Services: []runner.Service{runner.ServiceFunc(func(ctx context.Context, s *runner.Session) error {
		sessions <- s
		<-ctx.Done()
		return nil
	})}})
	sess := <-sessions
	c, err := sess.Store.Journal().Consumer(ctx, "order", store.ConsumerOptions{})
	require.NoError(t, err)
	evs := readEvents(t, c, func(evs []*pb.Event) bool { return len(evs) >= offline+live })
	for i, ev := range evs {
		require.Equal(t, fmt.Sprintf("m %d", i), ev.GetNewMessage().GetText(), "journal position %d", i)
	}
}
