package rules

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
	"github.com/tgrunner/tgrunner/sdk"
)

// A run that reaches a wait is parked: written to the plugin's store until
// the wait ends, so that a restart of the plugin or the runner resumes it
// where it was rather than forgetting the rest of its actions. Its event
// was acknowledged when it detached, so nothing else would bring it back.

const parkedPrefix = "parked/"

// parked is a waiting run as stored.
type parked struct {
	Rule string `json:"rule"`
	// Path is the wait's position: in Rule's actions, then in each
	// called rule's.
	Path []int `json:"path"`
	// Print is the fingerprint of the rules on the path: a run is
	// resumed only into the rules it was parked in.
	Print    string    `json:"print"`
	Data     spec.Data `json:"data"`
	Chat     string    `json:"chat,omitempty"`
	ResumeAt time.Time `json:"resume_at"`
}

// newProcessID tells this process's parked runs from those a previous
// process left.
func newProcessID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (e *engine) newParkID(r *spec.Compiled) string {
	// Numbered so that listing the store gives the order they began in.
	return fmt.Sprintf("%s/%s/%09d", e.process, r.ID, e.parks.Add(1))
}

// chain lists the rules on path from root, checking that it leads through
// calls to a wait. An empty path is a queued run that has not begun.
func (e *engine) chain(root *spec.Compiled, path []int) ([]*spec.Compiled, error) {
	if len(path) == 0 {
		return []*spec.Compiled{root}, nil
	}
	set := e.set.Load()
	rules := []*spec.Compiled{root}
	cur := root
	for k, i := range path {
		if i < 0 || i >= len(cur.Actions) {
			return nil, fmt.Errorf("rule %s has no action %d", cur.ID, i)
		}
		a := cur.Actions[i]
		if k == len(path)-1 {
			if a.Action.Action != spec.ActWait {
				return nil, fmt.Errorf("rule %s action %d is %s, not wait", cur.ID, i, a.Action.Action)
			}
			break
		}
		if a.Action.Action != spec.ActCall || set == nil || set.ByID[a.Rule] == nil {
			return nil, fmt.Errorf("rule %s action %d is not a call of a known rule", cur.ID, i)
		}
		cur = set.ByID[a.Rule]
		rules = append(rules, cur)
	}
	return rules, nil
}

func fingerprint(rules []*spec.Compiled) string {
	h := sha256.New()
	for _, r := range rules {
		b, _ := json.Marshal(r.Rule)
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// park records run x, waiting until until with data d (or, with no
// position yet, queued).
func (e *engine) park(x *run, d *spec.Data, until time.Time) {
	path := append([]int(nil), (*x.path)...)
	rules, err := e.chain(x.root, path)
	if err != nil {
		x.c.Log().Warn("a waiting run cannot be kept across restarts", "rule", x.root.ID, "error", err.Error())
		return
	}
	rec := parked{Rule: x.root.ID, Path: path, Print: fingerprint(rules), Data: *d, ResumeAt: until.UTC()}
	if chat, err := triggerChat(x); err == nil {
		rec.Chat = sdk.PeerString(chat)
	}
	b, err := json.Marshal(rec)
	if err == nil {
		err = x.c.KV().Set(parkedPrefix+x.parkID, b)
	}
	if err != nil {
		x.c.Log().Warn("a waiting run is not kept across restarts", "rule", x.root.ID, "error", err.Error())
		return
	}
	x.stored.Store(true)
}

// unpark forgets run x's record: its wait ended, or it was cancelled.
func (e *engine) unpark(x *run) {
	x.stored.Store(false)
	if err := x.c.KV().Delete(parkedPrefix + x.parkID); err != nil {
		x.c.Log().Warn("forgetting a waiting run", "rule", x.root.ID, "error", err.Error())
	}
}

// sleep is a parked run's wait of dur. A run cancelled by a new trigger
// (mode: restart) is forgotten; one stopped with the plugin stays parked
// and resumes at the next start.
func (e *engine) sleep(ctx context.Context, x *run, r *spec.Compiled, d *spec.Data, dur time.Duration) error {
	if dur <= 0 {
		return e.sleepOn(ctx, x, r, d, nil)
	}
	t := e.clock.NewTimer(dur)
	defer t.Stop()
	return e.sleepOn(ctx, x, r, d, t.C())
}

// sleepOn waits for done (nil: no wait).
func (e *engine) sleepOn(ctx context.Context, x *run, r *spec.Compiled, d *spec.Data, done <-chan time.Time) error {
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			if x.c.Err() == nil {
				e.unpark(x)
			}
			return ctx.Err()
		}
	}
	e.unpark(x)
	d.Now = e.clock.Now().In(r.Location)
	return nil
}

// resumeParked resumes the runs a previous process left waiting. A run
// whose rules changed since is dropped, with a warning: its position
// would mean something else now.
func (e *engine) resumeParked(c *sdk.Context) error {
	keys, err := c.KV().List(parkedPrefix)
	if err != nil {
		return fmt.Errorf("list waiting runs: %w", err)
	}
	set := e.set.Load()
	for _, key := range keys {
		id := strings.TrimPrefix(key, parkedPrefix)
		if strings.HasPrefix(id, e.process+"/") {
			continue // waiting in this process
		}
		raw, found, err := c.KV().Get(key)
		if err != nil || !found {
			continue
		}
		var rec parked
		var r *spec.Compiled
		var rules []*spec.Compiled
		if err = json.Unmarshal(raw, &rec); err == nil {
			if r = set.ByID[rec.Rule]; r == nil || r.Disabled {
				err = fmt.Errorf("rule %s is gone or disabled", rec.Rule)
			} else if rules, err = e.chain(r, rec.Path); err == nil && fingerprint(rules) != rec.Print {
				err = errors.New("the rule changed since")
			}
		}
		if err != nil {
			c.Log().Warn("a run left waiting by the last start is dropped", "run", id, "error", err.Error())
			_ = c.KV().Delete(key)
			continue
		}
		x := &run{c: c.WithLabel(r.ID), root: r, path: new([]int), parkID: id, stored: new(atomic.Bool)}
		if rec.Chat != "" {
			if x.chat, err = sdk.ParsePeer(rec.Chat); err != nil {
				x.chat = nil
			}
		}
		x.stored.Store(true)
		st := e.state(r.ID)
		st.mu.Lock()
		if len(rec.Path) == 0 {
			// Queued and not begun: it takes its turn again.
			c.Log().Info("running a run left queued by the last start", "rule", r.ID)
			d := rec.Data
			if st.running > 0 {
				st.queue = append(st.queue, pendingRun{x: x, data: &d})
			} else {
				e.launchRun(st, x, r, func(ctx context.Context) error { return e.runActions(ctx, x, r, &d, 0) })
			}
		} else {
			c.Log().Info("resuming a run left waiting by the last start", "rule", r.ID, "resume_at", rec.ResumeAt.Format(time.RFC3339))
			e.launchRun(st, x, r, func(ctx context.Context) error { return e.resume(ctx, x, rules, rec) })
		}
		st.mu.Unlock()
	}
	return nil
}

// resume finishes the wait a run was parked in, then the actions after it,
// from the innermost called rule outwards.
func (e *engine) resume(ctx context.Context, x *run, rules []*spec.Compiled, rec parked) error {
	x.detach()
	*x.path = append([]int(nil), rec.Path...)
	inner := len(rules) - 1
	data := func(k int) *spec.Data {
		d := rec.Data
		d.Rule = spec.RuleData{ID: rules[k].ID, Alias: rules[k].Alias}
		d.Now = e.clock.Now().In(rules[k].Location)
		return &d
	}
	d := data(inner)
	if err := e.sleep(ctx, x, rules[inner], d, rec.ResumeAt.Sub(e.clock.Now())); err != nil {
		return err
	}
	for k := inner; k >= 0; k-- {
		at := *x
		at.c = x.c.WithLabel(rules[k].ID)
		if k < inner {
			d = data(k)
		}
		if err := e.runActionsFrom(ctx, &at, rules[k], d, k, rec.Path[k]+1); err != nil {
			return err
		}
	}
	return nil
}
