package ops

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/pluginhost"
)

// ErrReloadUnsupported answers a reload request when the runner has no
// Reloader.
var ErrReloadUnsupported = errors.New("reload is not supported by this runner yet; restart it to apply a new config")

// Trailers of a backup response: the stream cannot change its status once
// it has begun, so the outcome comes after the body.
const (
	trailerBackupError = "Tgrunner-Backup-Error"
	trailerBackupBytes = "Tgrunner-Backup-Bytes"
)

// PauseRequest is the body of POST /v1/pause.
type PauseRequest struct {
	Reason string `json:"reason"`
}

// Result is the body of a successful control request that changes
// something.
type Result struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// controlHandler serves the control socket. Its clients are the owner's
// own `runner` commands (the socket is 0600 in the 0700 storage directory).
func (o *Ops) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, o.Status(r.Context()))
	})
	mux.HandleFunc("POST /v1/pause", func(w http.ResponseWriter, r *http.Request) {
		g := o.guard()
		if g == nil {
			writeError(w, http.StatusServiceUnavailable, "the guard is not running yet (the runner is still connecting)")
			return
		}
		var req PauseRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "pause request: %v", err)
			return
		}
		if req.Reason == "" {
			req.Reason = "paused by the owner (runner pause)"
		}
		g.Pause(req.Reason)
		o.log.Info("Paused through the control socket", zap.String("reason", req.Reason))
		writeJSON(w, http.StatusOK, Result{OK: true, Message: "paused: no write action leaves until `runner resume`"})
	})
	mux.HandleFunc("POST /v1/resume", func(w http.ResponseWriter, r *http.Request) {
		g := o.guard()
		if g == nil {
			writeError(w, http.StatusServiceUnavailable, "the guard is not running yet (the runner is still connecting)")
			return
		}
		g.Resume()
		o.log.Info("Resumed through the control socket")
		msg := "resumed"
		if snap := g.Snapshot(r.Context()); snap.Paused {
			msg = "resumed, but writes are still held: " + snap.PauseReason
		}
		writeJSON(w, http.StatusOK, Result{OK: true, Message: msg})
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if o.opts.Reloader == nil {
			writeError(w, http.StatusNotImplemented, "%v", ErrReloadUnsupported)
			return
		}
		if err := o.opts.Reloader.Reload(r.Context()); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "reload refused, the old config keeps running: %v", err)
			return
		}
		writeJSON(w, http.StatusOK, Result{OK: true, Message: "reloaded"})
	})
	mux.HandleFunc("GET /v1/plugins", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, o.Status(r.Context()).Plugins)
	})
	mux.HandleFunc("GET /v1/plugins/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for _, p := range o.Status(r.Context()).Plugins {
			if p.Name == name {
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
		writeError(w, http.StatusNotFound, "no plugin named %q in the running config", name)
	})
	mux.HandleFunc("POST /v1/plugins/{name}/{verb}", o.handlePluginControl)
	mux.HandleFunc("GET /v1/audit", o.handleAudit)
	mux.HandleFunc("GET /v1/backup", o.handleBackup)
	return mux
}

func (o *Ops) handlePluginControl(w http.ResponseWriter, r *http.Request) {
	h := o.host()
	if h == nil {
		writeError(w, http.StatusServiceUnavailable, "the plugins are not running yet (the runner is still connecting)")
		return
	}
	name, verb := r.PathValue("name"), r.PathValue("verb")
	var do func(string) error
	var done string
	switch verb {
	case "restart":
		do, done = h.Restart, "restarting"
	case "disable":
		do, done = h.Disable, "disabled until `runner plugins enable` or a restart of the runner"
	case "enable":
		do, done = h.Enable, "enabled"
	default:
		writeError(w, http.StatusNotFound, "unknown plugin command %q: want restart, disable or enable", verb)
		return
	}
	if err := do(name); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, pluginhost.ErrNoSuchPlugin) {
			code = http.StatusNotFound
		}
		writeError(w, code, "%s %s: %v", verb, name, err)
		return
	}
	o.log.Info("Plugin control through the control socket", zap.String("plugin", name), zap.String("command", verb))
	if g := o.guard(); g != nil {
		g.Record(guard.AuditRecord{Source: guard.SourceOwner, Kind: "plugin_" + verb, Outcome: guard.OutcomeOK, Reason: name})
	}
	writeJSON(w, http.StatusOK, Result{OK: true, Message: name + ": " + done})
}

// AuditQuery encodes an audit filter as the query of GET /v1/audit.
func AuditQuery(f guard.AuditFilter) string {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("source", f.Source)
	set("plugin", f.Plugin)
	set("chat", f.Chat)
	set("outcome", f.Outcome)
	if !f.Since.IsZero() {
		set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		set("until", f.Until.Format(time.RFC3339Nano))
	}
	set("limit", strconv.Itoa(f.Limit))
	return q.Encode()
}

func (o *Ops) handleAudit(w http.ResponseWriter, r *http.Request) {
	g := o.guard()
	if g == nil {
		writeError(w, http.StatusServiceUnavailable, "the guard is not running yet (the runner is still connecting)")
		return
	}
	q := r.URL.Query()
	f := guard.AuditFilter{Source: q.Get("source"), Plugin: q.Get("plugin"), Chat: q.Get("chat"), Outcome: q.Get("outcome")}
	for key, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "%s: %v", key, err)
				return
			}
			*dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit: want a number >= 0, got %q", v)
			return
		}
		f.Limit = n
	}
	recs, err := g.Audit(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if recs == nil {
		recs = []guard.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, recs)
}

// handleBackup streams a consistent copy of the store (one read
// transaction: writers go on meanwhile).
func (o *Ops) handleBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", trailerBackupError+", "+trailerBackupBytes)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	n, err := o.opts.Store.Backup(r.Context(), w)
	w.Header().Set(trailerBackupBytes, strconv.FormatInt(n, 10))
	if err != nil {
		w.Header().Set(trailerBackupError, err.Error())
		o.log.Warn("Backup through the control socket failed", zap.Error(err))
		return
	}
	o.log.Info("Backup streamed through the control socket", zap.Int64("bytes", n))
}

// listenSocket binds the control socket at path with mode 0600. It binds
// in a fresh private directory first and renames the socket into place, so
// the socket is never reachable with looser permissions. A stale socket
// file (no one answers) is replaced; a live one is an error.
func listenSocket(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("control socket %s: the path exists and is not a socket; move it away or set ops.socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("control socket %s: another runner answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	tmp, err := os.MkdirTemp(dir, ".sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	if len(tmpPath) > 107 {
		// The temporary name is longer than the final one; bind directly.
		tmpPath = path
	}
	ln, err := net.Listen("unix", tmpPath)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	// We rename the file, so Close must not unlink the old name.
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if tmpPath != path {
		if err := os.Rename(tmpPath, path); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
	}
	return ln, nil
}

// isNotRunning tells a dial error that means no runner serves the socket.
func isNotRunning(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}
