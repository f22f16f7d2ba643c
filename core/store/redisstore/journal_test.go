package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/store"
)

func entries(keys ...string) []store.Entry {
	out := make([]store.Entry, len(keys))
	for i, k := range keys {
		out[i] = store.Entry{DedupKey: k, ChatKey: "chat:" + k[:1], Kind: "msg", Data: []byte("data-" + k)}
	}
	return out
}

func seqsOf(es []store.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func keysOf(es []store.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.DedupKey
	}
	return out
}

func TestAppendDedup(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		for _, st := range []struct {
			name     string
			keys     []string
			wantKeys []string
			wantSeqs []uint64
		}{
			{"first batch", []string{"a1", "a2", "b1"}, []string{"a1", "a2", "b1"}, []uint64{1, 2, 3}},
			{"full replay", []string{"a1", "a2", "b1"}, []string{}, []uint64{}},
			{"replay overlapping new", []string{"b1", "b2", "a3"}, []string{"b2", "a3"}, []uint64{4, 5}},
			{"duplicate inside one batch", []string{"c1", "c1", "c2"}, []string{"c1", "c2"}, []uint64{6, 7}},
			{"empty key is never deduplicated", []string{"", ""}, []string{"", ""}, []uint64{8, 9}},
		} {
			es := make([]store.Entry, len(st.keys))
			for i, k := range st.keys {
				es[i] = store.Entry{DedupKey: k, Data: []byte(k)}
			}
			got, err := j.Append(ctx, es)
			require.NoError(t, err, st.name)
			require.Equal(t, st.wantKeys, append([]string{}, keysOf(got)...), st.name)
			require.Equal(t, st.wantSeqs, append([]uint64{}, seqsOf(got)...), st.name)
		}
		require.Equal(t, uint64(9), j.LastSeq())

		j = e.reopen(t).Journal()
		require.Equal(t, uint64(9), j.LastSeq(), "last seq survives a restart")
		got, err := j.Append(ctx, entries("a1", "c2", "d1"))
		require.NoError(t, err)
		require.Equal(t, []string{"d1"}, keysOf(got))
		require.Equal(t, []uint64{10}, seqsOf(got))

		c, err := j.Consumer(ctx, "all", store.ConsumerOptions{})
		require.NoError(t, err)
		all, err := c.Read(ctx, 0, 100)
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seqsOf(all))
		require.Equal(t, "data-d1", string(all[9].Data))
		require.Equal(t, "chat:d", all[9].ChatKey)
		require.Equal(t, "msg", all[9].Kind)
		require.False(t, all[9].Time.IsZero())
		depth, err := j.Depth(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(10), depth)
		n, err := j.DedupKeys(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(8), n)
	})
}

func TestAckOutOfOrderRedelivery(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		_, err := j.Append(ctx, entries("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0"))
		require.NoError(t, err)
		c, err := j.Consumer(ctx, "workers", store.ConsumerOptions{})
		require.NoError(t, err)
		got, err := c.Read(ctx, 0, 4)
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2, 3, 4}, seqsOf(got))

		require.NoError(t, c.Ack(ctx, 3, 1, 7), "acks in any order, also of entries not read yet")
		require.NoError(t, c.Ack(ctx, 2))
		require.NoError(t, c.Ack(ctx, 2, 1), "re-acking is harmless")
		pos, err := c.Position(ctx)
		require.NoError(t, err)
		require.Equal(t, store.ConsumerPosition{Low: 3, Above: []uint64{7}}, pos)
		lag, err := c.Lag(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(6), lag)
		require.ErrorContains(t, c.Ack(ctx, 11), "unknown seq 11")
		require.ErrorContains(t, c.Ack(ctx, 0), "seq 0")

		// After a restart exactly the unacknowledged entries come back.
		j = e.reopen(t).Journal()
		c, err = j.Consumer(ctx, "workers", store.ConsumerOptions{})
		require.NoError(t, err)
		got, err = c.Read(ctx, 0, 100)
		require.NoError(t, err)
		require.Equal(t, []uint64{4, 5, 6, 8, 9, 10}, seqsOf(got))
		got, err = c.Read(ctx, 5, 2)
		require.NoError(t, err)
		require.Equal(t, []uint64{6, 8}, seqsOf(got), "after and max are honoured")
		got, err = c.Read(ctx, 0, 100)
		require.NoError(t, err)
		require.Equal(t, []uint64{4, 5, 6, 8, 9, 10}, seqsOf(got), "reading is repeatable")

		require.NoError(t, c.Ack(ctx, 4, 5, 6, 8, 9, 10))
		pos, err = c.Position(ctx)
		require.NoError(t, err)
		require.Equal(t, store.ConsumerPosition{Low: 10}, pos)
		got, err = c.Read(ctx, 0, 100)
		require.NoError(t, err)
		require.Empty(t, got)
		lag, err = c.Lag(ctx)
		require.NoError(t, err)
		require.Zero(t, lag)
	})
}

func TestConcurrentAcks(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		var es []store.Entry
		for i := 0; i < 500; i++ {
			es = append(es, store.Entry{DedupKey: fmt.Sprint("k", i)})
		}
		_, err := j.Append(ctx, es)
		require.NoError(t, err)
		c, err := j.Consumer(ctx, "c", store.ConsumerOptions{})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := uint64(w + 1); s <= 500; s += 16 {
					if err := c.Ack(ctx, s); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		pos, err := c.Position(ctx)
		require.NoError(t, err)
		require.Equal(t, store.ConsumerPosition{Low: 500}, pos)
	})
}

func TestAckWith(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		_, err := j.Append(ctx, entries("a1", "a2"))
		require.NoError(t, err)
		c, err := j.Consumer(ctx, "effects", store.ConsumerOptions{})
		require.NoError(t, err)
		_, err = c.Read(ctx, 0, 10)
		require.NoError(t, err)

		err = c.AckWith(ctx, func(tx store.Txn) error {
			if err := tx.KV("p").Set("seen:1", []byte("x")); err != nil {
				return err
			}
			return fmt.Errorf("handler failed")
		}, 1)
		require.ErrorContains(t, err, "handler failed")
		_, err = e.b.PluginKV("p").Get(ctx, "seen:1")
		require.ErrorIs(t, err, store.ErrNotFound, "a failing effect rolls the ack back too")
		pos, err := c.Position(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(0), pos.Low)

		require.NoError(t, c.AckWith(ctx, func(tx store.Txn) error {
			if err := tx.PutAction("reply-1", []byte("send hi")); err != nil {
				return err
			}
			return tx.KV("p").Set("seen:1", []byte("x"))
		}, 1))
		pos, err = c.Position(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(1), pos.Low)
		v, err := e.b.PluginKV("p").Get(ctx, "seen:1")
		require.NoError(t, err)
		require.Equal(t, "x", string(v))
		a, err := e.b.Outbox().Get(ctx, "reply-1")
		require.NoError(t, err)
		require.Equal(t, "send hi", string(a.Data))

		// An ack that cannot commit (unknown seq) writes no effect either.
		err = c.AckWith(ctx, func(tx store.Txn) error { return tx.KV("p").Set("seen:99", []byte("x")) }, 99)
		require.ErrorContains(t, err, "unknown seq 99")
		_, err = e.b.PluginKV("p").Get(ctx, "seen:99")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestNextWakesOnAppend(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		_, err := j.Append(ctx, entries("a1"))
		require.NoError(t, err)
		c, err := j.Consumer(ctx, "c", store.ConsumerOptions{})
		require.NoError(t, err)
		require.NoError(t, c.Ack(ctx, 1))
		got := make(chan []store.Entry, 1)
		go func() {
			es, err := c.Next(ctx, 0, 10)
			if err != nil {
				t.Error(err)
			}
			got <- es
		}()
		select {
		case es := <-got:
			t.Fatalf("Next returned %v before any unacked entry existed", seqsOf(es))
		default:
		}
		_, err = j.Append(ctx, entries("a2"))
		require.NoError(t, err)
		select {
		case es := <-got:
			require.Equal(t, []uint64{2}, seqsOf(es))
		case <-time.After(10 * time.Second):
			t.Fatal("Next was not woken by Append")
		}
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { _, err := c.Next(cctx, 2, 10); errc <- err }()
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
	})
}

func TestCompaction(t *testing.T) {
	clock := newFakeClock()
	both(t, func() backendOpts {
		return backendOpts{Now: clock.Now, Journal: store.JournalOptions{EntryRetention: time.Hour}}
	}, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		_, err := j.Append(ctx, entries("a1", "a2", "a3", "a4"))
		require.NoError(t, err)
		res, err := j.Compact(ctx)
		require.NoError(t, err)
		require.Zero(t, res.Entries, "without consumers nothing is deleted")

		a, err := j.Consumer(ctx, "a", store.ConsumerOptions{})
		require.NoError(t, err)
		b, err := j.Consumer(ctx, "b", store.ConsumerOptions{})
		require.NoError(t, err)
		require.NoError(t, a.Ack(ctx, 1, 2, 3))
		require.NoError(t, b.Ack(ctx, 1, 2, 4))
		clock.Advance(30 * time.Minute)
		res, err = j.Compact(ctx)
		require.NoError(t, err)
		require.Zero(t, res.Entries, "retention not over yet")
		clock.Advance(31 * time.Minute)
		res, err = j.Compact(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, res.Entries, "only seqs acked by every consumer")
		depth, err := j.Depth(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(2), depth)

		late, err := j.Consumer(ctx, "late", store.ConsumerOptions{})
		require.NoError(t, err)
		got, err := late.Read(ctx, 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{3, 4}, seqsOf(got), "a new consumer starts at the oldest retained entry")
		tail, err := j.Consumer(ctx, "tail", store.ConsumerOptions{FromEnd: true})
		require.NoError(t, err)
		got, err = tail.Read(ctx, 0, 10)
		require.NoError(t, err)
		require.Empty(t, got)

		names, err := j.Consumers(ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"a", "b", "late", "tail"}, names)
		for _, n := range []string{"late", "b"} {
			require.NoError(t, j.Unregister(ctx, n))
		}
		require.ErrorContains(t, b.Ack(ctx, 3), "not registered")
		res, err = j.Compact(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, res.Entries, "unregistered consumers no longer hold entries back")
		got, err = a.Read(ctx, 0, 10)
		require.NoError(t, err)
		require.Equal(t, []uint64{4}, seqsOf(got))
	})
}

func TestDedupIndexBounded(t *testing.T) {
	clock := newFakeClock()
	both(t, func() backendOpts {
		return backendOpts{Now: clock.Now, Journal: store.JournalOptions{DedupMaxKeys: 5, DedupRetention: time.Hour}}
	}, func(t *testing.T, e *env) {
		ctx := context.Background()
		j := e.b.Journal()
		for i := 0; i < 10; i++ {
			_, err := j.Append(ctx, []store.Entry{{DedupKey: fmt.Sprint("k", i)}})
			require.NoError(t, err)
		}
		n, err := j.DedupKeys(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(5), n)
		got, err := j.Append(ctx, entries("k9", "k5"))
		require.NoError(t, err)
		require.Empty(t, got, "recent keys are still recognised")
		got, err = j.Append(ctx, entries("k4"))
		require.NoError(t, err)
		require.Len(t, got, 1, "keys beyond the count limit are forgotten")

		clock.Advance(2 * time.Hour)
		_, err = j.Append(ctx, entries("n1"))
		require.NoError(t, err)
		res, err := j.Compact(ctx)
		require.NoError(t, err)
		require.Equal(t, 4, res.DedupKeys, "keys older than the retention are pruned")
		n, err = j.DedupKeys(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(1), n)
		got, err = j.Append(ctx, entries("n1"))
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func TestAckAfterClose(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, err := e.b.Journal().Append(ctx, entries("a1"))
		require.NoError(t, err)
		c, err := e.b.Journal().Consumer(ctx, "c", store.ConsumerOptions{})
		require.NoError(t, err)
		require.NoError(t, e.b.Close())
		require.ErrorIs(t, c.Ack(ctx, 1), store.ErrClosed)
		_, err = c.Next(ctx, 1, 1)
		require.ErrorIs(t, err, store.ErrClosed)
	})
}
