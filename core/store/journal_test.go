package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func entries(keys ...string) []Entry {
	out := make([]Entry, len(keys))
	for i, k := range keys {
		out[i] = Entry{DedupKey: k, ChatKey: "chat:" + k[:1], Kind: "msg", Data: []byte("data-" + k)}
	}
	return out
}

func seqsOf(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func keysOf(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.DedupKey
	}
	return out
}

func TestAppendDedup(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	j := s.Journal()
	steps := []struct {
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
	}
	for _, st := range steps {
		es := make([]Entry, len(st.keys))
		for i, k := range st.keys {
			es[i] = Entry{DedupKey: k, Data: []byte(k)}
		}
		got, err := j.Append(ctx, es)
		require.NoError(t, err, st.name)
		require.Equal(t, st.wantKeys, append([]string{}, keysOf(got)...), st.name)
		require.Equal(t, st.wantSeqs, append([]uint64{}, seqsOf(got)...), st.name)
	}
	require.Equal(t, uint64(9), j.LastSeq())

	// Dedup survives a restart: this is how getDifference replays are dropped.
	require.NoError(t, s.Close())
	s = openTest(t, dir)
	got, err := s.Journal().Append(ctx, entries("a1", "c2", "d1"))
	require.NoError(t, err)
	require.Equal(t, []string{"d1"}, keysOf(got))
	require.Equal(t, []uint64{10}, seqsOf(got))

	c, err := s.Journal().Consumer(ctx, "all", ConsumerOptions{})
	require.NoError(t, err)
	all, err := c.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seqsOf(all))
	require.Equal(t, "data-d1", string(all[9].Data))
	require.Equal(t, "chat:d", all[9].ChatKey)
	require.Equal(t, "msg", all[9].Kind)
	require.False(t, all[9].Time.IsZero())
}

func TestAckOutOfOrderRedelivery(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	j := s.Journal()
	_, err := j.Append(ctx, entries("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0"))
	require.NoError(t, err)
	c, err := j.Consumer(ctx, "workers", ConsumerOptions{})
	require.NoError(t, err)

	require.NoError(t, c.Ack(ctx, 3, 1, 7))
	require.NoError(t, c.Ack(ctx, 2))
	require.NoError(t, c.Ack(ctx, 2, 1), "re-acking is harmless")
	pos, err := c.Position(ctx)
	require.NoError(t, err)
	require.Equal(t, ConsumerPosition{Low: 3, Above: []uint64{7}}, pos)
	lag, err := c.Lag(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(6), lag)

	require.ErrorContains(t, c.Ack(ctx, 11), "unknown seq 11")
	require.ErrorContains(t, c.Ack(ctx, 0), "seq 0")

	// After a restart exactly the unacknowledged entries come back.
	require.NoError(t, s.Close())
	s = openTest(t, dir)
	c, err = s.Journal().Consumer(ctx, "workers", ConsumerOptions{})
	require.NoError(t, err)
	got, err := c.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{4, 5, 6, 8, 9, 10}, seqsOf(got))
	got, err = c.Read(ctx, 5, 2)
	require.NoError(t, err)
	require.Equal(t, []uint64{6, 8}, seqsOf(got), "after and max are honoured")

	require.NoError(t, c.Ack(ctx, 4, 5, 6, 8, 9, 10))
	pos, err = c.Position(ctx)
	require.NoError(t, err)
	require.Equal(t, ConsumerPosition{Low: 10}, pos)
	got, err = c.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestConcurrentAcksGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	j := s.Journal()
	const n = 2000
	batch := make([]Entry, n)
	for i := range batch {
		batch[i] = Entry{DedupKey: fmt.Sprint("k", i)}
	}
	_, err := j.Append(ctx, batch)
	require.NoError(t, err)
	c, err := j.Consumer(ctx, "c", ConsumerOptions{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	const workers = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Worker w handles seqs congruent to w, newest first: maximally out of order.
			for seq := uint64(n - (n % workers) + w); seq >= 1; seq -= workers {
				if seq <= n {
					if err := c.Ack(ctx, seq); err != nil {
						t.Error(err)
						return
					}
				}
				if seq <= workers {
					break
				}
			}
		}(w)
	}
	wg.Wait()
	pos, err := c.Position(ctx)
	require.NoError(t, err)
	require.Equal(t, ConsumerPosition{Low: n}, pos)
}

func TestAckTx(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	j := s.Journal()
	_, err := j.Append(ctx, entries("a1", "a2"))
	require.NoError(t, err)
	c, err := j.Consumer(ctx, "effects", ConsumerOptions{})
	require.NoError(t, err)

	// A failing effect rolls the ack back too.
	err = c.AckTx(ctx, func(tx *Tx) error {
		if err := tx.KV("p").Set("seen:1", []byte("x")); err != nil {
			return err
		}
		return fmt.Errorf("handler failed")
	}, 1)
	require.ErrorContains(t, err, "handler failed")
	_, err = s.PluginKV("p").Get(ctx, "seen:1")
	require.ErrorIs(t, err, ErrNotFound)
	pos, err := c.Position(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(0), pos.Low)

	require.NoError(t, c.AckTx(ctx, func(tx *Tx) error {
		if err := tx.PutAction("reply-1", []byte("send hi")); err != nil {
			return err
		}
		return tx.KV("p").Set("seen:1", []byte("x"))
	}, 1))
	pos, err = c.Position(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), pos.Low)
	v, err := s.PluginKV("p").Get(ctx, "seen:1")
	require.NoError(t, err)
	require.Equal(t, "x", string(v))
	a, err := s.Outbox().Get(ctx, "reply-1")
	require.NoError(t, err)
	require.Equal(t, "send hi", string(a.Data))
}

func TestNextWakesOnAppend(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	j := s.Journal()
	_, err := j.Append(ctx, entries("a1"))
	require.NoError(t, err)
	c, err := j.Consumer(ctx, "c", ConsumerOptions{})
	require.NoError(t, err)
	require.NoError(t, c.Ack(ctx, 1))

	got := make(chan []Entry, 1)
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
}

func TestCompaction(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	opts := testOpts()
	opts.Now = clock.Now
	opts.Journal.EntryRetention = time.Hour
	s, err := Open(ctx, newDir(t), opts)
	require.NoError(t, err)
	defer s.Close()
	j := s.Journal()

	_, err = j.Append(ctx, entries("a1", "a2", "a3", "a4"))
	require.NoError(t, err)
	res, err := j.Compact(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Entries, "without consumers nothing is deleted")

	a, err := j.Consumer(ctx, "a", ConsumerOptions{})
	require.NoError(t, err)
	b, err := j.Consumer(ctx, "b", ConsumerOptions{})
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

	late, err := j.Consumer(ctx, "late", ConsumerOptions{})
	require.NoError(t, err)
	got, err := late.Read(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []uint64{3, 4}, seqsOf(got), "a new consumer starts at the oldest retained entry")
	tail, err := j.Consumer(ctx, "tail", ConsumerOptions{FromEnd: true})
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
}

func TestDedupIndexBounded(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	opts := testOpts()
	opts.Now = clock.Now
	opts.Journal.DedupMaxKeys = 5
	opts.Journal.DedupRetention = time.Hour
	s, err := Open(ctx, newDir(t), opts)
	require.NoError(t, err)
	defer s.Close()
	j := s.Journal()

	for i := 0; i < 10; i++ {
		_, err := j.Append(ctx, []Entry{{DedupKey: fmt.Sprint("k", i)}})
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
	require.Len(t, got, 1, "keys beyond the count limit are forgotten: the replay window must stay smaller")

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
}

func TestAckAfterClose(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	_, err := s.Journal().Append(ctx, entries("a1"))
	require.NoError(t, err)
	c, err := s.Journal().Consumer(ctx, "c", ConsumerOptions{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.ErrorIs(t, c.Ack(ctx, 1), ErrClosed)
	_, err = c.Next(ctx, 1, 1)
	require.ErrorIs(t, err, ErrClosed)
}
