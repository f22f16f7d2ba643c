package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPluginKV(t *testing.T) {
	ctx := context.Background()
	opts := testOpts()
	opts.KV = KVLimits{MaxKeyBytes: 8, MaxValueBytes: 16, MaxPluginBytes: 30}
	s, err := Open(ctx, newDir(t), opts)
	require.NoError(t, err)
	defer s.Close()
	a, b := s.PluginKV("a"), s.PluginKV("b")

	require.NoError(t, a.Set(ctx, "x:1", []byte("one")))
	require.NoError(t, a.Set(ctx, "x:2", []byte("two")))
	require.NoError(t, a.Set(ctx, "y:1", []byte("why")))
	require.NoError(t, b.Set(ctx, "x:1", []byte("other")))

	v, err := a.Get(ctx, "x:1")
	require.NoError(t, err)
	require.Equal(t, "one", string(v))
	_, err = a.Get(ctx, "nope")
	require.ErrorIs(t, err, ErrNotFound)
	list, err := a.List(ctx, "x:", 0)
	require.NoError(t, err)
	require.Equal(t, []KVPair{{"x:1", []byte("one")}, {"x:2", []byte("two")}}, list)
	list, err = a.List(ctx, "", 1)
	require.NoError(t, err)
	require.Len(t, list, 1)
	usage, err := a.Usage(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3*3+3*3), usage)

	limits := []struct {
		name  string
		key   string
		value []byte
		limit string
	}{
		{"long key", "123456789", nil, "key size"},
		{"big value", "k", make([]byte, 17), "value size"},
		{"plugin total", "big", make([]byte, 16), "plugin total"},
	}
	for _, l := range limits {
		err := a.Set(ctx, l.key, l.value)
		var lerr *LimitError
		require.ErrorAs(t, err, &lerr, l.name)
		require.Equal(t, l.limit, lerr.Limit, l.name)
		require.Equal(t, "a", lerr.Plugin)
	}
	// Overwriting counts the difference; deleting frees space.
	require.NoError(t, a.Set(ctx, "x:1", []byte("1")))
	require.NoError(t, a.Delete(ctx, "y:1"))
	require.NoError(t, a.Delete(ctx, "y:1"))
	usage, err = a.Usage(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3+1+3+3), usage)
	require.NoError(t, a.Set(ctx, "big", make([]byte, 16)))
	v, err = b.Get(ctx, "x:1")
	require.NoError(t, err)
	require.Equal(t, "other", string(v), "plugins are isolated")
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		require.NoError(t, s.Audit().Append(ctx, base.Add(time.Duration(i)*time.Minute), []byte(fmt.Sprint("e", i))))
	}
	// Same timestamp twice keeps both, in append order.
	require.NoError(t, s.Audit().Append(ctx, base.Add(3*time.Minute), []byte("e3b")))

	got, err := s.Audit().Range(ctx, base.Add(2*time.Minute), base.Add(5*time.Minute), 0)
	require.NoError(t, err)
	var names []string
	for _, r := range got {
		names = append(names, string(r.Data))
	}
	require.Equal(t, []string{"e2", "e3", "e3b", "e4"}, names)
	require.True(t, got[0].Time.Equal(base.Add(2*time.Minute)))
	got, err = s.Audit().Range(ctx, base, base.Add(time.Hour), 3)
	require.NoError(t, err)
	require.Len(t, got, 3)

	n, err := s.Audit().Prune(ctx, base.Add(5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 6, n)
	got, err = s.Audit().Range(ctx, time.Time{}, base.Add(time.Hour), 0)
	require.NoError(t, err)
	require.Len(t, got, 5)
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	opts := testOpts()
	opts.Now = clock.Now
	dir := newDir(t)
	s, err := Open(ctx, dir, opts)
	require.NoError(t, err)
	for _, id := range []string{"c", "a", "b"} {
		require.NoError(t, s.Outbox().Put(ctx, id, []byte("send "+id)))
		clock.Advance(time.Second)
	}
	require.NoError(t, s.Outbox().Put(ctx, "c", []byte("send c v2")), "replacing keeps the queue position")
	require.Error(t, s.Outbox().Put(ctx, "", nil))
	require.NoError(t, s.Close())

	s, err = Open(ctx, dir, opts)
	require.NoError(t, err)
	defer s.Close()
	list, err := s.Outbox().List(ctx)
	require.NoError(t, err)
	var got []string
	for _, a := range list {
		got = append(got, a.ID+"="+string(a.Data))
	}
	require.Equal(t, "c=send c v2,a=send a,b=send b", strings.Join(got, ","))
	require.NoError(t, s.Outbox().Delete(ctx, "a"))
	_, err = s.Outbox().Get(ctx, "a")
	require.ErrorIs(t, err, ErrNotFound)
	list, err = s.Outbox().List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
}
