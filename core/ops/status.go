package ops

import (
	"context"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/lease"
)

// Status is what `runner status --json`, /api/status and the status page
// show. Field names are a stable contract for scripts.
//
// Accounts lists every configured account. A runner with a single account
// also carries that account's fields at the top level (account,
// connection, journal, plugins, guard, audit), as it always has.
type Status struct {
	Version   string    `json:"version"`
	Time      time.Time `json:"time"`
	StartedAt time.Time `json:"started_at"`
	PID       int       `json:"pid"`
	// Holder is this runner's lease holder id when accounts run under
	// leases (storage in Redis).
	Holder string `json:"holder,omitempty"`

	*AccountStatus
	Accounts []AccountStatus `json:"accounts"`
	// Ready is the runner's verdict: every account it runs is ready.
	Ready Readiness `json:"ready"`
}

// AccountStatus is one account's part of the status.
type AccountStatus struct {
	Account Account `json:"account"`
	// Held is true while the account runs in this process. With leases, an
	// account held by another runner shows that runner in HeldBy ("" when
	// no runner holds it right now).
	Held   bool   `json:"held"`
	HeldBy string `json:"held_by,omitempty"`
	// FleetPause is the account's fleet-wide pause switch while it is on
	// (under leases; see runner pause).
	FleetPause *lease.PauseState `json:"fleet_pause,omitempty"`
	Connection Connection        `json:"connection"`
	Journal    Journal           `json:"journal"`
	Plugins    []Plugin          `json:"plugins"`
	Guard      *Guard            `json:"guard,omitempty"`
	// Audit holds the latest audit records, oldest first.
	Audit []guard.AuditRecord `json:"audit"`
	Ready Readiness           `json:"ready"`
}

// Account is who the runner acts for.
type Account struct {
	Name     string `json:"name"` // the account's key in the config ("default")
	LoggedIn bool   `json:"logged_in"`
	UserID   int64  `json:"user_id,omitempty"`
	Username string `json:"username,omitempty"`
	// Display is the account's first and last name.
	Display string    `json:"display,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// LastError is why the session last ended.
	LastError string `json:"last_error,omitempty"`
}

// Connection is the MTProto connection.
type Connection struct {
	Server string `json:"server"` // production, test, sandbox, custom
	// State is connecting, ready or disconnected.
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Reconnects and LastDead are only known when the runner reports the
	// client's connection state.
	Reconnects int    `json:"reconnects"`
	LastDead   string `json:"last_dead,omitempty"`
	// Reported is false when the state is inferred from the session alone.
	Reported bool `json:"reported"`
}

// Journal is the updates journal: how much is kept and how far behind each
// consumer is.
type Journal struct {
	Depth   uint64 `json:"depth"`
	LastSeq uint64 `json:"last_seq"`
	// Lag is the largest consumer lag: the update lag.
	Lag       uint64        `json:"lag"`
	Consumers []ConsumerLag `json:"consumers"`
}

// ConsumerLag is one journal consumer's unacknowledged entries.
type ConsumerLag struct {
	Consumer string `json:"consumer"`
	Lag      uint64 `json:"lag"`
}

// Plugin is one plugin instance.
type Plugin struct {
	Name string `json:"name"`
	// Account is the account the instance serves.
	Account          string    `json:"account,omitempty"`
	State            string    `json:"state"`
	Since            time.Time `json:"since,omitzero"`
	PID              int       `json:"pid,omitempty"`
	Version          string    `json:"version,omitempty"`
	SDK              string    `json:"sdk,omitempty"`
	Restarts         int       `json:"restarts"`
	Crashes          int       `json:"recent_crashes"`
	LastError        string    `json:"last_error,omitempty"`
	QuarantineReason string    `json:"quarantine_reason,omitempty"`
	NextStart        time.Time `json:"next_start,omitzero"`
	QueueDepth       int       `json:"queue_depth"`
	InFlight         int       `json:"in_flight"`
	Delivered        uint64    `json:"delivered"`
	Failed           uint64    `json:"failed"`
	Dropped          uint64    `json:"dropped"`
	Filtered         uint64    `json:"filtered"`
	Actions          uint64    `json:"actions"`
	Denied           uint64    `json:"denied"`
	LatencyP50MS     float64   `json:"latency_p50_ms"`
	LatencyP99MS     float64   `json:"latency_p99_ms"`
	// Lag is the plugin's journal consumer lag.
	Lag uint64 `json:"lag"`
}

// Guard is the guard's state.
type Guard struct {
	Paused                   bool                `json:"paused"`
	PauseReason              string              `json:"pause_reason,omitempty"`
	PausedSince              time.Time           `json:"paused_since,omitzero"`
	DryRun                   bool                `json:"dry_run"`
	SendHoldUntil            time.Time           `json:"send_hold_until,omitzero"`
	FirstContactsPausedUntil time.Time           `json:"first_contacts_paused_until,omitzero"`
	Waiting                  int                 `json:"waiting"`
	Budgets                  []guard.Budget      `json:"budgets"`
	Today                    map[string]int      `json:"today"`
	RecentThrottles          []guard.AuditRecord `json:"recent_throttles"`
}

// Readiness is the /readyz verdict with its reasons.
type Readiness struct {
	Ready bool `json:"ready"`
	// Problems says what keeps the runner from being ready.
	Problems []string `json:"problems,omitempty"`
}

// auditShown is how many audit records the status carries.
const auditShown = 20

// Status takes a snapshot of the runner and every account.
func (o *Ops) Status(ctx context.Context) Status {
	st := Status{
		Version:   o.version,
		Time:      time.Now().UTC(),
		StartedAt: o.started.UTC(),
		PID:       os.Getpid(),
		Holder:    o.opts.Holder,
		Accounts:  make([]AccountStatus, 0, len(o.accounts)),
	}
	for _, a := range o.accounts {
		st.Accounts = append(st.Accounts, a.status(ctx))
	}
	if len(st.Accounts) == 1 {
		st.AccountStatus = &st.Accounts[0]
	}
	st.Ready = o.overallReadiness(st.Accounts)
	return st
}

// overallReadiness: ready when every account this runner is responsible
// for is. Under leases that is the accounts held here (a runner holding
// none is a ready standby); otherwise every configured account.
func (o *Ops) overallReadiness(accounts []AccountStatus) Readiness {
	var problems []string
	for _, a := range accounts {
		if o.opts.Leases != nil && !a.Held {
			continue
		}
		for _, p := range a.Ready.Problems {
			if len(accounts) > 1 {
				p = "account " + a.Account.Name + ": " + p
			}
			problems = append(problems, p)
		}
	}
	return Readiness{Ready: len(problems) == 0, Problems: problems}
}

func (a *AccountOps) status(ctx context.Context) AccountStatus {
	v := a.view()
	sess, conn := v.session, v.conn
	st := AccountStatus{
		Account: Account{
			Name: a.name, LoggedIn: sess.Up, UserID: sess.SelfID, Username: sess.Username,
			Display: sess.Name, Since: utc(sess.Since), LastError: sess.EndError,
		},
		Held: v.held,
		Connection: Connection{
			Server: string(a.o.opts.Config.Server.Type), State: effectiveConnState(sess, conn),
			Since: utc(conn.Since), Reconnects: conn.Reconnects, LastDead: conn.LastDead, Reported: conn.State != "",
		},
		Journal: Journal{Consumers: []ConsumerLag{}},
		Plugins: []Plugin{},
		Audit:   []guard.AuditRecord{},
	}
	if !conn.Reported() && sess.Up {
		st.Connection.Since = utc(sess.Since)
	}
	if p := a.o.opts.Pauses; p != nil {
		if ps, on, err := p.Get(ctx, a.name); err == nil && on {
			ps.Since = utc(ps.Since)
			st.FleetPause = &ps
		}
	}
	if !v.held && a.o.opts.Leases != nil {
		st.Connection.State = "elsewhere"
		holder, _, err := a.o.opts.Leases.Current(ctx, a.name)
		switch {
		case err != nil:
			st.HeldBy = "unknown (" + err.Error() + ")"
		default:
			st.HeldBy = holder
		}
		why := "held by runner " + st.HeldBy
		if st.HeldBy == "" {
			why = "held by no runner right now"
			st.Connection.State = "disconnected"
		}
		st.Ready = Readiness{Problems: []string{"not run here: " + why}}
		return st
	}
	lags := map[string]uint64{}
	if v.st != nil {
		j := v.st.Journal()
		st.Journal.LastSeq = j.LastSeq()
		st.Journal.Depth, _ = j.Depth(ctx)
		st.Journal.Consumers = v.consumerLags(ctx)
		for _, c := range st.Journal.Consumers {
			lags[c.Consumer] = c.Lag
			st.Journal.Lag = max(st.Journal.Lag, c.Lag)
		}
	}
	if h := v.host(); h != nil {
		for _, p := range h.Status() {
			st.Plugins = append(st.Plugins, Plugin{
				Name: p.Name, Account: a.name, State: string(p.State), Since: utc(p.Since), PID: p.PID, Version: p.Version, SDK: p.SDK,
				Restarts: p.Restarts, Crashes: p.Crashes, LastError: p.LastError, QuarantineReason: p.QuarantineReason,
				NextStart: utc(p.NextStart), QueueDepth: p.QueueDepth, InFlight: p.InFlight,
				Delivered: p.Delivered, Failed: p.Failed, Dropped: p.Dropped, Filtered: p.Filtered,
				Actions: p.Actions, Denied: p.Denied,
				LatencyP50MS: ms(p.LatencyP50), LatencyP99MS: ms(p.LatencyP99),
				Lag: lags[pluginConsumer(p.Name)],
			})
		}
	}
	if g := v.guard(); g != nil {
		snap := g.Snapshot(ctx)
		st.Guard = &Guard{
			Paused: snap.Paused, PauseReason: snap.PauseReason, PausedSince: utc(snap.PausedSince), DryRun: snap.DryRun,
			SendHoldUntil: utc(snap.SendHoldUntil), FirstContactsPausedUntil: utc(snap.FirstContactsPausedUntil),
			Waiting: snap.Waiting, Budgets: snap.Budgets, Today: snap.Today, RecentThrottles: snap.RecentThrottles,
		}
		if st.Guard.Budgets == nil {
			st.Guard.Budgets = []guard.Budget{}
		}
		if st.Guard.RecentThrottles == nil {
			st.Guard.RecentThrottles = []guard.AuditRecord{}
		}
		st.Audit = latestAudit(ctx, g)
	}
	st.Ready = v.readiness(st.Plugins)
	return st
}

// latestAudit returns the newest audit records, looking back in growing
// windows so a long log is not read whole on every refresh.
func latestAudit(ctx context.Context, g *guard.Guard) []guard.AuditRecord {
	now := time.Now()
	var recs []guard.AuditRecord
	for _, back := range []time.Duration{10 * time.Minute, 24 * time.Hour, 30 * 24 * time.Hour} {
		r, err := g.Audit(ctx, guard.AuditFilter{Since: now.Add(-back), Limit: auditShown})
		if err != nil {
			break
		}
		recs = r
		if len(recs) >= auditShown {
			break
		}
	}
	if recs == nil {
		recs = []guard.AuditRecord{}
	}
	return recs
}

// utc drops the location and the monotonic reading, so a status survives
// a JSON round trip unchanged.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// Reported says whether the runner reports the client's connection state.
func (c connInfo) Reported() bool { return c.State != "" }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pluginConsumer(name string) string { return "plugin:" + name }

// readiness is the account's /readyz verdict: logged in, updates flowing,
// and no plugin quarantined (unless the config says they do not count).
func (v accountView) readiness(plugins []Plugin) Readiness {
	sess, conn := v.session, v.conn
	var problems []string
	if !sess.Up {
		if sess.Since.IsZero() && sess.Ended.IsZero() {
			problems = append(problems, "not logged in yet: the session is not up")
		} else {
			problems = append(problems, "the session ended: "+orNone(sess.EndError))
		}
	}
	if conn.Reported() && conn.State != "ready" {
		problems = append(problems, "MTProto connection is "+conn.State)
	}
	if v.st != nil {
		if err := v.st.Journal().Failed(); err != nil {
			problems = append(problems, "updates are not flowing: the journal failed: "+err.Error())
		}
	}
	if !v.a.o.opts.Config.Ops.IgnoreQuarantined {
		var q []string
		for _, p := range plugins {
			if p.State == "quarantined" {
				q = append(q, p.Name)
			}
		}
		if len(q) > 0 {
			problems = append(problems, "quarantined plugins: "+strings.Join(q, ", "))
		}
	}
	return Readiness{Ready: len(problems) == 0, Problems: problems}
}

func orNone(s string) string {
	if s == "" {
		return "stopped"
	}
	return s
}

// consumerLags reads every registered journal consumer's lag, sorted by
// name.
func (v accountView) consumerLags(ctx context.Context) []ConsumerLag {
	if v.st == nil {
		return nil
	}
	j := v.st.Journal()
	names, err := j.Consumers(ctx)
	if err != nil {
		return nil
	}
	sort.Strings(names)
	out := make([]ConsumerLag, 0, len(names))
	for _, n := range names {
		c := v.a.consumer(ctx, v.st, n)
		if c == nil {
			continue
		}
		lag, err := c.Lag(ctx)
		if err != nil {
			continue
		}
		out = append(out, ConsumerLag{Consumer: n, Lag: lag})
	}
	return out
}
