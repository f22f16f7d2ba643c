package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// sharedSocketRetry is how often a runner that does not serve the shared
// control socket checks whether it may.
const sharedSocketRetry = 2 * time.Second

// serveSharedSocket serves the control socket once this process holds its
// lock file (SOCKET.lock, an exclusive flock the kernel drops when the
// holder dies), retrying until ctx ends. Runners under leases share one
// config, so on one machine they share the socket's path: the lock makes
// exactly one of them serve it at a time, and a survivor takes over when
// the server stops.
func (o *Ops) serveSharedSocket(ctx context.Context) {
	path := o.opts.Socket
	waiting := false
	for {
		lock, err := tryLockFile(path + ".lock")
		switch {
		case err == nil:
			ln, err := listenSocket(path)
			if err != nil {
				_ = lock.Close()
				o.log.Warn("Control socket not served", zap.Error(err))
				break
			}
			o.mu.Lock()
			if ctx.Err() != nil {
				o.mu.Unlock()
				_ = ln.Close()
				_ = lock.Close()
				return
			}
			o.socket, o.socketLock = ln, lock
			o.mu.Unlock()
			o.serve(ctx, ln, o.controlHandler())
			if waiting {
				o.log.Info("Took over the control socket from a runner that stopped", zap.String("socket", path))
			}
			return
		case errors.Is(err, errLocked):
			if !waiting {
				o.log.Info("Another runner on this machine serves the control socket; this one takes over if it stops",
					zap.String("socket", path))
				waiting = true
			}
		default:
			o.log.Warn("Control socket not served", zap.Error(err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(sharedSocketRetry):
		}
	}
}

var errLocked = errors.New("locked by another process")

// tryLockFile takes an exclusive flock on path without waiting.
func tryLockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("control socket lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("control socket lock %s: %w", path, err)
	}
	return f, nil
}
