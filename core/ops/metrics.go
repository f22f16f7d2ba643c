package ops

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/store"
)

const namespace = "tgrunner"

// sourceClient labels flood waits the MTProto client sat out itself.
const sourceClient = "client"

// pluginStates are every state a plugin can be in, so tgrunner_plugin_state
// has one series per state (1 for the current one).
var pluginStates = []pluginhost.State{
	pluginhost.StateStarting, pluginhost.StateRunning, pluginhost.StateBackoff,
	pluginhost.StateQuarantined, pluginhost.StateStopped, pluginhost.StateDisabled,
}

// dailyClasses are the guard's daily-limited action classes; a class with
// nothing done today is 0, not absent.
var dailyClasses = []string{"first_contacts", "joins", "invites", "contact_imports"}

var connStates = []string{"connecting", "ready", "disconnected"}

// accountMetrics are one account's series, registered under the label
// account="NAME". Counters fed by hooks live in vectors; everything that
// is a snapshot of the runner (plugin status, guard budgets, journal lag)
// is read on scrape by the account's collector, so it is never stale and
// costs nothing between scrapes.
type accountMetrics struct {
	a *AccountOps

	updates    *prometheus.CounterVec
	sessions   prometheus.Counter
	reconnects prometheus.Counter
	latency    *prometheus.HistogramVec

	// Fed from the audit log on scrape (see auditTail).
	actions          *prometheus.CounterVec
	throttles        *prometheus.CounterVec
	throttleSeconds  *prometheus.CounterVec
	floodWaits       *prometheus.CounterVec
	floodWaitSeconds *prometheus.CounterVec
	tail             auditTail
}

func newAccountMetrics(a *AccountOps, cfg *config.Config, reg prometheus.Registerer) (*accountMetrics, error) {
	m := &accountMetrics{a: a}
	m.updates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "updates_received_total",
		Help: "Updates journaled, by event kind (new_message, edited_message, ...).",
	}, []string{"kind"})
	m.sessions = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "sessions_started_total",
		Help: "Times the account's session came up (logged in, updates flowing).",
	})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "mtproto_reconnects_total",
		Help: "Times the MTProto client reconnected its primary connection.",
	})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "plugin_handler_latency_seconds",
		Help:    "Time from an event sent to a plugin to its ack.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"plugin"})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "actions_total",
		Help: "Actions through the guard, by source (plugin:NAME, rule:NAME, owner, runner), kind and outcome (ok, error, throttled, denied, dry_run, queued).",
	}, []string{"source", "kind", "outcome"})
	m.throttles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "guard_throttles_total",
		Help: "Actions the guard held back (outcome throttled), by source.",
	}, []string{"source"})
	m.throttleSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "guard_throttle_retry_after_seconds_total",
		Help: "Sum of the retry-after the guard gave with its throttles, by source.",
	}, []string{"source"})
	m.floodWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "flood_waits_total",
		Help: `FLOOD_WAITs from Telegram: source "client" for those the client sat out below limits.flood_wait.max_wait, otherwise the action's source (the guard kept or failed the action).`,
	}, []string{"source"})
	m.floodWaitSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "flood_wait_seconds_total",
		Help: "Seconds Telegram asked to wait in those FLOOD_WAITs, by source.",
	}, []string{"source"})

	// Series that exist before anything happens, so dashboards and alerts
	// see zeros instead of nothing.
	m.floodWaits.WithLabelValues(sourceClient)
	m.floodWaitSeconds.WithLabelValues(sourceClient)
	for _, p := range cfg.Plugins {
		m.latency.WithLabelValues(p.Name)
		src := guard.PluginSource(p.Name)
		m.throttles.WithLabelValues(src)
		m.throttleSeconds.WithLabelValues(src)
		m.floodWaits.WithLabelValues(src)
		m.floodWaitSeconds.WithLabelValues(src)
	}

	m.tail = auditTail{since: a.o.started, seen: map[auditKey]time.Time{}}
	for _, c := range []prometheus.Collector{m.updates, m.sessions, m.reconnects, m.latency, accountCollector{m: m}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	descBuildInfo = prometheus.NewDesc(namespace+"_build_info", "The runner's version and Go version (value 1).",
		[]string{"version", "go_version"}, nil)
	descAccountHeld = prometheus.NewDesc(namespace+"_account_held",
		"1 while the account runs in this process (with leases, 0 while another runner holds it).", nil, nil)
	descSessionUp = prometheus.NewDesc(namespace+"_session_up",
		"1 while the account is logged in and updates flow.", nil, nil)
	descConnected = prometheus.NewDesc(namespace+"_mtproto_connected",
		"1 while the MTProto primary connection is ready.", nil, nil)
	descConnState = prometheus.NewDesc(namespace+"_mtproto_connection_state",
		"The MTProto primary connection's state (1 for the current one).", []string{"state"}, nil)
	descJournalDepth = prometheus.NewDesc(namespace+"_journal_depth",
		"Entries kept in the updates journal.", nil, nil)
	descJournalLast = prometheus.NewDesc(namespace+"_journal_last_seq",
		"The newest journal sequence number.", nil, nil)
	descJournalLag = prometheus.NewDesc(namespace+"_journal_lag",
		"Journal entries a consumer has not acknowledged yet.", []string{"consumer"}, nil)

	descPluginState = prometheus.NewDesc(namespace+"_plugin_state",
		"The plugin's state (1 for the current one).", []string{"plugin", "state"}, nil)
	descPluginQueue = prometheus.NewDesc(namespace+"_plugin_queue_depth",
		"Events read for the plugin, not sent to it yet.", []string{"plugin"}, nil)
	descPluginInFlight = prometheus.NewDesc(namespace+"_plugin_in_flight",
		"Events sent to the plugin, not acked yet.", []string{"plugin"}, nil)
	descPluginRestarts = prometheus.NewDesc(namespace+"_plugin_restarts_total",
		"Plugin processes started after the first.", []string{"plugin"}, nil)
	descPluginCrashes = prometheus.NewDesc(namespace+"_plugin_recent_crashes",
		"Crashes and hangs within the plugin's restart window.", []string{"plugin"}, nil)
	descPluginDelivered = prometheus.NewDesc(namespace+"_plugin_events_delivered_total",
		"Events the plugin acked as handled.", []string{"plugin"}, nil)
	descPluginFailed = prometheus.NewDesc(namespace+"_plugin_events_failed_total",
		"Events the plugin acked with an error.", []string{"plugin"}, nil)
	descPluginDropped = prometheus.NewDesc(namespace+"_plugin_events_dropped_total",
		"Events dropped by the drop_oldest queue policy.", []string{"plugin"}, nil)
	descPluginFiltered = prometheus.NewDesc(namespace+"_plugin_events_filtered_total",
		"Events not delivered because the plugin is not subscribed to them.", []string{"plugin"}, nil)
	descPluginActions = prometheus.NewDesc(namespace+"_plugin_action_calls_total",
		"Action calls the plugin made.", []string{"plugin"}, nil)
	descPluginDenied = prometheus.NewDesc(namespace+"_plugin_action_calls_denied_total",
		"Action calls refused by the plugin's permissions.", []string{"plugin"}, nil)
	descPluginLatency = prometheus.NewDesc(namespace+"_plugin_handler_latency_recent_seconds",
		"Handler latency quantiles over the plugin's last 1024 events.", []string{"plugin", "quantile"}, nil)

	descGuardPaused = prometheus.NewDesc(namespace+"_guard_paused",
		"1 while writes are paused (owner pause, pause file, quiet hours, a flood hold).", nil, nil)
	descGuardDryRun = prometheus.NewDesc(namespace+"_guard_dry_run",
		"1 in dry-run mode.", nil, nil)
	descGuardWaiting = prometheus.NewDesc(namespace+"_guard_waiting_actions",
		"Write actions queued or running in the guard.", nil, nil)
	descGuardTokens = prometheus.NewDesc(namespace+"_guard_budget_tokens",
		"Tokens left in a send budget.", []string{"budget"}, nil)
	descGuardBurst = prometheus.NewDesc(namespace+"_guard_budget_burst",
		"A send budget's burst (its capacity).", []string{"budget"}, nil)
	descGuardDaily = prometheus.NewDesc(namespace+"_guard_daily_count",
		"Today's count of daily-limited actions, by class.", []string{"class"}, nil)
	descGuardHold = prometheus.NewDesc(namespace+"_guard_send_hold_seconds",
		"Seconds until sends resume after a flood wait the client gave up on (0: no hold).", nil, nil)
)

// processCollector is the runner process's own series.
type processCollector struct{ o *Ops }

func (c processCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descBuildInfo }

func (c processCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, c.o.version, runtime.Version())
}

// accountCollector reads one account on each scrape.
type accountCollector struct{ m *accountMetrics }

func (c accountCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAccountHeld, descSessionUp, descConnected, descConnState,
		descJournalDepth, descJournalLast, descJournalLag,
		descPluginState, descPluginQueue, descPluginInFlight, descPluginRestarts, descPluginCrashes,
		descPluginDelivered, descPluginFailed, descPluginDropped, descPluginFiltered, descPluginActions,
		descPluginDenied, descPluginLatency,
		descGuardPaused, descGuardDryRun, descGuardWaiting, descGuardTokens, descGuardBurst, descGuardDaily, descGuardHold} {
		ch <- d
	}
	c.m.actions.Describe(ch)
	c.m.throttles.Describe(ch)
	c.m.throttleSeconds.Describe(ch)
	c.m.floodWaits.Describe(ch)
	c.m.floodWaitSeconds.Describe(ch)
}

func (c accountCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	v := m.a.view()
	gauge(descAccountHeld, b2f(v.held))
	gauge(descSessionUp, b2f(v.session.Up))
	gauge(descConnected, b2f(connected(v.session, v.conn)))
	for _, s := range connStates {
		gauge(descConnState, b2f(effectiveConnState(v.session, v.conn) == s), s)
	}

	if v.st != nil {
		j := v.st.Journal()
		if d, err := j.Depth(ctx); err == nil {
			gauge(descJournalDepth, float64(d))
		}
		gauge(descJournalLast, float64(j.LastSeq()))
		for _, l := range v.consumerLags(ctx) {
			gauge(descJournalLag, float64(l.Lag), l.Consumer)
		}
	}

	if h := v.host(); h != nil {
		for _, p := range h.Status() {
			for _, s := range pluginStates {
				gauge(descPluginState, b2f(p.State == s), p.Name, string(s))
			}
			gauge(descPluginQueue, float64(p.QueueDepth), p.Name)
			gauge(descPluginInFlight, float64(p.InFlight), p.Name)
			counter(descPluginRestarts, float64(p.Restarts), p.Name)
			gauge(descPluginCrashes, float64(p.Crashes), p.Name)
			counter(descPluginDelivered, float64(p.Delivered), p.Name)
			counter(descPluginFailed, float64(p.Failed), p.Name)
			counter(descPluginDropped, float64(p.Dropped), p.Name)
			counter(descPluginFiltered, float64(p.Filtered), p.Name)
			counter(descPluginActions, float64(p.Actions), p.Name)
			counter(descPluginDenied, float64(p.Denied), p.Name)
			gauge(descPluginLatency, p.LatencyP50.Seconds(), p.Name, "0.5")
			gauge(descPluginLatency, p.LatencyP99.Seconds(), p.Name, "0.99")
		}
	}

	if g := v.guard(); g != nil {
		snap := g.Snapshot(ctx)
		gauge(descGuardPaused, b2f(snap.Paused))
		gauge(descGuardDryRun, b2f(snap.DryRun))
		gauge(descGuardWaiting, float64(snap.Waiting))
		for _, b := range snap.Budgets {
			gauge(descGuardTokens, b.Tokens, b.Name)
			gauge(descGuardBurst, float64(b.Burst), b.Name)
		}
		for _, class := range dailyClasses {
			if _, ok := snap.Today[class]; !ok {
				gauge(descGuardDaily, 0, class)
			}
		}
		for class, n := range snap.Today {
			gauge(descGuardDaily, float64(n), class)
		}
		hold := 0.0
		if !snap.SendHoldUntil.IsZero() {
			hold = math.Max(0, time.Until(snap.SendHoldUntil).Seconds())
		}
		gauge(descGuardHold, hold)
		if v.st != nil {
			m.tail.poll(ctx, g, v.st, m, m.a.o.log)
		}
	}
	m.actions.Collect(ch)
	m.throttles.Collect(ch)
	m.throttleSeconds.Collect(ch)
	m.floodWaits.Collect(ch)
	m.floodWaitSeconds.Collect(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// effectiveConnState is the client's reported state, or, when the runner
// does not report it, what the session's life implies.
func effectiveConnState(s sessionInfo, c connInfo) string {
	if c.State != "" {
		return c.State
	}
	if s.Up {
		return "ready"
	}
	if s.Since.IsZero() {
		return "connecting"
	}
	return "disconnected"
}

func connected(s sessionInfo, c connInfo) bool { return effectiveConnState(s, c) == "ready" }

// auditTail counts audit records into the action metrics. The guard writes
// its audit log in batches and stamps an action's record with the time the
// action began, so records can land up to the guard's exec timeout after
// their time: each poll rereads a window of that size and skips records it
// has counted already.
type auditTail struct {
	mu    sync.Mutex
	since time.Time // records before this belong to an earlier run
	seen  map[auditKey]time.Time
}

type auditKey struct {
	t    int64
	hash uint64
}

// auditLookback covers the guard's default exec timeout (2m) plus batching.
const auditLookback = 3 * time.Minute

func (t *auditTail) poll(ctx context.Context, g *guard.Guard, st store.Backend, m *accountMetrics, log *zap.Logger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := g.FlushAudit(ctx); err != nil {
		log.Debug("Flush audit for metrics", zap.Error(err))
	}
	now := time.Now()
	from := now.Add(-auditLookback)
	if from.Before(t.since) {
		from = t.since
	}
	raw, err := st.Audit().Range(ctx, from, time.Unix(0, math.MaxInt64), 0)
	if err != nil {
		log.Warn("Read audit log for metrics", zap.Error(err))
		return
	}
	for _, e := range raw {
		h := fnv.New64a()
		_, _ = h.Write(e.Data)
		k := auditKey{t: e.Time.UnixNano(), hash: h.Sum64()}
		if _, ok := t.seen[k]; ok {
			continue
		}
		t.seen[k] = e.Time
		var r guard.AuditRecord
		if err := json.Unmarshal(e.Data, &r); err != nil {
			continue
		}
		m.countAudit(r)
	}
	for k, at := range t.seen {
		if at.Before(now.Add(-2 * auditLookback)) {
			delete(t.seen, k)
		}
	}
}

func (m *accountMetrics) countAudit(r guard.AuditRecord) {
	m.actions.WithLabelValues(r.Source, r.Kind, r.Outcome).Inc()
	if r.Outcome == guard.OutcomeThrottled {
		m.throttles.WithLabelValues(r.Source).Inc()
		m.throttleSeconds.WithLabelValues(r.Source).Add(float64(r.RetryAfter))
	}
	if r.Code == "FLOOD_WAIT" {
		m.floodWaits.WithLabelValues(r.Source).Inc()
		m.floodWaitSeconds.WithLabelValues(r.Source).Add(float64(r.RetryAfter))
	}
}
