package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/store"
)

// ErrReloadUnsupported answers a reload request when the runner has no
// Reloader.
var ErrReloadUnsupported = errors.New("reload is not supported by this runner yet; restart it to apply a new config")

// ErrSocketInUse means another live runner answers on the control socket.
var ErrSocketInUse = errors.New("another runner answers on it")

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
//
// Requests about one account take ?account=NAME. Without it, pause and
// resume act on every account this runner runs (the kill switch stops
// everything); the others need it only when the runner has several
// accounts and the request is ambiguous.
func (o *Ops) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := o.Status(r.Context())
		if name := r.URL.Query().Get(AccountParam); name != "" {
			var one []AccountStatus
			for _, a := range st.Accounts {
				if a.Account.Name == name {
					one = append(one, a)
				}
			}
			if one == nil {
				writeError(w, http.StatusNotFound, "%v", o.unknownAccount(name))
				return
			}
			st.Accounts, st.AccountStatus = one, &one[0]
			st.Ready = o.overallReadiness(one)
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /v1/pause", func(w http.ResponseWriter, r *http.Request) {
		var req PauseRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "pause request: %v", err)
			return
		}
		if req.Reason == "" {
			req.Reason = "paused by the owner (runner pause)"
		}
		if o.opts.Pauses != nil {
			o.fleetPause(w, r, req.Reason)
			return
		}
		guards, code, err := o.guards(r, true)
		if err != nil {
			writeError(w, code, "%v", err)
			return
		}
		for _, g := range guards {
			g.guard.Pause(req.Reason)
		}
		o.log.Info("Paused through the control socket", zap.String("reason", req.Reason), zap.Strings("accounts", guardNames(guards)))
		writeJSON(w, http.StatusOK, Result{OK: true, Message: "paused" + o.forAccounts(guards) + ": no write action leaves until `runner resume`"})
	})
	mux.HandleFunc("POST /v1/resume", func(w http.ResponseWriter, r *http.Request) {
		if o.opts.Pauses != nil {
			o.fleetResume(w, r)
			return
		}
		guards, code, err := o.guards(r, true)
		if err != nil {
			writeError(w, code, "%v", err)
			return
		}
		var held []string
		for _, g := range guards {
			g.guard.Resume()
			if snap := g.guard.Snapshot(r.Context()); snap.Paused {
				held = append(held, o.accountPrefix(g.account)+snap.PauseReason)
			}
		}
		o.log.Info("Resumed through the control socket", zap.Strings("accounts", guardNames(guards)))
		msg := "resumed" + o.forAccounts(guards)
		if len(held) > 0 {
			msg += ", but writes are still held: " + strings.Join(held, "; ")
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
		accounts, code, err := o.pick(r, true)
		if err != nil {
			writeError(w, code, "%v", err)
			return
		}
		plugins := []Plugin{}
		for _, a := range accounts {
			plugins = append(plugins, a.status(r.Context()).Plugins...)
		}
		writeJSON(w, http.StatusOK, plugins)
	})
	mux.HandleFunc("GET /v1/plugins/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, code, err := o.findPlugin(r)
		if err != nil {
			writeError(w, code, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /v1/plugins/{name}/{verb}", o.handlePluginControl)
	mux.HandleFunc("GET /v1/audit", o.handleAudit)
	mux.HandleFunc("GET /v1/backup", o.handleBackup)
	return o.relayed(mux)
}

// fleetAccounts are the accounts a fleet pause or resume is about: the one
// named, held here or not, or every configured account.
func (o *Ops) fleetAccounts(r *http.Request) ([]*AccountOps, error) {
	if name := r.URL.Query().Get(AccountParam); name != "" {
		a := o.Account(name)
		if a == nil {
			return nil, o.unknownAccount(name)
		}
		return []*AccountOps{a}, nil
	}
	return o.accounts, nil
}

// fleetPause sets the pause switch of the accounts: whichever runner holds
// each (this one included) holds its writes within a second, and the
// switch outlives restarts and lease moves.
func (o *Ops) fleetPause(w http.ResponseWriter, r *http.Request, reason string) {
	accounts, err := o.fleetAccounts(r)
	if err != nil {
		writeError(w, http.StatusNotFound, "%v", err)
		return
	}
	var names []string
	for _, a := range accounts {
		if err := o.opts.Pauses.Set(r.Context(), a.name, reason); err != nil {
			writeError(w, http.StatusServiceUnavailable, "%v (paused so far: %s)", err, strings.Join(names, ", "))
			return
		}
		names = append(names, a.name)
		if g := a.view().guard(); g != nil {
			g.RefreshPause(r.Context())
		}
	}
	o.log.Info("Paused through the control socket, fleet-wide", zap.String("reason", reason), zap.Strings("accounts", names))
	writeJSON(w, http.StatusOK, Result{OK: true, Message: "paused (account " + strings.Join(names, ", ") +
		"): whichever runner holds each holds its writes within a second, until `runner resume` from any machine"})
}

// fleetResume clears the accounts' pause switches, and lifts the local
// pause of those held here.
func (o *Ops) fleetResume(w http.ResponseWriter, r *http.Request) {
	accounts, err := o.fleetAccounts(r)
	if err != nil {
		writeError(w, http.StatusNotFound, "%v", err)
		return
	}
	var names, held []string
	for _, a := range accounts {
		if _, err := o.opts.Pauses.Clear(r.Context(), a.name); err != nil {
			writeError(w, http.StatusServiceUnavailable, "%v (resumed so far: %s)", err, strings.Join(names, ", "))
			return
		}
		names = append(names, a.name)
		if g := a.view().guard(); g != nil {
			g.Resume()
			g.RefreshPause(r.Context())
			if snap := g.Snapshot(r.Context()); snap.Paused {
				held = append(held, a.name+": "+snap.PauseReason)
			}
		}
	}
	o.log.Info("Resumed through the control socket, fleet-wide", zap.Strings("accounts", names))
	msg := "resumed (account " + strings.Join(names, ", ") + ")"
	if len(held) > 0 {
		msg += ", but writes are still held: " + strings.Join(held, "; ")
	}
	writeJSON(w, http.StatusOK, Result{OK: true, Message: msg})
}

// AccountParam is the query parameter that names the account a control
// request is about.
const AccountParam = "account"

// pick returns the accounts a request is about: the one named by
// ?account=, else (with all) every account running here, else the only
// account. The code goes with the error.
func (o *Ops) pick(r *http.Request, all bool) ([]*AccountOps, int, error) {
	if name := r.URL.Query().Get(AccountParam); name != "" {
		a := o.Account(name)
		if a == nil {
			return nil, http.StatusNotFound, o.unknownAccount(name)
		}
		if !a.view().held && o.opts.Leases != nil {
			if h := a.status(r.Context()).HeldBy; h != "" {
				return nil, http.StatusConflict, fmt.Errorf("account %s does not run in this runner (runner %s holds it): ask that runner through its own control socket", name, h)
			}
			return nil, http.StatusConflict, fmt.Errorf("account %s does not run in any runner right now: try again once a runner holds it", name)
		}
		return []*AccountOps{a}, 0, nil
	}
	if len(o.accounts) == 1 {
		return o.accounts, 0, nil
	}
	if !all {
		return nil, http.StatusBadRequest, fmt.Errorf("this runner runs accounts %s: name one with --account", strings.Join(o.names(), ", "))
	}
	var out []*AccountOps
	for _, a := range o.accounts {
		if a.view().held {
			out = append(out, a)
		}
	}
	return out, 0, nil
}

func (o *Ops) names() []string {
	out := make([]string, 0, len(o.accounts))
	for _, a := range o.accounts {
		out = append(out, a.name)
	}
	return out
}

func (o *Ops) unknownAccount(name string) error {
	return fmt.Errorf("no account named %q in the running config; it has %s", name, strings.Join(o.names(), ", "))
}

type accountGuard struct {
	account string
	guard   *guard.Guard
}

// guards returns the running guards of the accounts a request is about;
// an account whose guard is not up yet is an error when named alone.
func (o *Ops) guards(r *http.Request, all bool) ([]accountGuard, int, error) {
	accounts, code, err := o.pick(r, all)
	if err != nil {
		return nil, code, err
	}
	var out []accountGuard
	for _, a := range accounts {
		if g := a.view().guard(); g != nil {
			out = append(out, accountGuard{account: a.name, guard: g})
		}
	}
	if len(out) == 0 {
		return nil, http.StatusServiceUnavailable, errors.New("the guard is not running yet (the runner is still connecting)")
	}
	return out, 0, nil
}

func guardNames(gs []accountGuard) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.account)
	}
	return out
}

// forAccounts names the accounts a change applied to, when the runner has
// several.
func (o *Ops) forAccounts(gs []accountGuard) string {
	if len(o.accounts) == 1 {
		return ""
	}
	return " (account " + strings.Join(guardNames(gs), ", ") + ")"
}

func (o *Ops) accountPrefix(account string) string {
	if len(o.accounts) == 1 {
		return ""
	}
	return account + ": "
}

// findPlugin finds the plugin a request names: in the named account, or
// in the only account running it.
func (o *Ops) findPlugin(r *http.Request) (Plugin, int, error) {
	name := r.PathValue("name")
	accounts, code, err := o.pick(r, true)
	if err != nil {
		return Plugin{}, code, err
	}
	var found []Plugin
	for _, a := range accounts {
		for _, p := range a.status(r.Context()).Plugins {
			if p.Name == name {
				found = append(found, p)
			}
		}
	}
	switch len(found) {
	case 0:
		return Plugin{}, http.StatusNotFound, fmt.Errorf("no plugin named %q in the running config", name)
	case 1:
		return found[0], 0, nil
	}
	var in []string
	for _, p := range found {
		in = append(in, p.Account)
	}
	return Plugin{}, http.StatusBadRequest, fmt.Errorf("plugin %s runs for accounts %s: name one with --account", name, strings.Join(in, ", "))
}

func (o *Ops) handlePluginControl(w http.ResponseWriter, r *http.Request) {
	p, code, err := o.findPlugin(r)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	v := o.Account(p.Account).view()
	h := v.host()
	if h == nil {
		writeError(w, http.StatusServiceUnavailable, "the plugins are not running yet (the runner is still connecting)")
		return
	}
	name, verb := p.Name, r.PathValue("verb")
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
	o.log.Info("Plugin control through the control socket", zap.String("plugin", name), zap.String("command", verb),
		zap.String("account", p.Account))
	if g := v.guard(); g != nil {
		g.Record(guard.AuditRecord{Source: guard.SourceOwner, Kind: "plugin_" + verb, Outcome: guard.OutcomeOK, Reason: name})
	}
	writeJSON(w, http.StatusOK, Result{OK: true, Message: o.accountPrefix(p.Account) + name + ": " + done})
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
	set("label", f.Label)
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
	q := r.URL.Query()
	f := guard.AuditFilter{Source: q.Get("source"), Plugin: q.Get("plugin"), Label: q.Get("label"), Chat: q.Get("chat"), Outcome: q.Get("outcome")}
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
	guards, code, err := o.guards(r, true)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	recs := []guard.AuditRecord{}
	for _, g := range guards {
		part, err := g.guard.Audit(r.Context(), f)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "%s%v", o.accountPrefix(g.account), err)
			return
		}
		if len(o.accounts) > 1 {
			for i := range part {
				part[i].Account = g.account
			}
		}
		recs = append(recs, part...)
	}
	if len(guards) > 1 {
		// Each account's records are in time order; merged, the newest
		// limit records stay, as for one account.
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
		if f.Limit > 0 && len(recs) > f.Limit {
			recs = recs[len(recs)-f.Limit:]
		}
	}
	writeJSON(w, http.StatusOK, recs)
}

// backupper is a storage that can stream a consistent copy of itself (the
// bbolt store).
type backupper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// handleBackup streams a consistent copy of one account's bbolt store (one
// read transaction: writers go on meanwhile).
func (o *Ops) handleBackup(w http.ResponseWriter, r *http.Request) {
	accounts, code, err := o.pick(r, false)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	a := accounts[0]
	v := a.view()
	if v.st == nil {
		writeError(w, http.StatusServiceUnavailable, "account %s does not run in this runner now", a.name)
		return
	}
	var b backupper
	if bs, ok := store.BoltStore(v.st); ok {
		b = bs
	}
	if b == nil {
		writeError(w, http.StatusNotImplemented, "account %s keeps its storage in %s: back it up with Redis's own tools (RDB snapshots, replicas), or export it with `runner storage migrate`", a.name, v.st.Describe())
		return
	}
	w.Header().Set("Trailer", trailerBackupError+", "+trailerBackupBytes)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	n, err := b.Backup(r.Context(), w)
	w.Header().Set(trailerBackupBytes, strconv.FormatInt(n, 10))
	if err != nil {
		w.Header().Set(trailerBackupError, err.Error())
		o.log.Warn("Backup through the control socket failed", zap.String("account", a.name), zap.Error(err))
		return
	}
	o.log.Info("Backup streamed through the control socket", zap.String("account", a.name), zap.Int64("bytes", n))
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
			return nil, fmt.Errorf("control socket %s: %w", path, ErrSocketInUse)
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
