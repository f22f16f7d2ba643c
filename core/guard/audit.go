package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/store"
)

// Audit outcomes.
const (
	OutcomeOK        = "ok"
	OutcomeError     = "error"     // the executor or Telegram failed it; Code and RPCError say how
	OutcomeThrottled = "throttled" // a limit held it back; Reason says which, RetryAfter when
	OutcomeDenied    = "denied"    // never allowed (forbidden method, or denied by the plugin host)
	OutcomeDryRun    = "dry_run"   // dry-run mode: logged, not sent
	OutcomeQueued    = "queued"    // kept for later: a flood wait to sit out, or waiting across a restart
)

// Outcomes lists every outcome, for flag validation.
var Outcomes = []string{OutcomeOK, OutcomeError, OutcomeThrottled, OutcomeDenied, OutcomeDryRun, OutcomeQueued}

// AuditRecord is one line of the audit log, stored as JSON in the store's
// audit bucket. Message texts are never recorded.
type AuditRecord struct {
	Time time.Time `json:"time"`
	// Source is who asked: "plugin:NAME", "rule:NAME", "owner" or "runner".
	Source string `json:"source"`
	// Label is what the plugin called the action, e.g. the rule of the
	// rules plugin that made it. The plugin host cleans it (short, printable
	// UTF-8); it never changes Source, which budgets are keyed on.
	Label string `json:"label,omitempty"`
	// Kind is the action kind (send, edit, join, raw_invoke, ...) or a guard
	// event (pause, resume, first_contacts_pause).
	Kind string `json:"kind"`
	// Chat is the target chat as "user:ID", "chat:ID" or "channel:ID".
	Chat string `json:"chat,omitempty"`
	// Method is the TL method of a raw_invoke.
	Method  string `json:"method,omitempty"`
	Outcome string `json:"outcome"`
	// Code is the contract error code without its prefix (FLOOD_WAIT,
	// THROTTLED, FORBIDDEN, ...); RPCError is Telegram's error type.
	Code     string `json:"code,omitempty"`
	RPCError string `json:"rpc_error,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// RetryAfter is in seconds, for throttles and flood waits.
	RetryAfter int `json:"retry_after_s,omitempty"`
	// Wait is the time spent queued (lane, pause, rate budgets); Duration
	// the time the executor took.
	Wait     time.Duration `json:"wait_ns,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	CauseSeq uint64        `json:"cause_seq,omitempty"`
	// MessageID is the sent message's id.
	MessageID int64 `json:"message_id,omitempty"`
	// ID is the durable queue id of an action that had to wait.
	ID string `json:"id,omitempty"`
	// Account is set when records of several accounts are listed together
	// (`runner audit` on a runner with several accounts).
	Account string `json:"account,omitempty"`
}

// Append writes a record directly (for components outside the guard, such
// as the plugin host's permission denials).
func Append(ctx context.Context, st *store.Store, r AuditRecord) error {
	return AppendTo(ctx, st.Audit(), r)
}

// AppendTo is Append for any backend's audit log.
func AppendTo(ctx context.Context, log store.AuditStore, r AuditRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return log.Append(ctx, r.Time, data)
}

// Record adds a record to the audit log through the guard's batching
// writer; the plugin host uses it for its own denials.
func (g *Guard) Record(r AuditRecord) {
	if r.Time.IsZero() {
		r.Time = g.now()
	}
	g.audit.add(r)
}

// auditWriter batches records into few transactions: every action is
// audited, and one fsync per action would cost more than the action.
type auditWriter struct {
	st   store.Backend
	log  *zap.Logger
	in   chan auditMsg
	done chan struct{}

	mu     sync.RWMutex // closed and the close of in
	closed bool
}

type auditMsg struct {
	rec   *AuditRecord
	flush chan struct{}
}

func newAuditWriter(st store.Backend, log *zap.Logger) *auditWriter {
	w := &auditWriter{st: st, log: log, in: make(chan auditMsg, 4096), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *auditWriter) add(r AuditRecord) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		// After close: write through rather than lose it.
		if err := AppendTo(context.Background(), w.st.Audit(), r); err != nil {
			w.log.Error("Could not write an audit record", zap.Error(err))
		}
		return
	}
	// The loop drains in until it is closed, which waits for this send.
	w.in <- auditMsg{rec: &r}
	w.mu.RUnlock()
}

func (w *auditWriter) flush(ctx context.Context) error {
	ch := make(chan struct{})
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return nil
	}
	select {
	case w.in <- auditMsg{flush: ch}:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *auditWriter) close(ctx context.Context) error {
	err := w.flush(ctx)
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	w.mu.Unlock()
	<-w.done
	return err
}

func (w *auditWriter) loop() {
	defer close(w.done)
	var batch []*AuditRecord
	var flushes []chan struct{}
	write := func() {
		if len(batch) > 0 {
			err := w.st.Update(context.Background(), func(tx store.Txn) error {
				for _, r := range batch {
					data, err := json.Marshal(r)
					if err != nil {
						return err
					}
					if err := tx.AppendAudit(r.Time, data); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				w.log.Error("Could not write audit records", zap.Int("count", len(batch)), zap.Error(err))
			}
		}
		for _, f := range flushes {
			close(f)
		}
		batch, flushes = batch[:0], flushes[:0]
	}
	for m := range w.in {
		w.take(m, &batch, &flushes)
		// Take whatever else is already waiting, then write it in one go.
	drain:
		for len(batch) < 1000 {
			select {
			case m, ok := <-w.in:
				if !ok {
					break drain
				}
				w.take(m, &batch, &flushes)
			default:
				break drain
			}
		}
		write()
	}
	write()
}

func (w *auditWriter) take(m auditMsg, batch *[]*AuditRecord, flushes *[]chan struct{}) {
	if m.rec != nil {
		*batch = append(*batch, m.rec)
	}
	if m.flush != nil {
		*flushes = append(*flushes, m.flush)
	}
}

// AuditFilter selects audit records. Zero fields match everything.
type AuditFilter struct {
	// Source matches the source exactly ("plugin:echo", "owner").
	Source string
	// Plugin matches "plugin:NAME" (and a rule of the same name).
	Plugin string
	// Label matches the plugin-chosen label exactly ("greet").
	Label string
	// Chat matches the chat reference ("user:42").
	Chat    string
	Since   time.Time // inclusive
	Until   time.Time // exclusive; zero means no end
	Outcome string
	// Limit keeps the most recent Limit matches; 0 keeps all.
	Limit int
}

func (f AuditFilter) match(r AuditRecord) bool {
	if f.Source != "" && r.Source != f.Source {
		return false
	}
	if f.Plugin != "" && r.Source != PluginSource(f.Plugin) && r.Source != RuleSource(f.Plugin) {
		return false
	}
	if f.Label != "" && r.Label != f.Label {
		return false
	}
	if f.Chat != "" && r.Chat != f.Chat {
		return false
	}
	if f.Outcome != "" && r.Outcome != f.Outcome {
		return false
	}
	return true
}

// ReadAudit returns the records matching f, oldest first. A record that
// does not decode is returned with Outcome "corrupt" rather than hidden.
func ReadAudit(ctx context.Context, st *store.Store, f AuditFilter) ([]AuditRecord, error) {
	return ReadAuditFrom(ctx, st.Audit(), f)
}

// ReadAuditFrom is ReadAudit for any backend's audit log.
func ReadAuditFrom(ctx context.Context, log store.AuditStore, f AuditFilter) ([]AuditRecord, error) {
	until := f.Until
	if until.IsZero() {
		until = time.Unix(0, math.MaxInt64)
	}
	raw, err := log.Range(ctx, f.Since, until, 0)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	var out []AuditRecord
	for _, e := range raw {
		var r AuditRecord
		if err := json.Unmarshal(e.Data, &r); err != nil {
			r = AuditRecord{Time: e.Time, Outcome: "corrupt", Reason: err.Error()}
		}
		if f.match(r) {
			out = append(out, r)
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}

// Audit reads the guard's audit log (after flushing what is pending).
func (g *Guard) Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	if err := g.FlushAudit(ctx); err != nil {
		return nil, err
	}
	return ReadAuditFrom(ctx, g.deps.Store.Audit(), f)
}

// Digest summarises the audit log between from and to, for the owner's
// Saved Messages: what each source did, what was held back and why.
func (g *Guard) Digest(ctx context.Context, from, to time.Time) (string, error) {
	recs, err := g.Audit(ctx, AuditFilter{Since: from, Until: to})
	if err != nil {
		return "", err
	}
	return BuildDigest(recs, from, to), nil
}

// BuildDigest renders the digest text of records.
func BuildDigest(recs []AuditRecord, from, to time.Time) string {
	type tally struct {
		kinds    map[string]int
		outcomes map[string]int
	}
	bySource := map[string]*tally{}
	reasons := map[string]int{}
	var events []string
	for _, r := range recs {
		switch r.Kind {
		case "pause", "resume", "first_contacts_pause":
			events = append(events, fmt.Sprintf("%s %s %s", r.Time.Format("15:04"), r.Kind, r.Reason))
			continue
		}
		t := bySource[r.Source]
		if t == nil {
			t = &tally{kinds: map[string]int{}, outcomes: map[string]int{}}
			bySource[r.Source] = t
		}
		if r.Outcome == OutcomeOK || r.Outcome == OutcomeDryRun {
			t.kinds[r.Kind]++
		}
		t.outcomes[r.Outcome]++
		if r.Outcome == OutcomeThrottled || r.Outcome == OutcomeDenied || r.Outcome == OutcomeError {
			reason := r.Reason
			if i := strings.IndexAny(reason, ":;("); i > 20 {
				reason = reason[:i]
			}
			reasons[fmt.Sprintf("%s %s: %s", r.Source, r.Outcome, reason)]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tgrunner digest %s – %s\n", from.Format("2006-01-02 15:04"), to.Format("2006-01-02 15:04"))
	if len(recs) == 0 {
		b.WriteString("No actions.\n")
		return b.String()
	}
	sources := make([]string, 0, len(bySource))
	for s := range bySource {
		sources = append(sources, s)
	}
	sort.Strings(sources)
	for _, s := range sources {
		t := bySource[s]
		fmt.Fprintf(&b, "\n%s: %s\n", s, joinCounts(t.kinds))
		fmt.Fprintf(&b, "  outcomes: %s\n", joinCounts(t.outcomes))
	}
	if len(reasons) > 0 {
		b.WriteString("\nHeld back or failed:\n")
		keys := make([]string, 0, len(reasons))
		for k := range reasons {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return reasons[keys[i]] > reasons[keys[j]] || reasons[keys[i]] == reasons[keys[j]] && keys[i] < keys[j]
		})
		for i, k := range keys {
			if i == 10 {
				fmt.Fprintf(&b, "  … and %d more kinds\n", len(keys)-10)
				break
			}
			fmt.Fprintf(&b, "  %d× %s\n", reasons[k], k)
		}
	}
	if len(events) > 0 {
		b.WriteString("\nGuard events:\n")
		for _, e := range events {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return b.String()
}

func joinCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// RunDigest calls send with the digest of the previous day every day at
// the given time of day (in the limits' day time zone) until ctx ends. A
// failed send is logged and retried at the next day.
func (g *Guard) RunDigest(ctx context.Context, hour, minute int, send func(ctx context.Context, text string) error) error {
	for {
		now := g.now().In(g.dayLocation())
		at := time.Date(now.Year(), now.Month(), now.Day(), hour, minute, 0, 0, now.Location())
		if !at.After(now) {
			at = at.AddDate(0, 0, 1)
		}
		t := time.NewTimer(at.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		text, err := g.Digest(ctx, at.AddDate(0, 0, -1), at)
		if err == nil {
			err = send(ctx, text)
		}
		if err != nil {
			g.log.Warn("Daily audit digest not sent", zap.Error(err))
		}
	}
}
