package guard

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the guard's state at a moment, for `runner status` and
// metrics.
type Snapshot struct {
	Time        time.Time
	Paused      bool
	PauseReason string // also set for a pause file, quiet hours or a flood hold
	PausedSince time.Time
	DryRun      bool
	// SendHoldUntil is when sends resume after a FLOOD_WAIT the waiter gave up on.
	SendHoldUntil time.Time
	// FirstContactsPausedUntil is when first contacts resume after PEER_FLOOD.
	FirstContactsPausedUntil time.Time
	// Waiting counts write actions queued or running.
	Waiting int
	// Budgets are the send token buckets in use.
	Budgets []Budget
	// Today counts the day's daily-limited actions by class (first_contacts,
	// joins, invites, contact_imports), account-wide.
	Today map[string]int
	// RecentThrottles are the latest refusals, oldest first.
	RecentThrottles []AuditRecord
}

// Budget is one token bucket.
type Budget struct {
	Name   string // "global", "plugin:NAME", "chat user:42", "group channel:7"
	Tokens float64
	Burst  int
	PerSec float64
}

// Snapshot returns the current state.
func (g *Guard) Snapshot(ctx context.Context) Snapshot {
	now := time.Now()
	s := Snapshot{Time: g.now(), DryRun: g.DryRun(), Today: map[string]int{}}
	reason, _, _, blocked := g.blocked(SourceRunner, true)
	g.mu.Lock()
	s.Paused = g.paused || blocked
	s.PauseReason = reason
	if g.paused {
		s.PausedSince = g.pausedAt
	} else if g.external.paused {
		s.PausedSince = g.external.since
	}
	if now.Before(g.sendHold) {
		s.SendHoldUntil = g.sendHold
	}
	s.Waiting = len(g.live)
	add := func(name string, l interface {
		TokensAt(time.Time) float64
		Burst() int
	}, perSec float64) {
		s.Budgets = append(s.Budgets, Budget{Name: name, Tokens: l.TokensAt(now), Burst: l.Burst(), PerSec: perSec})
	}
	if g.global != nil {
		add("global", g.global, float64(g.global.Limit()))
	}
	for k, l := range g.bySource {
		if l != nil {
			add(k, l, float64(l.Limit()))
		}
	}
	for k, l := range g.byChat {
		if l != nil && l.TokensAt(now) < float64(l.Burst()) {
			add("chat "+k, l, float64(l.Limit()))
		}
	}
	for k, l := range g.byGroup {
		if l != nil && l.TokensAt(now) < float64(l.Burst()) {
			add("group "+k, l, float64(l.Limit()))
		}
	}
	s.RecentThrottles = append([]AuditRecord(nil), g.throttles...)
	g.mu.Unlock()
	sort.Slice(s.Budgets, func(i, j int) bool { return s.Budgets[i].Name < s.Budgets[j].Name })
	s.FirstContactsPausedUntil = g.FirstContactsPausedUntil(ctx)
	day := dayKey(g.now().In(g.dayLocation()))
	if pairs, err := g.kv.List(ctx, prefixCount+day+"/", 0); err == nil {
		for _, p := range pairs {
			class := strings.TrimPrefix(p.Key, prefixCount+day+"/")
			if strings.Contains(class, "/") {
				continue // a source's own counter
			}
			n, _ := strconv.Atoi(string(p.Value))
			s.Today[class] = n
		}
	}
	return s
}
