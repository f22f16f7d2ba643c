package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/telegram/updates"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// stateAccount is an account whose lease this test holds.
func stateAccount(t *testing.T, rdb redis.UniversalClient) (string, *lease.Lease) {
	t.Helper()
	acct := newAccount()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "test"})
	require.NoError(t, err)
	le, err := l.Acquire(context.Background(), acct)
	require.NoError(t, err)
	t.Cleanup(func() { _ = le.Release(context.Background()) })
	return acct, le
}

func openState(t *testing.T, rdb redis.UniversalClient, acct string, fence redisstore.Fence, flush time.Duration) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(context.Background(), rdb, acct, fence, redisstore.Options{
		Journal: store.JournalOptions{CompactInterval: -1}, StateFlushInterval: flush,
	})
	require.NoError(t, err)
	return s
}

// ptsIn is the pts stored in Redis itself (-1: no state there).
func ptsIn(rdb *redis.Client, acct string, userID int64) (int, error) {
	v, err := rdb.HGet(context.Background(), lease.KeyPrefix("", acct)+"state:"+strconv.FormatInt(userID, 10), "pts").Int()
	if errors.Is(err, redis.Nil) {
		return -1, nil
	}
	return v, err
}

func redisPts(t *testing.T, rdb *redis.Client, acct string, userID int64) int {
	t.Helper()
	v, err := ptsIn(rdb, acct, userID)
	require.NoError(t, err)
	return v
}

// ptsIs is a condition for require.Eventually.
func ptsIs(rdb *redis.Client, acct string, userID int64, want int) func() bool {
	return func() bool {
		v, err := ptsIn(rdb, acct, userID)
		return err == nil && v == want
	}
}

// Updates-state writes ride along with the next journal append, in its
// script: in Redis the state never leads the journal, readers see the
// pending writes, and one update costs one round trip.
func TestStateWritesRideWithJournalAppend(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	acct, le := stateAccount(t, rdb)
	// No timed flush: only Append and Close write the state.
	s := openState(t, rdb, acct, le, time.Hour)
	st := s.UpdateState()

	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 1, Qts: 2, Date: 3, Seq: 4}))
	require.NoError(t, st.SetPts(ctx, 1, 5))
	require.NoError(t, st.SetChannelPts(ctx, 1, 100, 7))
	got, found, err := st.GetState(ctx, 1)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, updates.State{Pts: 5, Qts: 2, Date: 3, Seq: 4}, got, "readers see the pending state")
	pts, found, err := st.GetChannelPts(ctx, 1, 100)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, 7, pts)
	chans := map[int64]int{}
	require.NoError(t, st.ForEachChannels(ctx, 1, func(_ context.Context, id int64, pts int) error {
		chans[id] = pts
		return nil
	}))
	require.Equal(t, map[int64]int{100: 7}, chans)
	require.Equal(t, -1, redisPts(t, rdb, acct, 1), "not written yet")

	_, err = s.Journal().Append(ctx, entries("a"))
	require.NoError(t, err)
	require.Equal(t, 5, redisPts(t, rdb, acct, 1), "written in the append's script")

	// The store is abandoned without Close (a crash): what a fresh store
	// reads from Redis is what the last Append carried, nothing newer.
	require.NoError(t, st.SetPts(ctx, 1, 6))
	require.NoError(t, st.SetChannelPts(ctx, 1, 100, 8))
	fresh := openState(t, rdb, acct, nil, 0)
	defer fresh.Close()
	got, _, err = fresh.UpdateState().GetState(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, updates.State{Pts: 5, Qts: 2, Date: 3, Seq: 4}, got)
	pts, _, err = fresh.UpdateState().GetChannelPts(ctx, 1, 100)
	require.NoError(t, err)
	require.Equal(t, 7, pts)
	// The users set lists the account's user, so an export finds the state.
	users, err := rdb.SMembers(ctx, lease.KeyPrefix("", acct)+"users").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, users)

	// A state change with no append after it is written at Close.
	require.NoError(t, s.Close())
	got, _, err = fresh.UpdateState().GetState(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 6, got.Pts, "Close flushes what is pending")
	pts, _, err = fresh.UpdateState().GetChannelPts(ctx, 1, 100)
	require.NoError(t, err)
	require.Equal(t, 8, pts)
}

// A state change that no append follows (getDifference with nothing new, a
// channel's pts) reaches Redis within StateFlushInterval all the same.
func TestStateWithoutAppendIsFlushed(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	acct, le := stateAccount(t, rdb)
	s := openState(t, rdb, acct, le, 20*time.Millisecond)
	defer s.Close()
	st := s.UpdateState()
	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 9}))
	require.NoError(t, st.SetChannelPts(ctx, 1, 100, 3))
	require.Eventually(t, func() bool {
		n, err := rdb.HGet(ctx, lease.KeyPrefix("", acct)+"chanpts:1", "100").Int()
		return ptsIs(rdb, acct, 1, 9)() && err == nil && n == 3
	}, 5*time.Second, 5*time.Millisecond, "the timed flush did not write the state")
}

// One update (Append, then the manager's SetPts and SetDateSeq) is one
// script call on the server: the state writes go with the next Append.
func TestStateCostsNoRoundTripOfItsOwn(t *testing.T) {
	ctx := context.Background()
	srv, err := redistest.Start()
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err)
	}
	require.NoError(t, err)
	defer srv.Stop()
	rdb := srv.Client(0)
	defer rdb.Close()
	acct, le := stateAccount(t, rdb)
	s := openState(t, rdb, acct, le, time.Hour)
	defer s.Close()
	st := s.UpdateState()
	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 1, Date: 1, Seq: 1}))
	_, err = s.Journal().Append(ctx, entries("warm-up")) // loads the script
	require.NoError(t, err)

	require.NoError(t, rdb.ConfigResetStat(ctx).Err())
	const n = 20
	for i := range n {
		_, err := s.Journal().Append(ctx, entries(fmt.Sprint("u", i)))
		require.NoError(t, err)
		require.NoError(t, st.SetPts(ctx, 1, i+2))
		require.NoError(t, st.SetDateSeq(ctx, 1, i+2, i+2))
	}
	stats, err := rdb.Info(ctx, "commandstats").Result()
	require.NoError(t, err)
	calls := map[string]int{}
	for line := range strings.SplitSeq(stats, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				calls[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(v)
			}
		}
	}
	require.Equal(t, n, calls["evalsha"]+calls["eval"], "script calls for %d updates: %v", n, calls)
	for _, read := range []string{"hget", "hmget", "hgetall"} {
		require.Zero(t, calls[read], "the setters read Redis: %v", calls)
	}
	require.Equal(t, n, redisPts(t, rdb, acct, 1), "the last Append carried the state set before it")
}

// The state in Redis never leads the journal, with appends and state
// changes running concurrently (channels are handled in parallel); it
// never goes back, and the newest state wins in the end.
func TestStateNeverLeadsJournalConcurrently(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	acct, le := stateAccount(t, rdb)
	s := openState(t, rdb, acct, le, 2*time.Millisecond)
	st := s.UpdateState()
	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 0}))
	const (
		workers = 16
		rounds  = 150
	)
	key := func(ch int64, pts int) string { return fmt.Sprintf("c%d-%d", ch, pts) }
	prefix := lease.KeyPrefix("", acct)
	stop := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		// State first, then the journal: the journal only grows, so a
		// state that did not lead it when read does not lead it later.
		var bad error
		defer func() { checked <- bad }()
		seen := map[string]int{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			all, err := rdb.HGetAll(ctx, prefix+"chanpts:1").Result()
			if err != nil {
				bad = err
				return
			}
			for ch, v := range all {
				id, _ := strconv.ParseInt(ch, 10, 64)
				pts, _ := strconv.Atoi(v)
				// Writes of older snapshots must not land after newer ones.
				if pts < seen[ch] {
					bad = fmt.Errorf("channel %d: pts went back from %d to %d in Redis", id, seen[ch], pts)
					return
				}
				seen[ch] = pts
				ok, err := rdb.HExists(ctx, prefix+"j:dedup", key(id, pts)).Result()
				if err != nil {
					bad = err
					return
				}
				if !ok {
					bad = fmt.Errorf("channel %d: pts %d in Redis before its update was journaled", id, pts)
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		ch := int64(100 + w)
		wg.Go(func() {
			for pts := 1; pts <= rounds; pts++ {
				if _, err := s.Journal().Append(ctx, []store.Entry{{DedupKey: key(ch, pts), Data: []byte("x")}}); err != nil {
					t.Error(err)
					return
				}
				if err := st.SetChannelPts(ctx, 1, ch, pts); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-checked)
	require.NoError(t, s.Close())
	all, err := rdb.HGetAll(ctx, prefix+"chanpts:1").Result()
	require.NoError(t, err)
	want := map[string]string{}
	for w := range workers {
		want[strconv.Itoa(100+w)] = strconv.Itoa(rounds)
	}
	require.Equal(t, want, all)
}

// A runner that lost its lease writes no state: not with an Append, not
// with the timed flush, not at Close; and its setters then refuse.
func TestStateWritesFencedAfterTakeover(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	takeover := func(t *testing.T, acct string, le *lease.Lease) {
		t.Helper()
		require.NoError(t, rdb.Del(ctx, le.FenceKey()).Err())
		l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "new"})
		require.NoError(t, err)
		nl, err := l.Acquire(ctx, acct)
		require.NoError(t, err)
		t.Cleanup(func() { _ = nl.Release(context.Background()) })
	}
	refused := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, redisstore.ErrFenced)
		require.ErrorIs(t, err, store.ErrJournalFailed)
	}

	t.Run("carried by append", func(t *testing.T) {
		acct, le := stateAccount(t, rdb)
		s := openState(t, rdb, acct, le, time.Hour)
		defer s.Close()
		st := s.UpdateState()
		require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 1}))
		_, err := s.Journal().Append(ctx, entries("a"))
		require.NoError(t, err)
		require.NoError(t, st.SetPts(ctx, 1, 2))
		takeover(t, acct, le)
		before := dumpAccount(t, rdb, acct)

		_, err = s.Journal().Append(ctx, entries("b"))
		require.ErrorIs(t, err, redisstore.ErrFenced)
		refused(t, st.SetPts(ctx, 1, 3))
		refused(t, st.SetChannelPts(ctx, 1, 100, 3))
		require.ErrorIs(t, s.Close(), redisstore.ErrFenced, "Close cannot flush either")
		require.Equal(t, before, dumpAccount(t, rdb, acct), "a fenced writer changed nothing")
		require.Equal(t, 1, redisPts(t, rdb, acct, 1))
	})

	t.Run("timed flush", func(t *testing.T) {
		acct, le := stateAccount(t, rdb)
		s := openState(t, rdb, acct, le, 5*time.Millisecond)
		defer s.Close()
		st := s.UpdateState()
		require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 1}))
		require.Eventually(t, ptsIs(rdb, acct, 1, 1), 5*time.Second, 5*time.Millisecond)
		takeover(t, acct, le)
		before := dumpAccount(t, rdb, acct)

		// The setter cannot know yet; the flush finds out and fails the
		// journal, after which the setters refuse.
		require.NoError(t, st.SetChannelPts(ctx, 1, 100, 5))
		var err error
		require.Eventually(t, func() bool {
			err = st.SetPts(ctx, 1, 2)
			return err != nil
		}, 5*time.Second, 5*time.Millisecond)
		refused(t, err)
		require.Equal(t, before, dumpAccount(t, rdb, acct), "a fenced writer changed nothing")
	})

	t.Run("read-only store", func(t *testing.T) {
		acct, _ := stateAccount(t, rdb)
		ro := openState(t, rdb, acct, nil, 0)
		defer ro.Close()
		require.ErrorIs(t, ro.UpdateState().SetState(ctx, 1, updates.State{Pts: 1}), redisstore.ErrFenced)
		require.ErrorIs(t, ro.UpdateState().SetChannelPts(ctx, 1, 2, 3), redisstore.ErrFenced)
	})
}
