// Package store owns everything durable for one account: a single bbolt
// database in the storage directory holding the MTProto session, the updates
// state (pts/qts/seq, channel pts, access hashes), the peer store, the updates
// journal with its consumers, per-plugin key-value data, the audit log and the
// queue of outgoing actions.
//
// The directory must be 0700 and the files in it 0600; Open refuses looser
// permissions. One process at a time: a lock file in the directory makes a
// second runner fail fast with the pid of the first.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// File names inside the storage directory.
const (
	DBFileName   = "tgrunner.db"
	LockFileName = "tgrunner.lock"
)

// Options tunes Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for another runner to release the storage
	// directory. Default 2s.
	LockTimeout time.Duration
	// CheckOnOpen runs bbolt's full consistency check (tx.Check) on open.
	// It reads every page, so it costs time proportional to the database size.
	CheckOnOpen bool
	// Journal tunes the updates journal.
	Journal JournalOptions
	// KV sets the limits of the plugin key-value storage.
	KV KVLimits
	// Now is the clock; time.Now when nil. Tests inject a fake clock.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Journal.setDefaults()
	o.KV.setDefaults()
}

// Store is the open storage of one account. All methods are safe for
// concurrent use.
type Store struct {
	dir  string
	db   *bolt.DB
	lock *os.File
	opts Options

	journal *Journal
	// state holds updates-state writes not yet on disk; see StateStorage.
	state     stateOverlay
	stopFlush chan struct{}
	flushDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// PermissionError reports a storage path that other users could read.
type PermissionError struct {
	Path string
	Mode fs.FileMode // the permission bits found
	Want fs.FileMode // the permission bits required
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("storage path %s has mode %04o, which lets other users access the session; fix it with: chmod %04o %s",
		e.Path, e.Mode.Perm(), e.Want.Perm(), e.Path)
}

// LockedError reports that another process holds the storage directory.
type LockedError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *LockedError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("storage %s is in use by another runner (%s)", e.Dir, pid)
}

// SchemaError reports a database written by a newer runner.
type SchemaError struct {
	Path      string
	Found     int
	Supported int
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("storage %s has schema version %d, but this runner supports at most %d: upgrade tgrunner (or restore a backup made by this version)",
		e.Path, e.Found, e.Supported)
}

// CorruptError reports a damaged database or record. The store never resets
// damaged data on its own: restore a backup or move the file away.
type CorruptError struct {
	Path  string
	Where string // bucket/key or "open", "consistency check"
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("storage %s is corrupt (%s): %v; restore a backup or move the file away, the runner will not reset it", e.Path, e.Where, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Open opens (creating if needed) the storage in dir.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	return openWith(ctx, dir, opts, schemaMigrations)
}

func openWith(ctx context.Context, dir string, opts Options, migrations []migration) (_ *Store, err error) {
	opts.setDefaults()
	if dir == "" {
		return nil, errors.New("open storage: directory is empty")
	}
	dir = filepath.Clean(dir)
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	lock, err := acquireLock(ctx, dir, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = lock.Close()
		}
	}()

	path := filepath.Join(dir, DBFileName)
	if err := checkFileMode(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return nil, &LockedError{Dir: dir, PID: readLockPID(dir)}
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
			errors.Is(err, bolterrors.ErrVersionMismatch), strings.Contains(err.Error(), "invalid"):
			return nil, &CorruptError{Path: path, Where: "open", Err: err}
		}
		return nil, fmt.Errorf("open storage %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = db.Close()
		}
	}()
	if opts.CheckOnOpen {
		if err := checkConsistency(db, path); err != nil {
			return nil, err
		}
	}
	if err := migrate(ctx, db, path, migrations); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, db: db, lock: lock, opts: opts, stopFlush: make(chan struct{}), flushDone: make(chan struct{})}
	s.journal, err = newJournal(s)
	if err != nil {
		return nil, err
	}
	go s.flushStateLoop()
	return s, nil
}

// Dir is the storage directory.
func (s *Store) Dir() string { return s.dir }

// Close stops the journal's background work, closes the database and
// releases the directory lock.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopFlush)
		<-s.flushDone
		if err := s.flushState(); err != nil {
			s.closeErr = err
		}
		s.journal.close()
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		// The lock file stays: removing it would let a waiter lock an orphaned inode.
		if err := s.lock.Close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// Backup writes a consistent copy of the database to w while the store stays
// in use. The copy contains the session: treat it like a password.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup storage %s: %w", s.dir, err)
	}
	return n, nil
}

// Check runs bbolt's consistency check over the whole database.
func (s *Store) Check(ctx context.Context) error {
	return checkConsistency(s.db, filepath.Join(s.dir, DBFileName))
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func checkConsistency(db *bolt.DB, path string) (err error) {
	defer func() {
		// A damaged page can make bbolt panic while walking it.
		if r := recover(); r != nil {
			err = &CorruptError{Path: path, Where: "consistency check", Err: fmt.Errorf("%v", r)}
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return &CorruptError{Path: path, Where: "consistency check", Err: errors.Join(errs...)}
		}
		return nil
	})
}

func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create storage directory %s: %w", dir, err)
		}
		// MkdirAll honours the umask, which can only remove bits; force 0700 anyway.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("create storage directory %s: %w", dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: dir, Mode: fi.Mode().Perm(), Want: 0o700}
	}
	return nil
}

func checkFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("storage file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: path, Mode: fi.Mode().Perm(), Want: 0o600}
	}
	return nil
}

// acquireLock takes an exclusive flock on the lock file and writes our pid
// into it, so a second runner can say who holds the directory.
func acquireLock(ctx context.Context, dir string, timeout time.Duration) (*os.File, error) {
	path := filepath.Join(dir, LockFileName)
	if err := checkFileMode(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open storage lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock storage %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, &LockedError{Dir: dir, PID: readLockPID(dir)}
		}
		// flock has no timed wait; retry at a short interval until the deadline.
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("lock storage %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func readLockPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, LockFileName))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

func (s *Store) dbPath() string { return filepath.Join(s.dir, DBFileName) }
