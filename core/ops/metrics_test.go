package ops_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/sandbox"
)

// Every metric family against a live runner: updates, journal, plugin,
// actions, throttles, flood waits, session and connection, runtime. Then
// every metric the Grafana dashboard references must be among them.
func TestMetricsAgainstSandbox(t *testing.T) {
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pingPlugin(t)}
	// Two sends per chat, then one an hour: the third pong to the same
	// person would wait longer than the guard's queue allows, so it is
	// throttled. (Bob's retry after a flood wait takes a second token.)
	e.cfg.Limits.Send.PerChat = config.RateLimit{Rate: config.Rate{Count: 1, Per: time.Hour}, Burst: 2}
	// Telegram's flood waits above 1s are left to the guard.
	e.cfg.Limits.FloodWait.MaxWait = time.Second
	l := e.start(t, true)
	o := l.ops
	ctx := context.Background()

	e.ping(t, e.alice)
	e.ping(t, e.alice)
	_, err := e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	eventually(t, 30*time.Second, "a throttle counted", func() bool {
		v, _ := value(scrape(t, o), "tgrunner_guard_throttles_total", map[string]string{"source": "plugin:ping"})
		return v >= 1
	})

	// Bob's pong meets a FLOOD_WAIT_2 once: the guard keeps it and sends
	// it after the wait.
	e.sb.SetFaults(sandbox.Faults{Errors: map[string]string{"messages.sendMessage": "420:FLOOD_WAIT_2"}})
	_, err = e.sb.As(e.bob.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".ping")
	require.NoError(t, err)
	eventually(t, 30*time.Second, "a flood wait counted", func() bool {
		v, _ := value(scrape(t, o), "tgrunner_flood_waits_total", map[string]string{"source": "plugin:ping"})
		return v >= 1
	})
	e.sb.SetFaults(sandbox.Faults{})
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = e.sb.WaitMessage(wctx, func(m sandbox.Message) bool {
		return m.From == e.owner.ID && m.Peer == sandbox.UserPeer(e.bob.ID) && strings.HasPrefix(m.Text, "pong")
	})
	require.NoError(t, err, "the pong kept through the flood wait was never sent")

	// A restart through the control socket shows in the restart counter.
	c := ops.NewClient(o.SocketPath())
	defer c.Close()
	_, err = c.PluginControl(ctx, "ping", "restart")
	require.NoError(t, err)
	eventually(t, 30*time.Second, "the restarted plugin running", func() bool {
		fams := scrape(t, o)
		r, _ := value(fams, "tgrunner_plugin_restarts_total", map[string]string{"plugin": "ping"})
		s, _ := value(fams, "tgrunner_plugin_state", map[string]string{"plugin": "ping", "state": "running"})
		return r == 1 && s == 1
	})

	fams := scrape(t, o)
	atLeast := func(name string, labels map[string]string, min float64) {
		t.Helper()
		v, ok := value(fams, name, labels)
		require.True(t, ok, "%s%v missing", name, labels)
		require.GreaterOrEqual(t, v, min, "%s%v", name, labels)
	}
	exactly := func(name string, labels map[string]string, want float64) {
		t.Helper()
		v, ok := value(fams, name, labels)
		require.True(t, ok, "%s%v missing", name, labels)
		require.Equal(t, want, v, "%s%v", name, labels)
	}
	msgs := map[string]string{"kind": "EVENT_KIND_NEW_MESSAGE"}
	// Four .pings in, three pongs out.
	atLeast("tgrunner_updates_received_total", msgs, 4)
	atLeast("tgrunner_journal_depth", nil, 4)
	atLeast("tgrunner_journal_last_seq", nil, 4)
	_, ok := value(fams, "tgrunner_journal_lag", map[string]string{"consumer": "plugin:ping"})
	require.True(t, ok, "lag of the ping plugin's consumer")
	atLeast("tgrunner_plugin_events_delivered_total", map[string]string{"plugin": "ping"}, 3)
	// The throttled pong fails its .ping's handler.
	atLeast("tgrunner_plugin_events_failed_total", map[string]string{"plugin": "ping"}, 1)
	exactly("tgrunner_plugin_events_dropped_total", map[string]string{"plugin": "ping"}, 0)
	exactly("tgrunner_plugin_queue_depth", map[string]string{"plugin": "ping"}, 0)
	atLeast("tgrunner_plugin_action_calls_total", map[string]string{"plugin": "ping"}, 4)
	atLeast("tgrunner_plugin_handler_latency_recent_seconds", map[string]string{"plugin": "ping", "quantile": "0.99"}, 1e-6)
	// The histogram counts every handled event.
	atLeast("tgrunner_plugin_handler_latency_seconds", map[string]string{"plugin": "ping"}, 3)
	exactly("tgrunner_plugin_state", map[string]string{"plugin": "ping", "state": "quarantined"}, 0)
	atLeast("tgrunner_actions_total", map[string]string{"source": "plugin:ping", "kind": "send", "outcome": "ok"}, 3)
	atLeast("tgrunner_actions_total", map[string]string{"source": "plugin:ping", "kind": "send", "outcome": "throttled"}, 1)
	atLeast("tgrunner_actions_total", map[string]string{"source": "plugin:ping", "kind": "send", "outcome": "queued"}, 1)
	atLeast("tgrunner_guard_throttle_retry_after_seconds_total", map[string]string{"source": "plugin:ping"}, 60)
	atLeast("tgrunner_flood_wait_seconds_total", map[string]string{"source": "plugin:ping"}, 2)
	exactly("tgrunner_flood_waits_total", map[string]string{"source": "client"}, 0)
	atLeast("tgrunner_guard_budget_burst", map[string]string{"budget": "global"}, 1)
	exactly("tgrunner_guard_paused", nil, 0)
	exactly("tgrunner_guard_dry_run", nil, 0)
	exactly("tgrunner_session_up", nil, 1)
	exactly("tgrunner_sessions_started_total", nil, 1)
	exactly("tgrunner_mtproto_connected", nil, 1)
	exactly("tgrunner_mtproto_connection_state", map[string]string{"state": "ready"}, 1)
	exactly("tgrunner_mtproto_reconnects_total", nil, 0)
	atLeast("go_goroutines", nil, 1)
	atLeast("process_resident_memory_bytes", nil, 1)
	exactly("tgrunner_build_info", nil, 1)

	// The dashboard shows nothing that is not exposed.
	dash, err := os.ReadFile("../../docs/grafana-dashboard.json")
	require.NoError(t, err)
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(dash, &parsed), "the dashboard is valid JSON")
	refs := dashboardMetrics(t, dash)
	require.NotEmpty(t, refs)
	exposed := map[string]bool{}
	for name, f := range fams {
		exposed[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exposed[name+s] = true
			}
		}
	}
	var missing []string
	for _, n := range refs {
		if !exposed[n] {
			missing = append(missing, n)
		}
	}
	require.Empty(t, missing, "metrics the dashboard uses but the runner does not expose")
}

var metricRef = regexp.MustCompile(`\b(?:tgrunner|go|process)_[a-z0-9_]+`)

// dashboardMetrics lists the metric names in the dashboard's queries.
func dashboardMetrics(t *testing.T, dash []byte) []string {
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(dash, &d))
	set := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricRef.FindAllString(tg.Expr, -1) {
				set[m] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		b, _ := json.Marshal(v.Query)
		for _, m := range metricRef.FindAllString(string(b), -1) {
			set[m] = true
		}
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// /healthz and /readyz in each state: before login, ready, a quarantined
// plugin (counted, then not counted), and after the session ended.
func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pingPlugin(t), brokenPlugin(t)}
	// Before the runner logs in (ops starts first, as in `runner run`).
	l := e.startOps(t)
	code, body := get(t, l.ops, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	code, body = get(t, l.ops, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "not logged in yet")
	require.NoError(t, l.stop())

	for _, ignore := range []bool{false, true} {
		e.cfg.Ops.IgnoreQuarantined = ignore
		l := e.start(t, true)
		eventually(t, 30*time.Second, "the broken plugin quarantined", func() bool {
			st := l.ops.Status(context.Background())
			for _, p := range st.Plugins {
				if p.Name == "broken" {
					return p.State == "quarantined"
				}
			}
			return false
		})
		code, body := get(t, l.ops, "/readyz")
		if ignore {
			require.Equal(t, http.StatusOK, code, body)
			require.Equal(t, "ready\n", body)
		} else {
			require.Equal(t, http.StatusServiceUnavailable, code, body)
			require.Contains(t, body, "quarantined plugins: broken")
			// Disabling it takes it out of the verdict.
			c := ops.NewClient(l.ops.SocketPath())
			_, err := c.PluginControl(context.Background(), "broken", "disable")
			require.NoError(t, err)
			c.Close()
			code, body = get(t, l.ops, "/readyz")
			require.Equal(t, http.StatusOK, code, body)
		}
		code, _ = get(t, l.ops, "/healthz")
		require.Equal(t, http.StatusOK, code)

		// The session ends: not ready, still alive while the process runs.
		// Ops outlives the runner here the way it does in `runner run`
		// between Run returning and the process exiting.
		cancelRun(t, l)
		code, body = get(t, l.ops, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, "the session ended")
		code, _ = get(t, l.ops, "/healthz")
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, l.stop())
	}
}

// The runner reports the client's connection state: a forced disconnect
// in the sandbox shows as a reconnect in the status and the metrics, and
// the connection comes back ready.
func TestConnectionStateReported(t *testing.T) {
	e := newEnv(t)
	l := e.start(t, true)
	ctx := context.Background()
	eventually(t, 30*time.Second, "the connection reported ready", func() bool {
		c := l.ops.Status(ctx).Connection
		return c.Reported && c.State == "ready"
	})
	require.Positive(t, e.sb.DisconnectUser(e.owner.ID), "the owner was connected")
	eventually(t, 60*time.Second, "a reconnect counted and the connection ready again", func() bool {
		c := l.ops.Status(ctx).Connection
		return c.Reconnects >= 1 && c.State == "ready"
	})
	v, ok := value(scrape(t, l.ops), "tgrunner_mtproto_reconnects_total", nil)
	require.True(t, ok)
	require.GreaterOrEqual(t, v, 1.0)
	require.True(t, l.ops.Status(ctx).Ready.Ready, "%v", l.ops.Status(ctx).Ready.Problems)
}
