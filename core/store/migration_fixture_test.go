package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// A storage directory written by schema 1 (testdata/v1, made by the runner
// of that schema) is migrated on open, and everything in it survives.
func TestMigrateFromSchemaOneFixture(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o700))
	b, err := os.ReadFile(filepath.Join("testdata", "v1", DBFileName))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, DBFileName), b, 0o600))

	s, err := Open(ctx, dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	var version int
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		version = int(beU64(tx.Bucket(bucketMeta).Get(keySchemaVersion)))
		return nil
	}))
	require.Equal(t, SchemaVersion, version)

	sess, err := s.Session().LoadSession(ctx)
	require.NoError(t, err)
	require.Contains(t, string(sess), `"DC":2`)
	st, found, err := s.UpdateState().GetState(ctx, 7)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, 42, st.Pts)
	pts, found, err := s.UpdateState().GetChannelPts(ctx, 7, 900)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, 17, pts)
	alice, err := s.Peers().ByUsername(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, int64(80), alice.AccessHash)
	require.True(t, alice.WroteFirst)
	news, err := s.Peers().Get(ctx, PeerRef{Kind: PeerChannel, ID: 900})
	require.NoError(t, err)
	require.Equal(t, "News", news.Title)
	v, err := s.PluginKV("ping").Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	c, err := s.Journal().Consumer(ctx, "plugin:ping", ConsumerOptions{})
	require.NoError(t, err)
	entries, err := c.Read(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "one", string(entries[0].Data))

	// The migrated peer records carry a checksum: damage is detected.
	require.NoError(t, s.Close())
	damageRecord(t, dir, bucketPeers, PeerRef{Kind: PeerUser, ID: 8}.key())
	s, err = Open(ctx, dir, Options{})
	require.NoError(t, err)
	_, err = s.Peers().Get(ctx, PeerRef{Kind: PeerUser, ID: 8})
	require.ErrorIs(t, err, errChecksum)
}
