package redisstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gotd/td/telegram/updates"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// recorder is an Importer that keeps everything as sorted lines, so two
// backends' exports compare as text.
type recorder struct{ lines []string }

func (r *recorder) add(format string, args ...any) error {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	return nil
}
func (r *recorder) Empty(context.Context) (bool, error) { return true, nil }
func (r *recorder) ImportSession(_ context.Context, d []byte) error {
	return r.add("session %q", d)
}
func (r *recorder) ImportState(_ context.Context, u int64, st updates.State) error {
	return r.add("state %d %+v", u, st)
}
func (r *recorder) ImportChannelPts(_ context.Context, u, c int64, pts int) error {
	return r.add("chanpts %d %d %d", u, c, pts)
}
func (r *recorder) ImportAccessHash(_ context.Context, k store.PeerKind, u, t, h int64) error {
	return r.add("hash %v %d %d %d", k, u, t, h)
}
func (r *recorder) ImportPeer(_ context.Context, p store.Peer) error {
	at := p.UpdatedAt.UnixNano()
	p.UpdatedAt = time.Time{}
	return r.add("peer %+v %d", p, at)
}
func (r *recorder) ImportKV(_ context.Context, p, k string, v []byte) error {
	return r.add("kv %s %s %q", p, k, v)
}
func (r *recorder) ImportAudit(_ context.Context, a store.AuditRecord) error {
	return r.add("audit %d %q", a.Time.UnixNano(), a.Data)
}
func (r *recorder) ImportAction(_ context.Context, a store.QueuedAction) error {
	return r.add("action %s %d %q", a.ID, a.Created.UnixNano(), a.Data)
}
func (r *recorder) ImportJournalLastSeq(_ context.Context, l uint64) error {
	return r.add("last %d", l)
}
func (r *recorder) ImportJournalEntries(_ context.Context, es []store.Entry) error {
	for _, e := range es {
		_ = r.add("entry %d %s %s %s %q %d", e.Seq, e.DedupKey, e.ChatKey, e.Kind, e.Data, e.Time.UnixNano())
	}
	return nil
}
func (r *recorder) ImportDedup(_ context.Context, ks []store.DedupRecord) error {
	for _, k := range ks {
		// Redis keeps the dedup time in milliseconds.
		_ = r.add("dedup %s %d %d", k.Key, k.Seq, k.At.UnixMilli())
	}
	return nil
}
func (r *recorder) ImportConsumer(_ context.Context, n string, p store.ConsumerPosition) error {
	return r.add("consumer %s %d %v", n, p.Low, p.Above)
}

func record(t *testing.T, from store.Exporter) string {
	t.Helper()
	r := &recorder{}
	require.NoError(t, from.Export(context.Background(), r))
	slices.Sort(r.lines)
	return strings.Join(r.lines, "\n")
}

func fill(t *testing.T, b store.Backend, clock *fakeClock) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.Session().StoreSession(ctx, []byte("auth\x00key")))
	st := b.UpdateState()
	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 10, Qts: 2, Date: 3, Seq: 4}))
	require.NoError(t, st.SetState(ctx, 2, updates.State{Pts: 20}))
	require.NoError(t, st.SetChannelPts(ctx, 1, 500, 42))
	require.NoError(t, b.AccessHashes().SetChannelAccessHash(ctx, 1, 500, -77))
	require.NoError(t, b.AccessHashes().SetUserAccessHash(ctx, 1, 9, 88))
	require.NoError(t, b.Peers().Put(ctx,
		store.Peer{Ref: store.PeerRef{Kind: store.PeerUser, ID: 9}, AccessHash: 88, Username: "Bob", Phone: "+1 555", WroteFirst: true},
		store.Peer{Ref: store.PeerRef{Kind: store.PeerChannel, ID: 500}, AccessHash: -77, Title: "News", Broadcast: true}))
	clock.Advance(time.Second)
	require.NoError(t, b.PluginKV("echo").Set(ctx, "a", []byte("1")))
	require.NoError(t, b.PluginKV("echo").Set(ctx, "b", []byte("")))
	require.NoError(t, b.PluginKV("guard").Set(ctx, "day", []byte("3")))
	require.NoError(t, b.Audit().Append(ctx, time.Unix(100, 5), []byte("first")))
	require.NoError(t, b.Audit().Append(ctx, time.Unix(100, 5), []byte("same time")))
	require.NoError(t, b.Outbox().Put(ctx, "send-1", []byte("hi")))
	clock.Advance(time.Second)
	require.NoError(t, b.Outbox().Put(ctx, "send-0", []byte("later")))
	j := b.Journal()
	for i := 0; i < 12; i++ {
		clock.Advance(time.Millisecond)
		_, err := j.Append(ctx, []store.Entry{{DedupKey: fmt.Sprint("k", i), ChatKey: fmt.Sprint("c", i%3), Kind: "msg", Data: []byte{byte(i)}}})
		require.NoError(t, err)
	}
	_, err := j.Append(ctx, []store.Entry{{Kind: "nodedup"}})
	require.NoError(t, err)
	a, err := j.Consumer(ctx, "plugin:a", store.ConsumerOptions{})
	require.NoError(t, err)
	c, err := j.Consumer(ctx, "plugin:b", store.ConsumerOptions{})
	require.NoError(t, err)
	_, err = c.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.NoError(t, a.Ack(ctx, 1, 2, 3, 4, 6, 9))
	require.NoError(t, c.Ack(ctx, 1, 2, 3, 4, 5, 6, 7, 13))
	_, err = j.Compact(ctx) // drops 1..4
	require.NoError(t, err)
}

func TestMigrateBoltToRedisAndBack(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	clock := newFakeClock()
	opts := store.Options{Now: clock.Now, Journal: store.JournalOptions{CompactInterval: -1}}
	src, err := store.Open(ctx, filepath.Join(t.TempDir(), "src"), opts)
	require.NoError(t, err)
	defer src.Close()
	fill(t, store.Bolt(src), clock)
	want := record(t, src)
	require.Contains(t, want, "consumer plugin:a 4 [6 9]")
	require.Contains(t, want, "consumer plugin:b 7 [13]")

	acct := newAccount()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "migrate"})
	require.NoError(t, err)
	le, err := l.Acquire(ctx, acct)
	require.NoError(t, err)
	defer le.Release(ctx)
	dst, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{Now: clock.Now, Journal: store.JournalOptions{CompactInterval: -1}})
	require.NoError(t, err)
	defer dst.Close()
	stats, err := redisstore.Migrate(ctx, src, dst)
	require.NoError(t, err)
	require.Equal(t, 9, stats.JournalEntries)
	require.Equal(t, uint64(13), stats.LastSeq)
	require.Equal(t, 2, stats.Consumers)
	require.Equal(t, want, record(t, dst), "Redis holds exactly what bbolt held")

	// The migrated journal behaves: consumers resume where they were, dedup
	// drops replays, seqs continue.
	a, err := dst.Journal().Consumer(ctx, "plugin:a", store.ConsumerOptions{})
	require.NoError(t, err)
	got, err := a.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{5, 7, 8, 10, 11, 12, 13}, seqsOf(got))
	added, err := dst.Journal().Append(ctx, []store.Entry{{DedupKey: "k11"}, {DedupKey: "new"}})
	require.NoError(t, err)
	require.Equal(t, []uint64{14}, seqsOf(added))
	b, err := dst.Journal().Consumer(ctx, "plugin:b", store.ConsumerOptions{})
	require.NoError(t, err)
	got, err = b.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{8, 9, 10, 11, 12, 14}, seqsOf(got))

	// Refuses to merge into existing data.
	_, err = redisstore.Migrate(ctx, src, dst)
	require.ErrorIs(t, err, redisstore.ErrNotEmpty)

	// And back to a fresh bbolt store.
	back, err := store.Open(ctx, filepath.Join(t.TempDir(), "back"), opts)
	require.NoError(t, err)
	defer back.Close()
	_, err = redisstore.Migrate(ctx, dst, back)
	require.NoError(t, err)
	require.Equal(t, record(t, dst), record(t, back))
	ba, err := back.Journal().Consumer(ctx, "plugin:a", store.ConsumerOptions{})
	require.NoError(t, err)
	got, err = ba.Read(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{5, 7, 8, 10, 11, 12, 13, 14}, seqsOf(got))
	added, err = back.Journal().Append(ctx, []store.Entry{{DedupKey: "new"}, {DedupKey: "newer"}})
	require.NoError(t, err)
	require.Equal(t, []uint64{15}, seqsOf(added))
	_, err = redisstore.Migrate(ctx, dst, back)
	require.ErrorIs(t, err, redisstore.ErrNotEmpty)
}
