package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

func runStorage(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newStorageCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestStorageMigrateRoundTrip(t *testing.T) {
	srv, err := redistest.Start("--requirepass", "pw")
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err)
	}
	require.NoError(t, err)
	defer srv.Stop()
	ctx := context.Background()
	url := "redis://:pw@" + srv.Addr() + "/2"

	src := filepath.Join(t.TempDir(), "src")
	st, err := store.Open(ctx, src, store.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Session().StoreSession(ctx, []byte("session")))
	_, err = st.Journal().Append(ctx, []store.Entry{{DedupKey: "a"}, {DedupKey: "b"}})
	require.NoError(t, err)
	c, err := st.Journal().Consumer(ctx, "plugin:echo", store.ConsumerOptions{})
	require.NoError(t, err)
	require.NoError(t, c.Ack(ctx, 1))
	require.NoError(t, st.Close())

	_, err = runStorage(t, "migrate", "--from", src, "--to", url)
	require.ErrorContains(t, err, "--account is required")

	out, err := runStorage(t, "migrate", "--from", src, "--to", url, "--account", "main")
	require.NoError(t, err)
	require.Contains(t, out, "2 journal entries (last seq 2)")
	require.NotContains(t, out, ":pw@", "the password is not printed")

	_, err = runStorage(t, "migrate", "--from", src, "--to", url, "--account", "main")
	require.ErrorContains(t, err, "already holds data")

	// A running runner holds the lease: migrate refuses to touch it.
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Sock, Password: "pw", DB: 2})
	defer rdb.Close()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "runner-1"})
	require.NoError(t, err)
	le, err := l.Acquire(ctx, "main")
	require.NoError(t, err)
	back := filepath.Join(t.TempDir(), "back")
	_, err = runStorage(t, "migrate", "--from", url, "--to", back, "--account", "main")
	require.ErrorContains(t, err, "held by a running runner (runner-1)")
	require.NoError(t, le.Release(ctx))

	out, err = runStorage(t, "migrate", "--from", url, "--to", back, "--account", "main")
	require.NoError(t, err, out)
	st, err = store.Open(ctx, back, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	sess, err := st.Session().LoadSession(ctx)
	require.NoError(t, err)
	require.Equal(t, "session", string(sess))
	c, err = st.Journal().Consumer(ctx, "plugin:echo", store.ConsumerOptions{})
	require.NoError(t, err)
	got, err := c.Read(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint64(2), got[0].Seq)

	_, err = runStorage(t, "migrate", "--from", filepath.Join(t.TempDir(), "missing"), "--to", url, "--account", "x")
	require.ErrorContains(t, err, "--from")
}
