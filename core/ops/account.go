package ops

import (
	"context"
	"time"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

// AccountOps is what ops tracks of one configured account: its session and
// connection, its storage and stack while it runs in this process, and its
// metrics (every series labelled account="NAME"). Ops makes one per
// account in the config and keeps it for the process's life, so counters
// survive a lease moving away and back.
type AccountOps struct {
	o       *Ops
	name    string
	metrics *accountMetrics

	// Guarded by o.mu.
	st        store.Backend
	stack     Stack
	held      bool
	session   sessionInfo
	conn      connInfo
	consumers map[string]store.JournalConsumer
}

// latencySource is a stack that reports each plugin event's handling
// latency (*runner.Stack).
type latencySource interface {
	ObserveLatency(func(plugin string, d time.Duration))
}

// Serve records that the account runs in this process from now on, over st
// and stack (stack may be nil), and hooks ro so every journaled update is
// counted and the session's start is seen. Call Stopped when Run returns.
func (a *AccountOps) Serve(ro *runner.Options, st store.Backend, stack Stack) {
	if ls, ok := stack.(latencySource); ok && stack != nil {
		ls.ObserveLatency(a.ObservePluginLatency)
	}
	a.o.mu.Lock()
	a.st, a.stack, a.held = st, stack, true
	a.consumers = nil
	a.session = sessionInfo{Account: a.name}
	a.conn = connInfo{}
	a.o.mu.Unlock()
	if ro != nil {
		a.attach(ro)
	}
}

// Stopped records that the account no longer runs here: its runner
// returned with err (nil on a clean stop). With leases, another runner may
// hold it next.
func (a *AccountOps) Stopped(err error) {
	a.SessionDown(err)
	a.o.mu.Lock()
	a.st, a.stack, a.held = nil, nil, false
	a.consumers = nil
	a.o.mu.Unlock()
}

func (a *AccountOps) attach(ro *runner.Options) {
	prevState, prevDead, prevFlood := ro.OnConnectionState, ro.OnDead, ro.OnFloodWait
	ro.OnConnectionState = func(state string) {
		if prevState != nil {
			prevState(state)
		}
		a.ConnectionState(state)
	}
	ro.OnDead = func(err error) {
		if prevDead != nil {
			prevDead(err)
		}
		a.ConnectionDead(err)
	}
	ro.OnFloodWait = func(d time.Duration) {
		if prevFlood != nil {
			prevFlood(d)
		}
		a.FloodWait(d)
	}
	prevObserve, prevReady := ro.Observe, ro.OnReady
	ro.Observe = func(entries []store.Entry) {
		if prevObserve != nil {
			prevObserve(entries)
		}
		a.ObserveEntries(entries)
	}
	ro.OnReady = func(s *runner.Session) {
		if prevReady != nil {
			prevReady(s)
		}
		if s.Self != nil {
			name := s.Self.FirstName
			if s.Self.LastName != "" {
				name += " " + s.Self.LastName
			}
			a.SessionUp(s.Self.ID, s.Self.Username, name)
		}
	}
}

// ObserveEntries counts journaled updates by kind.
func (a *AccountOps) ObserveEntries(entries []store.Entry) {
	for _, e := range entries {
		a.metrics.updates.WithLabelValues(e.Kind).Inc()
	}
}

// SessionUp records that the account is logged in and updates flow; the
// first account to come up tells systemd the runner is ready.
func (a *AccountOps) SessionUp(selfID int64, username, name string) {
	a.o.mu.Lock()
	a.session = sessionInfo{Up: true, Account: a.name, SelfID: selfID, Username: username, Name: name, Since: time.Now()}
	a.o.mu.Unlock()
	a.metrics.sessions.Inc()
	a.o.notifyReady()
}

// SessionDown records that the session ended (Runner.Run returned), with
// its error if any.
func (a *AccountOps) SessionDown(err error) {
	a.o.mu.Lock()
	a.session.Up = false
	a.session.Ended = time.Now()
	a.session.EndError = ""
	if err != nil {
		a.session.EndError = err.Error()
	}
	a.o.mu.Unlock()
}

// ConnectionState records the MTProto client's primary connection state
// ("connecting", "ready", "disconnected"), as gotd's
// telegram.Options.OnConnectionState reports it. A "connecting" after a
// "ready" or "disconnected" counts as a reconnect. It must not block.
func (a *AccountOps) ConnectionState(state string) {
	a.o.mu.Lock()
	prev := a.conn.State
	if state == "connecting" && (prev == "ready" || prev == "disconnected") {
		a.conn.Reconnects++
		a.metrics.reconnects.Inc()
	}
	if state != prev {
		a.conn.State, a.conn.Since = state, time.Now()
	}
	a.o.mu.Unlock()
}

// ConnectionDead records why the connection died (gotd's
// telegram.Options.OnDead).
func (a *AccountOps) ConnectionDead(err error) {
	a.o.mu.Lock()
	if err != nil {
		a.conn.LastDead = err.Error()
	}
	a.o.mu.Unlock()
}

// FloodWait counts a FLOOD_WAIT the client's floodwait.Waiter sat out
// (below limits.flood_wait.max_wait); the guard's own flood waits are
// counted from the audit log.
func (a *AccountOps) FloodWait(d time.Duration) {
	a.metrics.floodWaits.WithLabelValues(sourceClient).Inc()
	a.metrics.floodWaitSeconds.WithLabelValues(sourceClient).Add(d.Seconds())
}

// ObservePluginLatency feeds the handler latency histogram (event sent to
// ack received).
func (a *AccountOps) ObservePluginLatency(plugin string, d time.Duration) {
	a.metrics.latency.WithLabelValues(plugin).Observe(d.Seconds())
}

// view is a consistent copy of what the account is doing now.
type accountView struct {
	a       *AccountOps
	st      store.Backend
	stack   Stack
	held    bool
	session sessionInfo
	conn    connInfo
}

func (a *AccountOps) view() accountView {
	a.o.mu.Lock()
	defer a.o.mu.Unlock()
	return accountView{a: a, st: a.st, stack: a.stack, held: a.held, session: a.session, conn: a.conn}
}

func (v accountView) guard() *guard.Guard {
	if v.stack == nil {
		return nil
	}
	return v.stack.Guard()
}

func (v accountView) host() *pluginhost.Host {
	if v.stack == nil {
		return nil
	}
	return v.stack.Host()
}

// consumer returns a handle to an already registered journal consumer;
// handles are cached because taking one is a write.
func (a *AccountOps) consumer(ctx context.Context, st store.Backend, name string) store.JournalConsumer {
	a.o.mu.Lock()
	c, ok := a.consumers[name]
	a.o.mu.Unlock()
	if ok {
		return c
	}
	c, err := st.Journal().Consumer(ctx, name, store.ConsumerOptions{})
	if err != nil {
		return nil
	}
	a.o.mu.Lock()
	if a.st == st {
		if a.consumers == nil {
			a.consumers = map[string]store.JournalConsumer{}
		}
		a.consumers[name] = c
	}
	a.o.mu.Unlock()
	return c
}
