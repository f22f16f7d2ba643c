package runner

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gotdlog "github.com/gotd/log"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/store"
)

// stallingLog holds up gotd's manager right after it decided that it is
// not running yet and is about to pass a push straight to its handler,
// until the manager has started: the interleaving that once journaled a
// live push ahead of the startup difference.
type stallingLog struct {
	stalled chan<- struct{}
	started <-chan struct{}
}

func (stallingLog) Enabled(context.Context, gotdlog.Level) bool { return true }

func (l stallingLog) Log(_ context.Context, _ gotdlog.Level, msg string, _ ...gotdlog.Attr) {
	if strings.HasPrefix(msg, "Handle (no internalState)") {
		close(l.stalled)
		select {
		case <-l.started:
		case <-time.After(5 * time.Second):
		}
	}
}

// diffAPI serves one difference holding messages 1 and 2, once the live
// push of message 2 has been handled (or dropped).
type diffAPI struct {
	pushed <-chan struct{}
	diff   *tg.UpdatesDifference
}

func (a diffAPI) UpdatesGetState(context.Context) (*tg.UpdatesState, error) {
	return &tg.UpdatesState{}, nil
}

func (a diffAPI) UpdatesGetDifference(ctx context.Context, req *tg.UpdatesGetDifferenceRequest) (tg.UpdatesDifferenceClass, error) {
	<-a.pushed
	if req.Pts >= a.diff.State.Pts {
		return &tg.UpdatesDifferenceEmpty{Date: a.diff.State.Date}, nil
	}
	return a.diff, nil
}

func (a diffAPI) UpdatesGetChannelDifference(context.Context, *tg.UpdatesGetChannelDifferenceRequest) (tg.UpdatesChannelDifferenceClass, error) {
	return &tg.UpdatesChannelDifferenceEmpty{Final: true}, nil
}

func TestGateKeepsPushesBeforeStartOutOfTheJournal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "data"), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	backend := store.Bolt(st)
	const self, alice = 1, 2
	require.NoError(t, backend.UpdateState().SetState(ctx, self, updates.State{}))

	now := int(time.Now().Unix())
	msg := func(id int) *tg.Message {
		return &tg.Message{ID: id, PeerID: &tg.PeerUser{UserID: alice}, FromID: &tg.PeerUser{UserID: alice}, Date: now, Message: "m"}
	}
	users := []tg.UserClass{&tg.User{ID: alice, AccessHash: 7, FirstName: "Alice"}}
	stalled, started, pushed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	api := diffAPI{pushed: pushed, diff: &tg.UpdatesDifference{
		NewMessages: []tg.MessageClass{msg(1), msg(2)},
		Users:       users,
		State:       tg.UpdatesState{Pts: 2, Date: now},
	}}

	in := NewIntake("test", backend.Journal(), peers.New(backend.Peers()), zap.NewNop(), nil)
	in.SetSelf(self)
	mgr := updates.New(updates.Config{
		Handler:          in,
		Storage:          backend.UpdateState(),
		AccessHasher:     backend.AccessHashes(),
		UserAccessHasher: backend.AccessHashes(),
		Logger:           stallingLog{stalled: stalled, started: started},
	})
	client := in.Gate(mgr)

	// The live push of message 2 arrives while the manager is starting.
	go func() {
		defer close(pushed)
		_ = client.Handle(ctx, &tg.Updates{
			Updates: []tg.UpdateClass{&tg.UpdateNewMessage{Message: msg(2), Pts: 2, PtsCount: 1}},
			Users:   users,
			Date:    now,
		})
	}()
	// Start the manager once the push is dropped or stalled inside it.
	select {
	case <-pushed:
	case <-stalled:
	}
	runDone := make(chan error, 1)
	go func() {
		runDone <- mgr.Run(ctx, api, self, updates.AuthOptions{OnStart: func(context.Context) {
			in.SetManaged(true)
			close(started)
		}})
	}()

	c, err := backend.Journal().Consumer(ctx, "order", store.ConsumerOptions{})
	require.NoError(t, err)
	var ids []int64
	require.Eventually(t, func() bool {
		entries, err := c.Read(ctx, 0, 10)
		require.NoError(t, err)
		ids = ids[:0]
		for _, e := range entries {
			ev, err := DecodeEntry(e)
			require.NoError(t, err)
			ids = append(ids, ev.GetNewMessage().GetId())
		}
		return len(ids) >= 2
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []int64{1, 2}, ids, "journal follows pts order")
	cancel()
	<-runDone
}
