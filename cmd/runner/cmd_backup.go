package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/store"
)

const sessionWarning = `WARNING: %s contains the account's session. Anyone who has this file can
act as the account. It is written 0600; keep it that way, and encrypt it
before it leaves this machine (for example: age -p %s > %s.age).
`

func newBackupCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy the storage (session, state, journal, audit) to FILE",
		Long: `backup writes a consistent copy of the storage database to FILE. While the
runner runs, the copy is streamed through its control socket from one
read transaction, so the runner goes on receiving and acting meanwhile;
otherwise the storage is read directly.

The copy is checked (opened as a store, with a full consistency check)
before it is given its final name. It contains the session: treat it like
a password.`,
		Example: `  runner backup /var/backups/tgrunner-$(date +%F).db
  runner backup ./before-upgrade.db --force`,
		Args: exactArgs(1, "the backup file to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return backup(cmd, args[0], force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite FILE if it exists")
	addSocketFlag(cmd)
	return cmd
}

func backup(cmd *cobra.Command, dest string, force bool) error {
	ctx := cmd.Context()
	if _, err := os.Stat(dest); err == nil && !force {
		return fmt.Errorf("%s exists; pass --force to overwrite it", dest)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	n, via, err := writeBackup(cmd, ctx, tmp)
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := checkStoreFile(ctx, tmp.Name()); err != nil {
		return fmt.Errorf("the backup does not check out, so %s was not written: %w", dest, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	syncDir(filepath.Dir(dest))
	fmt.Fprintf(cmd.OutOrStdout(), "backed up %d bytes to %s (%s)\n", n, dest, via)
	fmt.Fprintf(cmd.ErrOrStderr(), sessionWarning, dest, dest, dest)
	return nil
}

// writeBackup streams the backup from the running runner, or reads the
// storage directly when no runner runs.
func writeBackup(cmd *cobra.Command, ctx context.Context, w io.Writer) (int64, string, error) {
	if c, err := dialRunner(cmd); err == nil {
		defer c.Close()
		n, err := c.Backup(ctx, w)
		var notRunning *ops.NotRunningError
		if err == nil {
			return n, "from the running runner", nil
		}
		if !errors.As(err, &notRunning) {
			return n, "", fmt.Errorf("backup through the running runner: %w", err)
		}
	} else if cmd.Flags().Changed("socket") {
		return 0, "", err
	}
	cfg, err := loadConfig(cmd)
	if err != nil {
		return 0, "", err
	}
	dir, err := accountStorageDir(cmd, cfg)
	if err != nil {
		return 0, "", err
	}
	if _, err := os.Stat(filepath.Join(dir, store.DBFileName)); errors.Is(err, fs.ErrNotExist) {
		return 0, "", fmt.Errorf("no storage in %s (storage.dir): nothing to back up", dir)
	}
	st, err := store.Open(ctx, dir, store.Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		var locked *store.LockedError
		if errors.As(err, &locked) {
			return 0, "", fmt.Errorf("%w, and its control socket does not answer (is ops.socket off?): stop it to back up, or turn the socket on", err)
		}
		return 0, "", fmt.Errorf("open storage: %w", err)
	}
	defer st.Close()
	n, err := st.Backup(ctx, w)
	return n, "from " + dir + " directly; no runner was running", err
}

// checkStoreFile opens a copy of a database file as a store, with the full
// consistency check, in a private temporary directory.
func checkStoreFile(ctx context.Context, path string) error {
	dir, err := os.MkdirTemp("", "tgrunner-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyFile(path, filepath.Join(dir, store.DBFileName)); err != nil {
		return err
	}
	st, err := store.Open(ctx, dir, store.Options{CheckOnOpen: true})
	if err != nil {
		return err
	}
	return st.Close()
}

// copyFile copies src to a new 0600 file dst and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func newRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the storage with a backup (the runner must be stopped)",
		Long: `restore replaces the storage database with FILE, a file written by
runner backup. It refuses while a runner is running on this storage.

FILE is checked first (opened as a store with a full consistency check; a
backup from a newer runner is refused). The database it replaces is kept
next to it as tgrunner.db.before-restore-TIME, so a restore can be undone.
Updates received after the backup are fetched again from the server when
the runner starts (within the server's limits on how far back it keeps
them).`,
		Example: `  systemctl stop tgrunner
  runner restore /var/backups/tgrunner-2024-05-01.db --config /etc/tgrunner/tgrunner.yaml
  systemctl start tgrunner`,
		Args: exactArgs(1, "the backup file to restore"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return restore(cmd, args[0])
		},
	}
	addSocketFlag(cmd)
	return cmd
}

func restore(cmd *cobra.Command, src string) error {
	ctx := cmd.Context()
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	if c, err := dialRunner(cmd); err == nil {
		perr := c.Ping(ctx, 2*time.Second)
		c.Close()
		var notRunning *ops.NotRunningError
		if perr == nil || !errors.As(perr, &notRunning) {
			return errors.New("a runner is running on this storage: stop it first (systemctl stop tgrunner), then restore")
		}
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkStoreFile(ctx, src); err != nil {
		return fmt.Errorf("%s is not a usable backup, nothing was changed: %w", src, err)
	}
	dir, err := accountStorageDir(cmd, cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	unlock, err := lockStorage(dir)
	if err != nil {
		return err
	}
	defer unlock()

	db := filepath.Join(dir, store.DBFileName)
	tmp := db + ".restoring"
	_ = os.Remove(tmp)
	if err := copyFile(src, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	kept := ""
	if _, err := os.Stat(db); err == nil {
		kept = db + ".before-restore-" + time.Now().Format("20060102-150405")
		if err := os.Rename(db, kept); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("restore: keep the current database: %w", err)
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("restore: %w (the previous database is at %s)", err, kept)
	}
	syncDir(dir)
	fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s\n", src, db)
	if kept != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "the previous database is kept as %s (it holds a session too: delete it once you are happy)\n", kept)
	}
	return nil
}

// lockStorage takes the storage directory's lock the way store.Open does
// (an exclusive flock on tgrunner.lock holding our pid), so no runner can
// start while the database is swapped. It fails at once if one holds it.
func lockStorage(dir string) (func(), error) {
	path := filepath.Join(dir, store.LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock storage %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 32))
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("a runner holds the storage %s (pid %s): stop it first, then restore", dir, trimPID(pid))
		}
		return nil, fmt.Errorf("lock storage %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { _ = f.Close() }, nil
}

func trimPID(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "unknown"
	}
	return s
}
