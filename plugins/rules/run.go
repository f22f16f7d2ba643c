package rules

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ruleState tracks a rule's runs for its mode.
type ruleState struct {
	mu      sync.Mutex
	running int
	nextID  int
	cancels map[int]context.CancelFunc
	queue   []pendingRun
}

type pendingRun struct {
	x    *run
	data *spec.Data
}

// run is one execution of a rule's actions.
type run struct {
	c      *sdk.Context
	detach func()
	// root is the rule the run began with; path is where it is: the
	// action's position in root's actions, then in each called rule's.
	root *spec.Compiled
	path *[]int
	// parkID names the run's record in the store while it waits.
	parkID string
	// chat stands in for the triggering chat in a run resumed after a
	// restart, whose event is gone.
	chat *pb.Peer
	// stored is set while the run may have a record in the store (shared
	// by the copies a call makes).
	stored *atomic.Bool
}

func (e *engine) newRun(c *sdk.Context, r *spec.Compiled) *run {
	return &run{c: c, root: r, path: new([]int), parkID: e.newParkID(r), stored: new(atomic.Bool)}
}

// errStop ends a run (and the runs that called it) without an error.
type stopError struct{ reason string }

func (s *stopError) Error() string { return "stopped: " + s.reason }

// start runs the rule by its mode. It returns once the run has finished,
// reached a wait (the rest goes on in the background, so a long wait
// never holds up the chat's other events), was queued, or was dropped.
// Until then the event stays unacknowledged, so a crash redelivers it.
func (e *engine) start(c *sdk.Context, r *spec.Compiled, d *spec.Data) error {
	st := e.state(r.ID)
	st.mu.Lock()
	switch r.Mode {
	case spec.ModeSingle:
		if st.running > 0 {
			st.mu.Unlock()
			c.Log().Info("rule already running; trigger ignored (mode: single)", "rule", r.ID)
			return nil
		}
	case spec.ModeRestart:
		for _, cancel := range st.cancels {
			cancel()
		}
	case spec.ModeQueued:
		if st.running > 0 {
			if len(st.queue) >= r.Max {
				st.mu.Unlock()
				c.Log().Warn("rule queue full; trigger dropped (mode: queued)", "rule", r.ID, "max", r.Max)
				return nil
			}
			// Kept in the store before the event is acknowledged, so a
			// restart runs it rather than forgetting it.
			x := e.newRun(c, r)
			e.park(x, d, time.Time{})
			st.queue = append(st.queue, pendingRun{x: x, data: d})
			st.mu.Unlock()
			return nil
		}
	case spec.ModeParallel:
		if st.running >= r.Max {
			st.mu.Unlock()
			c.Log().Warn("rule at its maximum of parallel runs; trigger dropped", "rule", r.ID, "max", r.Max)
			return nil
		}
	}
	detached, result := e.launch(st, c, r, d)
	st.mu.Unlock()
	select {
	case err := <-result:
		return err
	case <-detached:
		return nil
	case <-c.Done():
		return c.Err()
	}
}

// launch starts a run; st.mu is held.
func (e *engine) launch(st *ruleState, c *sdk.Context, r *spec.Compiled, d *spec.Data) (<-chan struct{}, <-chan error) {
	x := e.newRun(c, r)
	return e.launchRun(st, x, r, func(ctx context.Context) error { return e.runActions(ctx, x, r, d, 0) })
}

// launchRun runs body as run x of rule r; st.mu is held.
func (e *engine) launchRun(st *ruleState, x *run, r *spec.Compiled, body func(context.Context) error) (<-chan struct{}, <-chan error) {
	c := x.c
	if st.cancels == nil {
		st.cancels = map[int]context.CancelFunc{}
	}
	st.nextID++
	id := st.nextID
	ctx, cancel := context.WithCancel(c)
	st.cancels[id] = cancel
	st.running++
	detached := make(chan struct{})
	var once sync.Once
	x.detach = func() { once.Do(func() { close(detached) }) }
	result := make(chan error, 1)
	go func() {
		err := body(ctx)
		var stop *stopError
		switch {
		case errors.As(err, &stop):
			c.Log().Info("rule stopped", "rule", r.ID, "reason", stop.reason)
			err = nil
		case errors.Is(err, context.Canceled) && ctx.Err() != nil && c.Err() == nil:
			c.Log().Info("rule run cancelled by a new trigger (mode: restart)", "rule", r.ID)
			err = nil
		case err != nil:
			err = fmt.Errorf("rule %s: %w", r.ID, err)
			c.Log().Warn("rule failed", "rule", r.ID, "error", err.Error())
		}
		cancel()
		if x.stored.Load() && c.Err() == nil {
			e.unpark(x) // ended here; one stopped with the plugin resumes
		}
		// Finish before answering: once start returns the event is
		// acked, and the next trigger must not find this run still
		// counted (mode single would drop it).
		e.finish(st, id, r)
		result <- err
	}()
	return detached, result
}

// finish ends a run and starts the next queued one.
func (e *engine) finish(st *ruleState, id int, r *spec.Compiled) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.cancels, id)
	st.running--
	if len(st.queue) > 0 && st.running == 0 {
		next := st.queue[0]
		st.queue = st.queue[1:]
		e.launchRun(st, next.x, r, func(ctx context.Context) error { return e.runActions(ctx, next.x, r, next.data, 0) })
	}
}

// runActions runs a rule's actions in order; the first failure ends the
// run.
func (e *engine) runActions(ctx context.Context, x *run, r *spec.Compiled, d *spec.Data, depth int) error {
	return e.runActionsFrom(ctx, x, r, d, depth, 0)
}

// runActionsFrom runs r's actions from position from on.
func (e *engine) runActionsFrom(ctx context.Context, x *run, r *spec.Compiled, d *spec.Data, depth, from int) error {
	for i, a := range r.Actions {
		if i < from {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		*x.path = append((*x.path)[:depth], i)
		if err := e.do(ctx, x, r, a, d, depth); err != nil {
			var stop *stopError
			if errors.As(err, &stop) || errors.Is(err, context.Canceled) {
				return err
			}
			return fmt.Errorf("actions[%d] (%s): %w", a.Index, a.Action.Action, err)
		}
	}
	return nil
}

func sendOptions(a *spec.CAction) []sdk.SendOption {
	var opts []sdk.SendOption
	switch a.ParseMode {
	case spec.ParseMarkdown:
		opts = append(opts, sdk.Markdown())
	case spec.ParseHTML:
		opts = append(opts, sdk.HTML())
	}
	if a.Silent {
		opts = append(opts, sdk.Silent())
	}
	if a.NoWebpage {
		opts = append(opts, sdk.NoWebpage())
	}
	return opts
}

var errNoMessage = errors.New("needs a triggering message (this trigger has none)")

// triggerChat is the chat of the triggering event.
func triggerChat(x *run) (*pb.Peer, error) {
	if x.chat != nil {
		return x.chat, nil
	}
	p := x.c.ChatPeer()
	if p == nil {
		return nil, errors.New("needs a triggering chat (this trigger has none)")
	}
	return p, nil
}

func (e *engine) do(ctx context.Context, x *run, r *spec.Compiled, a *spec.CAction, d *spec.Data, depth int) error {
	c := x.c
	text := func() (string, error) {
		if a.Text == nil {
			return "", nil
		}
		return a.Text.Execute(d)
	}
	sent := func(m *pb.Message, to *pb.Peer) {
		if p := m.GetChat().GetPeer(); p != nil {
			to = p
		}
		e.own.add(to, m.GetId())
	}
	switch a.Action.Action {
	case spec.ActReply:
		chat, err := triggerChat(x)
		if err != nil {
			return err
		}
		if d.Message.ID == 0 {
			return errNoMessage
		}
		s, err := text()
		if err != nil {
			return err
		}
		m, err := c.Send(chat, s, append(sendOptions(a), sdk.ReplyTo(d.Message.ID))...)
		sent(m, chat)
		return err
	case spec.ActSend, spec.ActNotify:
		ref := a.Chat
		if a.Action.Action == spec.ActNotify {
			ref = spec.ChatRef{Kind: spec.KindSelf}
		}
		to, err := e.peer(c, ref)
		if err != nil {
			return err
		}
		s, err := text()
		if err != nil {
			return err
		}
		m, err := c.Send(to, s, sendOptions(a)...)
		sent(m, to)
		return err
	case spec.ActForward, spec.ActCopy:
		from, err := triggerChat(x)
		if err != nil {
			return err
		}
		if d.Message.ID == 0 {
			return errNoMessage
		}
		to, err := e.peer(c, a.To)
		if err != nil {
			return err
		}
		var opts []sdk.SendOption
		if a.Silent {
			opts = append(opts, sdk.Silent())
		}
		var ms []*pb.Message
		if a.Action.Action == spec.ActCopy {
			ms, err = c.Copy(from, []int64{d.Message.ID}, to, opts...)
		} else {
			ms, err = c.Forward(from, []int64{d.Message.ID}, to, opts...)
		}
		for _, m := range ms {
			sent(m, to)
		}
		return err
	case spec.ActEdit:
		chat, err := triggerChat(x)
		if err != nil {
			return err
		}
		if d.Message.ID == 0 {
			return errNoMessage
		}
		s, err := text()
		if err != nil {
			return err
		}
		_, err = c.Edit(chat, d.Message.ID, s, sendOptions(a)...)
		return err
	case spec.ActDelete:
		chat, err := triggerChat(x)
		if err != nil {
			return err
		}
		if d.Message.ID == 0 {
			return errNoMessage
		}
		return c.Delete(chat, a.Revoke == nil || *a.Revoke, d.Message.ID)
	case spec.ActDeleteOld:
		return e.deleteOld(c, a)
	case spec.ActReact:
		chat, err := triggerChat(x)
		if err != nil {
			return err
		}
		if d.Message.ID == 0 {
			return errNoMessage
		}
		return c.React(chat, d.Message.ID, a.Emoji)
	case spec.ActMarkRead:
		chat, err := triggerChat(x)
		if err != nil {
			return err
		}
		return c.MarkRead(chat, d.Message.ID)
	case spec.ActWait:
		// The rest of the run goes on in the background. It is kept in
		// the store until the wait ends, so a restart resumes it, and
		// only then is the event acknowledged.
		t := e.clock.NewTimer(a.Duration.D())
		defer t.Stop()
		e.park(x, d, e.clock.Now().Add(a.Duration.D()))
		x.detach()
		return e.sleepOn(ctx, x, r, d, t.C())
	case spec.ActCall:
		if depth+1 >= spec.MaxCallDepth {
			return fmt.Errorf("call %s: calls nested deeper than %d", a.Rule, spec.MaxCallDepth)
		}
		target := e.set.Load().ByID[a.Rule]
		if target == nil {
			return fmt.Errorf("call: no rule %q", a.Rule)
		}
		// The called rule's actions are audited under its own id.
		tc := c.WithLabel(target.ID)
		ok, err := e.conditionsHold(tc, target, d)
		if err != nil || !ok {
			return err
		}
		sub := *d
		sub.Rule = spec.RuleData{ID: target.ID, Alias: target.Alias}
		in := *x
		in.c = tc
		return e.runActions(ctx, &in, target, &sub, depth+1)
	case spec.ActStop:
		return &stopError{reason: a.Reason}
	}
	return fmt.Errorf("unknown action %q", a.Action.Action)
}

// peer turns a target reference into a peer; @usernames are resolved once
// and remembered.
func (e *engine) peer(c *sdk.Context, ref spec.ChatRef) (*pb.Peer, error) {
	switch {
	case ref.Kind == spec.KindSelf:
		me, err := c.Me()
		if err != nil {
			return nil, fmt.Errorf("Saved Messages: %w", err)
		}
		return sdk.UserPeer(me.GetId()), nil
	case ref.Username != "":
		e.mu.Lock()
		p, ok := e.peers[ref.Username]
		e.mu.Unlock()
		if ok {
			return p, nil
		}
		chat, err := c.Resolve("@" + ref.Username)
		if err != nil {
			return nil, fmt.Errorf("resolve @%s: %w", ref.Username, err)
		}
		e.mu.Lock()
		e.peers[ref.Username] = chat.GetPeer()
		e.mu.Unlock()
		return chat.GetPeer(), nil
	case ref.ID != 0:
		return peerOfID(ref.ID), nil
	}
	return nil, errors.New("no chat")
}

// deleteOld deletes messages older than the action's age from a chat,
// newest first through the history, at most Limit per run.
func (e *engine) deleteOld(c *sdk.Context, a *spec.CAction) error {
	chat, err := e.peer(c, a.Chat)
	if err != nil {
		return err
	}
	cutoff := e.clock.Now().Add(-a.OlderThan.D()).Unix()
	ownOnly := a.OutgoingOnly == nil || *a.OutgoingOnly
	var ids []int64
	offset := int64(0)
	for page := 0; page < 50 && len(ids) < a.Limit; page++ {
		msgs, err := c.History(chat, 100, offset)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if m.GetDate() < cutoff && (!ownOnly || m.GetOutgoing()) && len(ids) < a.Limit {
				ids = append(ids, m.GetId())
			}
			offset = m.GetId()
		}
		if len(msgs) < 100 {
			break // the start of the chat
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), 100)
		if err := c.Delete(chat, a.Revoke == nil || *a.Revoke, ids[:n]...); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

var _ = time.Second
