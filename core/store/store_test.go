package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram/updates"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func testOpts() Options {
	return Options{LockTimeout: 200 * time.Millisecond, Journal: JournalOptions{CompactInterval: -1}}
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, testOpts())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "storage")
	s := openTest(t, dir)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	for _, name := range []string{DBFileName, LockFileName} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
	require.NoError(t, s.Close())
	// Reopening after a clean close works.
	openTest(t, dir)
}

func TestOpenRefusesLoosePermissions(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the offending path
		wantFix string
	}{
		{"group readable dir", func(t *testing.T, dir string) string {
			require.NoError(t, os.Chmod(dir, 0o750))
			return dir
		}, "chmod 0700 "},
		{"world readable dir", func(t *testing.T, dir string) string {
			require.NoError(t, os.Chmod(dir, 0o755))
			return dir
		}, "chmod 0700 "},
		{"group readable db", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, DBFileName)
			require.NoError(t, os.Chmod(p, 0o640))
			return p
		}, "chmod 0600 "},
		{"world writable lock file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, LockFileName)
			require.NoError(t, os.Chmod(p, 0o606))
			return p
		}, "chmod 0600 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "st")
			s := openTest(t, dir)
			require.NoError(t, s.Close())
			path := tt.setup(t, dir)
			_, err := Open(context.Background(), dir, testOpts())
			var perr *PermissionError
			require.ErrorAs(t, err, &perr)
			require.Equal(t, path, perr.Path)
			require.Contains(t, err.Error(), tt.wantFix+path)
		})
	}
}

func TestOpenLockContention(t *testing.T) {
	dir := newDir(t)
	openTest(t, dir)
	start := time.Now()
	_, err := Open(context.Background(), dir, testOpts())
	var lerr *LockedError
	require.ErrorAs(t, err, &lerr)
	require.Equal(t, os.Getpid(), lerr.PID)
	require.Contains(t, err.Error(), "storage "+dir+" is in use by another runner (pid ")
	require.Less(t, time.Since(start), 10*time.Second, "second Open must not hang")
}

func TestOpenLockReleasedOnClose(t *testing.T) {
	dir := newDir(t)
	s := openTest(t, dir)
	done := make(chan error, 1)
	go func() {
		s2, err := Open(context.Background(), dir, Options{LockTimeout: 10 * time.Second})
		if err == nil {
			err = s2.Close()
		}
		done <- err
	}()
	require.NoError(t, s.Close())
	require.NoError(t, <-done)
}

func TestSchemaVersions(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	v1 := schemaMigrations
	next := len(v1) + 1
	var applied []string
	v2 := append(append([]migration(nil), v1...), migration{Version: next, Name: "test step", Apply: func(tx *bolt.Tx) error {
		applied = append(applied, "v2")
		_, err := tx.CreateBucket([]byte("v2_bucket"))
		return err
	}})

	s, err := openWith(ctx, dir, testOpts(), v1)
	require.NoError(t, err)
	require.NoError(t, s.Session().StoreSession(ctx, []byte("kept")))
	require.NoError(t, s.Close())

	// A newer runner migrates, keeping the data.
	s, err = openWith(ctx, dir, testOpts(), v2)
	require.NoError(t, err)
	require.Equal(t, []string{"v2"}, applied)
	got, err := s.Session().LoadSession(ctx)
	require.NoError(t, err)
	require.Equal(t, "kept", string(got))
	require.NoError(t, s.Close())

	// Migrations run once.
	s, err = openWith(ctx, dir, testOpts(), v2)
	require.NoError(t, err)
	require.Len(t, applied, 1)
	require.NoError(t, s.Close())

	// An older runner refuses the newer schema.
	_, err = openWith(ctx, dir, testOpts(), v1)
	var serr *SchemaError
	require.ErrorAs(t, err, &serr)
	require.Equal(t, next, serr.Found)
	require.Equal(t, next-1, serr.Supported)
	require.Contains(t, err.Error(), fmt.Sprintf("schema version %d", next))
}

func TestFailedMigrationKeepsOldVersion(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s, err := openWith(ctx, dir, testOpts(), schemaMigrations)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	next := len(schemaMigrations) + 1
	broken := append(append([]migration(nil), schemaMigrations...), migration{Version: next, Name: "broken", Apply: func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("half")); err != nil {
			return err
		}
		return errors.New("disk says no")
	}})
	_, err = openWith(ctx, dir, testOpts(), broken)
	require.ErrorContains(t, err, fmt.Sprintf("schema %d (broken)", next))
	s, err = openWith(ctx, dir, testOpts(), schemaMigrations)
	require.NoError(t, err, "old runner still opens: the failed step rolled back")
	require.NoError(t, s.Close())
}

func TestOpenDetectsCorruption(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage file", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("junk"), 4096), 0o600))
		}},
		{"both meta pages overwritten", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			page := os.Getpagesize()
			for _, off := range []int64{0, int64(page)} {
				_, err = f.WriteAt(bytes.Repeat([]byte{0xAB}, 128), off+16)
				require.NoError(t, err)
			}
		}},
		{"foreign bbolt file", func(t *testing.T, path string) {
			require.NoError(t, os.Remove(path))
			db, err := bolt.Open(path, 0o600, nil)
			require.NoError(t, err)
			require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }))
			require.NoError(t, db.Close())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newDir(t)
			s := openTest(t, dir)
			require.NoError(t, s.Session().StoreSession(context.Background(), []byte("x")))
			require.NoError(t, s.Close())
			path := filepath.Join(dir, DBFileName)
			tt.damage(t, path)
			before, err := os.ReadFile(path)
			require.NoError(t, err)
			_, err = Open(context.Background(), dir, Options{CheckOnOpen: true, LockTimeout: time.Second})
			var cerr *CorruptError
			require.ErrorAs(t, err, &cerr, "got %v", err)
			require.Contains(t, err.Error(), "will not reset")
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			require.True(t, bytes.Equal(before, after), "corrupt file must be left untouched")
		})
	}
}

// damageRecord flips the last byte of a stored value behind the store's back.
func damageRecord(t *testing.T, dir string, bucket, key []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, DBFileName), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		v := bytes.Clone(tx.Bucket(bucket).Get(key))
		require.NotEmpty(t, v)
		v[0] ^= 0xFF
		return tx.Bucket(bucket).Put(key, v)
	}))
	require.NoError(t, db.Close())
}

func TestSession(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	ss := s.Session()

	_, err := ss.LoadSession(ctx)
	require.ErrorIs(t, err, session.ErrNotFound)

	for _, data := range [][]byte{[]byte(`{"Version":1}`), bytes.Repeat([]byte{7}, 70000), {}} {
		require.NoError(t, ss.StoreSession(ctx, data))
		got, err := ss.LoadSession(ctx)
		require.NoError(t, err)
		require.Equal(t, data, got)
	}
	require.NoError(t, ss.StoreSession(ctx, []byte("survives restart")))
	require.NoError(t, s.Close())

	s = openTest(t, dir)
	got, err := s.Session().LoadSession(ctx)
	require.NoError(t, err)
	require.Equal(t, "survives restart", string(got))

	require.NoError(t, s.Session().DeleteSession(ctx))
	require.NoError(t, s.Session().DeleteSession(ctx))
	_, err = s.Session().LoadSession(ctx)
	require.ErrorIs(t, err, session.ErrNotFound)

	// gotd's loader round-trip through our storage.
	loader := session.Loader{Storage: s.Session()}
	require.NoError(t, loader.Save(ctx, &session.Data{DC: 2, Addr: "127.0.0.1:443", AuthKey: []byte("k"), AuthKeyID: []byte("id")}))
	data, err := loader.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, data.DC)
}

func TestSessionChecksum(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	require.NoError(t, s.Session().StoreSession(ctx, []byte("secret session")))
	require.NoError(t, s.Close())
	damageRecord(t, dir, bucketSession, keySession)
	s = openTest(t, dir)
	_, err := s.Session().LoadSession(ctx)
	var cerr *CorruptError
	require.ErrorAs(t, err, &cerr)
	require.False(t, errors.Is(err, session.ErrNotFound), "a damaged session must not look like a missing one")
}

func TestStateStorage(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	st := s.UpdateState()
	const self = 777

	_, found, err := st.GetState(ctx, self)
	require.NoError(t, err)
	require.False(t, found)
	require.Error(t, st.SetPts(ctx, self, 1), "setters need an existing state")

	require.NoError(t, st.SetState(ctx, self, updates.State{Pts: 10, Qts: 20, Date: 30, Seq: 40}))
	steps := []struct {
		name string
		set  func() error
		want updates.State
	}{
		{"pts", func() error { return st.SetPts(ctx, self, 11) }, updates.State{Pts: 11, Qts: 20, Date: 30, Seq: 40}},
		{"qts", func() error { return st.SetQts(ctx, self, 21) }, updates.State{Pts: 11, Qts: 21, Date: 30, Seq: 40}},
		{"date", func() error { return st.SetDate(ctx, self, 31) }, updates.State{Pts: 11, Qts: 21, Date: 31, Seq: 40}},
		{"seq", func() error { return st.SetSeq(ctx, self, 41) }, updates.State{Pts: 11, Qts: 21, Date: 31, Seq: 41}},
		{"date+seq", func() error { return st.SetDateSeq(ctx, self, 32, 42) }, updates.State{Pts: 11, Qts: 21, Date: 32, Seq: 42}},
	}
	for _, step := range steps {
		require.NoError(t, step.set(), step.name)
		got, found, err := st.GetState(ctx, self)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, step.want, got, step.name)
	}
	// Another account's state is separate.
	_, found, err = st.GetState(ctx, self+1)
	require.NoError(t, err)
	require.False(t, found)

	require.NoError(t, st.SetChannelPts(ctx, self, 100, 5))
	require.NoError(t, st.SetChannelPts(ctx, self, 200, 6))
	require.NoError(t, st.SetChannelPts(ctx, self+1, 300, 7))
	pts, found, err := st.GetChannelPts(ctx, self, 200)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, 6, pts)

	// ForEachChannels may call back into the store (contrib's would deadlock).
	seen := map[int64]int{}
	require.NoError(t, st.ForEachChannels(ctx, self, func(ctx context.Context, id int64, pts int) error {
		seen[id] = pts
		return st.SetChannelPts(ctx, self, id, pts+1)
	}))
	require.Equal(t, map[int64]int{100: 5, 200: 6}, seen)

	require.NoError(t, s.Close())
	s = openTest(t, dir)
	got, _, err := s.UpdateState().GetState(ctx, self)
	require.NoError(t, err)
	require.Equal(t, updates.State{Pts: 11, Qts: 21, Date: 32, Seq: 42}, got)
	pts, _, err = s.UpdateState().GetChannelPts(ctx, self, 100)
	require.NoError(t, err)
	require.Equal(t, 6, pts)
}

func TestStateFrozenAfterJournalFailure(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	st := s.UpdateState()
	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 10}))
	require.NoError(t, st.SetChannelPts(ctx, 1, 5, 50))

	// A failed append (cancelled context here) marks the journal failed.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Journal().Append(cctx, []Entry{{DedupKey: "a"}})
	require.Error(t, err)
	require.ErrorIs(t, s.Journal().Failed(), ErrJournalFailed)

	setters := map[string]func() error{
		"SetState":      func() error { return st.SetState(ctx, 1, updates.State{Pts: 99}) },
		"SetPts":        func() error { return st.SetPts(ctx, 1, 11) },
		"SetQts":        func() error { return st.SetQts(ctx, 1, 11) },
		"SetSeq":        func() error { return st.SetSeq(ctx, 1, 11) },
		"SetDate":       func() error { return st.SetDate(ctx, 1, 11) },
		"SetDateSeq":    func() error { return st.SetDateSeq(ctx, 1, 11, 11) },
		"SetChannelPts": func() error { return st.SetChannelPts(ctx, 1, 5, 51) },
		"Append":        func() error { _, err := s.Journal().Append(ctx, []Entry{{DedupKey: "b"}}); return err },
	}
	for name, set := range setters {
		err := set()
		require.ErrorIs(t, err, ErrJournalFailed, name)
		require.ErrorIs(t, err, context.Canceled, name+" keeps the cause")
	}
	got, _, err := st.GetState(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 10, got.Pts)
	pts, _, err := st.GetChannelPts(ctx, 1, 5)
	require.NoError(t, err)
	require.Equal(t, 50, pts)

	// Reopening clears the failure: the runner restarts and catches up.
	require.NoError(t, s.Close())
	s = openTest(t, dir)
	require.NoError(t, s.Journal().Failed())
	require.NoError(t, s.UpdateState().SetPts(ctx, 1, 11))
}

func TestStateChecksum(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	require.NoError(t, s.UpdateState().SetState(ctx, 5, updates.State{Pts: 1}))
	require.NoError(t, s.Close())
	damageRecord(t, dir, bucketState, i64key(5))
	s = openTest(t, dir)
	_, _, err := s.UpdateState().GetState(ctx, 5)
	var cerr *CorruptError
	require.ErrorAs(t, err, &cerr)
	require.Contains(t, cerr.Where, "updates_state/5")
}

func TestAccessHashes(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	ah := s.AccessHashes()
	require.NoError(t, ah.SetChannelAccessHash(ctx, 1, 100, -123456789))
	require.NoError(t, ah.SetUserAccessHash(ctx, 1, 100, 42))
	require.NoError(t, s.Close())

	s = openTest(t, dir)
	ah = s.AccessHashes()
	tests := []struct {
		name      string
		get       func() (int64, bool, error)
		wantHash  int64
		wantFound bool
	}{
		{"channel", func() (int64, bool, error) { return ah.GetChannelAccessHash(ctx, 1, 100) }, -123456789, true},
		{"user same id is separate", func() (int64, bool, error) { return ah.GetUserAccessHash(ctx, 1, 100) }, 42, true},
		{"other account", func() (int64, bool, error) { return ah.GetChannelAccessHash(ctx, 2, 100) }, 0, false},
		{"unknown channel", func() (int64, bool, error) { return ah.GetChannelAccessHash(ctx, 1, 101) }, 0, false},
	}
	for _, tt := range tests {
		h, found, err := tt.get()
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.wantFound, found, tt.name)
		require.Equal(t, tt.wantHash, h, tt.name)
	}
}

func TestBackupWhileRunning(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	require.NoError(t, s.Session().StoreSession(ctx, []byte("sess")))
	for i := 0; i < 100; i++ {
		_, err := s.Journal().Append(ctx, []Entry{{DedupKey: "k" + strings.Repeat("x", i), Data: []byte("d")}})
		require.NoError(t, err)
	}
	// Keep writing while the backup runs.
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		i := 0
		for {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			i++
			if _, err := s.Journal().Append(ctx, []Entry{{Data: []byte("more")}}); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	var buf bytes.Buffer
	_, err := s.Backup(ctx, &buf)
	close(stop)
	require.NoError(t, <-writerDone)
	require.NoError(t, err)

	restored := newDir(t)
	require.NoError(t, os.MkdirAll(restored, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(restored, DBFileName), buf.Bytes(), 0o600))
	r, err := Open(ctx, restored, Options{CheckOnOpen: true, Journal: JournalOptions{CompactInterval: -1}})
	require.NoError(t, err)
	defer r.Close()
	got, err := r.Session().LoadSession(ctx)
	require.NoError(t, err)
	require.Equal(t, "sess", string(got))
	require.GreaterOrEqual(t, r.Journal().LastSeq(), uint64(100))
	depth, err := r.Journal().Depth(ctx)
	require.NoError(t, err)
	require.Equal(t, r.Journal().LastSeq(), depth, "backup is a consistent snapshot")
}

// newDir is a storage path that does not exist yet (t.TempDir itself is 0755).
func newDir(t testing.TB) string { return filepath.Join(t.TempDir(), "storage") }

// Updates-state writes ride along with the next journal append: on disk the
// state never leads the journal, and it costs no fsync of its own.
func TestStateWritesRideWithJournalAppend(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newDir(t))
	st := s.UpdateState()
	onDisk := func() int {
		var pts int
		require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketState).Get(i64key(1))
			if v == nil {
				pts = -1
				return nil
			}
			got, err := decodeState(v)
			pts = got.Pts
			return err
		}))
		return pts
	}
	require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 1}))
	require.NoError(t, st.SetPts(ctx, 1, 5))
	got, _, err := st.GetState(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 5, got.Pts, "readers see the pending state")
	require.Equal(t, -1, onDisk(), "not written yet")

	_, err = s.Journal().Append(ctx, []Entry{{DedupKey: "a", Data: []byte("x")}})
	require.NoError(t, err)
	require.Equal(t, 5, onDisk(), "written in the append's transaction")

	require.NoError(t, st.SetPts(ctx, 1, 6))
	require.NoError(t, s.Close())
	s = openTest(t, s.Dir())
	got, _, err = s.UpdateState().GetState(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 6, got.Pts, "Close flushes what is pending")
}
