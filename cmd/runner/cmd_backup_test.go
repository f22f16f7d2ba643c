package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// Backup while messages stream in, restore after the runner stops, and
// start again from the restored storage: the session comes back without a
// login, and every message (those in the backup and those after it,
// fetched again from the server) is journaled exactly once.
func TestBackupAndRestoreUnderLoad(t *testing.T) {
	e := newOpsEnv(t, "")
	ctx := context.Background()
	l := e.start(t, true)
	// A consumer that never acks keeps every entry in the journal.
	_, err := l.store.Journal().Consumer(ctx, "check", store.ConsumerOptions{})
	require.NoError(t, err)

	// Load: alice writes without pause until told to stop; the backup is
	// taken in the middle of it.
	var (
		wg       sync.WaitGroup
		total    int
		stopLoad = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				total = i
				return
			default:
			}
			if _, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), fmt.Sprintf("msg %d", i)); err != nil {
				t.Errorf("send %d: %v", i, err)
				total = i
				return
			}
		}
	}()
	waitFor(t, "load under way", func() bool { return l.store.Journal().LastSeq() >= 100 })
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	out, stderr, err := e.cli(t, "backup", file)
	require.NoError(t, err)
	require.Contains(t, out, "from the running runner")
	require.Contains(t, stderr, "contains the account's session")
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, _, err = e.cli(t, "backup", file)
	require.ErrorContains(t, err, "exists; pass --force")

	inBackup := journalTexts(t, file)
	require.GreaterOrEqual(t, len(inBackup), 100, "the backup holds the messages journaled before it")

	// Restore refuses while the runner runs.
	_, _, err = e.cli(t, "restore", file)
	require.ErrorContains(t, err, "a runner is running")

	atBackup := l.store.Journal().LastSeq()
	waitFor(t, "more load after the backup", func() bool { return l.store.Journal().LastSeq() >= atBackup+100 })
	close(stopLoad)
	wg.Wait()
	require.Less(t, len(inBackup), total, "the backup was taken mid-stream")
	waitFor(t, "all messages journaled", func() bool { return l.store.Journal().LastSeq() >= uint64(total) })
	require.NoError(t, l.stop())

	// Garbage is refused and changes nothing.
	junk := filepath.Join(dir, "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte("not a database"), 0o600))
	_, _, err = e.cli(t, "restore", junk)
	require.ErrorContains(t, err, "is not a usable backup, nothing was changed")

	out, _, err = e.cli(t, "restore", file)
	require.NoError(t, err)
	require.Contains(t, out, "the previous database is kept as")
	db := filepath.Join(e.cfg.Storage.Dir, store.DBFileName)
	fi, err = os.Stat(db)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	kept, err := filepath.Glob(db + ".before-restore-*")
	require.NoError(t, err)
	require.Len(t, kept, 1)
	require.Len(t, journalTexts(t, kept[0]), total, "the replaced database is kept whole")

	// Written while the runner is down, after the restore.
	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), fmt.Sprintf("msg %d", total))
	require.NoError(t, err)

	// No login: the session must come from the backup.
	l = e.start(t, false)
	waitFor(t, "catch-up after the restore", func() bool {
		return len(journalTextsOf(t, l.store)) >= total+1
	})
	texts := journalTextsOf(t, l.store)
	seen := map[string]int{}
	for _, s := range texts {
		seen[s]++
	}
	for i := range total + 1 {
		require.Equal(t, 1, seen[fmt.Sprintf("msg %d", i)], "msg %d journaled once", i)
	}
	require.Len(t, texts, total+1)
	// And the restored session still acts: the plugin-less runner is up and
	// its status says logged in.
	require.True(t, e.mustStatus(t).Account.LoggedIn)
}

// journalTexts opens a database file (a copy, in a temporary directory)
// and returns the texts of the new messages in its journal.
func journalTexts(t *testing.T, file string) []string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, copyFile(file, filepath.Join(dir, store.DBFileName)))
	st, err := store.Open(context.Background(), dir, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	return journalTextsOf(t, st)
}

func journalTextsOf(t *testing.T, st *store.Store) []string {
	t.Helper()
	c, err := st.Journal().Consumer(context.Background(), "check", store.ConsumerOptions{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries, err := c.Read(ctx, 0, 100000)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		ev, err := runner.DecodeEntry(e)
		require.NoError(t, err)
		if m := ev.GetNewMessage(); m != nil {
			out = append(out, m.GetText())
		}
	}
	return out
}
