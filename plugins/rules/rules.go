package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Version is the rules plugin's version.
const Version = "0.1.0"

const (
	// startupDelay is when the start-up work (runner started triggers,
	// schedule catch-up) runs after the session with the runner opens.
	startupDelay = 10 * time.Millisecond
	// catchUpGrace: an event dated more than this before the plugin
	// started is one that was missed while the runner was down.
	catchUpGrace = 10 * time.Second
	// maxCatchUp bounds the missed runs of one schedule that catch_up: run
	// replays (the most recent ones).
	maxCatchUp = 10
)

// New returns the rules plugin. Its config is spec.Config as JSON (the
// runner config's rules:, handed over by config.RulesPlugin).
func New() *sdk.Plugin { return newEngine(nil).p }

type engine struct {
	p     *sdk.Plugin
	clock sdk.Clock

	started atomic.Pointer[time.Time]
	set     atomic.Pointer[spec.Set]

	mu     sync.Mutex
	jobs   []*sdk.Job
	states map[string]*ruleState
	peers  map[string]*pb.Peer // resolved @usernames
	own    *recent             // messages the rules sent
	once   sync.Once           // start-up work

	process string       // names this process's parked runs
	parks   atomic.Int64 // parked runs so far
}

// newEngine builds the plugin; a nil clock is the system clock (tests pass
// the sdktest clock they also give the harness).
func newEngine(clock sdk.Clock) *engine {
	e := &engine{
		clock:  clock,
		states: map[string]*ruleState{},
		peers:  map[string]*pb.Peer{},
		own:    newRecent(4096),

		process: newProcessID(),
	}
	if e.clock == nil {
		e.clock = systemClock{}
	}
	e.p = sdk.New("rules", Version,
		sdk.WithDescription("YAML automations: triggers, conditions and actions from the runner config's rules:"))
	if clock != nil {
		e.p.SetClock(clock)
	}
	e.p.OnConfigure(e.configure)
	e.p.Handle(sdk.Any, e.onEvent).Named("rules")
	startup := e.p.Every(startupDelay, e.onStartup).Named("rules start-up")
	_ = startup
	return e
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) NewTimer(d time.Duration) sdk.Timer {
	return sysTimer{time.NewTimer(d)}
}

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

// configure compiles the rules and (re)arms their schedules.
func (e *engine) configure(s sdk.Settings) error {
	var cfg spec.Config
	if err := e.p.DecodeConfig(&cfg); err != nil {
		return err
	}
	set, problems := spec.Compile("rules", cfg.Rules)
	var errs []string
	for _, pr := range problems {
		if !pr.Warning {
			errs = append(errs, pr.String())
		}
	}
	if len(errs) > 0 {
		return &sdk.ConfigError{Field: "rules", Reason: strings.Join(errs, "; ")}
	}
	now := e.clock.Now()
	e.started.CompareAndSwap(nil, &now)
	e.set.Store(set)

	e.mu.Lock()
	old := e.jobs
	e.jobs = nil
	e.mu.Unlock()
	for _, j := range old {
		j.Stop()
	}
	var jobs []*sdk.Job
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		for _, t := range r.Triggers {
			if t.Trigger.Trigger != spec.TriggerSchedule {
				continue
			}
			r, t := r, t
			fire := func(c *sdk.Context) error { return e.onSchedule(c, r, t) }
			name := fmt.Sprintf("rule %s trigger %d", r.ID, t.Index)
			if t.Every != 0 {
				jobs = append(jobs, e.p.Every(t.Every.D(), fire).Named(name))
				continue
			}
			j, err := e.p.AddCron(t.Cron, fire)
			if err != nil {
				return &sdk.ConfigError{Field: fmt.Sprintf("rules[%d].triggers[%d]", r.Index, t.Index), Reason: err.Error()}
			}
			jobs = append(jobs, j.Named(name))
		}
	}
	e.mu.Lock()
	e.jobs = jobs
	e.mu.Unlock()
	return nil
}

func (e *engine) startTime() time.Time {
	if t := e.started.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

func (e *engine) state(id string) *ruleState {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.states[id]
	if !ok {
		st = &ruleState{}
		e.states[id] = st
	}
	return st
}

// onEvent finds the rules the event triggers and starts them.
func (e *engine) onEvent(c *sdk.Context) error {
	set := e.set.Load()
	if set == nil {
		return nil
	}
	ev := c.Event()
	if m := messageOf(ev); m != nil && e.own.has(m.GetChat().GetPeer(), m.GetId()) {
		return nil // a rule's own message never triggers rules
	}
	// A message's own date is when it was written; the event's may be
	// when the runner fetched it after coming back.
	date := ev.GetDate()
	if m := messageOf(ev); m != nil && m.GetDate() > 0 {
		date = m.GetDate()
	}
	missed := date > 0 && time.Unix(date, 0).Before(e.startTime().Add(-catchUpGrace))
	var errs []error
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		for _, t := range r.Triggers {
			data, ok := e.match(c, r, t)
			if !ok {
				continue
			}
			if missed && r.CatchUp == spec.CatchUpSkip {
				c.Log().Debug("skipping a trigger missed while the runner was down", "rule", r.ID)
				break
			}
			data.Trigger.Missed = missed
			if err := e.trigger(c, r, data); err != nil {
				errs = append(errs, err)
			}
			break // one run per rule per event
		}
	}
	return errors.Join(errs...)
}

// onSchedule fires a schedule trigger.
func (e *engine) onSchedule(c *sdk.Context, r *spec.Compiled, t *spec.CTrigger) error {
	now := e.clock.Now()
	if err := e.setLastRun(c, r, t, now); err != nil {
		c.Log().Warn("recording a schedule run", "rule", r.ID, "error", err.Error())
	}
	data := e.baseData(r, t)
	data.Trigger.ScheduledAt = now.In(t.Location)
	return e.trigger(c, r, data)
}

// onStartup runs once per plugin process, shortly after the first
// session opens: started triggers, schedule catch-up, and a check of the
// @usernames the rules send to.
func (e *engine) onStartup(c *sdk.Context) error {
	first := false
	e.once.Do(func() { first = true })
	if !first {
		return nil
	}
	go e.stopStartupJob()
	set := e.set.Load()
	if set == nil {
		return nil
	}
	var errs []error
	if err := e.resumeParked(c); err != nil {
		errs = append(errs, err)
	}
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		for _, t := range r.Triggers {
			switch t.Trigger.Trigger {
			case spec.TriggerStarted:
				if err := e.trigger(c, r, e.baseData(r, t)); err != nil {
					errs = append(errs, err)
				}
			case spec.TriggerSchedule:
				if err := e.catchUp(c, r, t); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	e.checkTargets(c, set)
	return errors.Join(errs...)
}

func (e *engine) stopStartupJob() {
	for _, j := range e.p.Jobs() {
		if j.Name() == "rules start-up" {
			j.Stop()
		}
	}
}

// checkTargets resolves the @usernames actions send to, so that a wrong
// one shows in the log at start rather than when the rule first runs.
func (e *engine) checkTargets(c *sdk.Context, set *spec.Set) {
	for _, r := range set.Rules {
		for _, a := range r.Actions {
			for _, ref := range []spec.ChatRef{a.Chat, a.To} {
				if ref.Username == "" {
					continue
				}
				if _, err := e.peer(c.WithLabel(r.ID), ref); err != nil {
					c.Log().Error("a rule's chat does not resolve; its action will fail", "rule", r.ID, "chat", ref.String(), "error", err.Error())
				}
			}
		}
	}
}

func lastRunKey(r *spec.Compiled, t *spec.CTrigger) string {
	return fmt.Sprintf("last_run/%s/%d", r.ID, t.Index)
}

func (e *engine) setLastRun(c *sdk.Context, r *spec.Compiled, t *spec.CTrigger, at time.Time) error {
	return c.KV().Set(lastRunKey(r, t), []byte(at.UTC().Format(time.RFC3339Nano)))
}

// catchUp replays the runs of a schedule missed since its last run (kept
// in the plugin's store), when the rule says catch_up: run.
func (e *engine) catchUp(c *sdk.Context, r *spec.Compiled, t *spec.CTrigger) error {
	now := e.clock.Now()
	raw, found, err := c.KV().Get(lastRunKey(r, t))
	if err != nil {
		return fmt.Errorf("rule %s: read last run: %w", r.ID, err)
	}
	if !found {
		return e.setLastRun(c, r, t, now)
	}
	last, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return e.setLastRun(c, r, t, now)
	}
	var missed []time.Time
	if t.Every != 0 {
		for at := last.Add(t.Every.D()); !at.After(now); at = at.Add(t.Every.D()) {
			missed = append(missed, at)
			if len(missed) > maxCatchUp {
				missed = missed[1:]
			}
		}
	} else {
		for at := t.Schedule.Next(last); !at.IsZero() && !at.After(now); at = t.Schedule.Next(at) {
			missed = append(missed, at)
			if len(missed) > maxCatchUp {
				missed = missed[1:]
			}
		}
	}
	if err := e.setLastRun(c, r, t, now); err != nil {
		return err
	}
	if len(missed) == 0 {
		return nil
	}
	if r.CatchUp != spec.CatchUpRun {
		c.Log().Info("skipping schedule runs missed while the runner was down", "rule", r.ID, "missed", len(missed))
		return nil
	}
	var errs []error
	for _, at := range missed {
		data := e.baseData(r, t)
		data.Trigger.ScheduledAt = at.In(t.Location)
		data.Trigger.Missed = true
		if err := e.trigger(c, r, data); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// trigger checks the rule's conditions and starts a run by its mode.
// Every action of the run carries the rule's id as its label, so the
// audit log says which rule made it, not just "plugin:rules".
func (e *engine) trigger(c *sdk.Context, r *spec.Compiled, data *spec.Data) error {
	c = c.WithLabel(r.ID)
	ok, err := e.conditionsHold(c, r, data)
	if err != nil {
		return fmt.Errorf("rule %s: conditions: %w", r.ID, err)
	}
	if !ok {
		return nil
	}
	if err := e.recordCooldowns(c, r, data); err != nil {
		c.Log().Warn("recording a cooldown", "rule", r.ID, "error", err.Error())
	}
	return e.start(c, r, data)
}

func (e *engine) baseData(r *spec.Compiled, t *spec.CTrigger) *spec.Data {
	d := &spec.Data{
		Rule:    spec.RuleData{ID: r.ID, Alias: r.Alias},
		Trigger: spec.TriggerData{Kind: t.Trigger.Trigger, ID: t.ID},
		Now:     e.clock.Now().In(r.Location),
		Groups:  map[string]string{},
	}
	return d
}

// messageOf is the new or edited message of an event.
func messageOf(ev *pb.Event) *pb.Message {
	if m := ev.GetNewMessage(); m != nil {
		return m
	}
	return ev.GetEditedMessage()
}

// match reports whether t fires for the event in c, with the template data
// it makes.
func (e *engine) match(c *sdk.Context, r *spec.Compiled, t *spec.CTrigger) (*spec.Data, bool) {
	ev := c.Event()
	d := e.baseData(r, t)
	switch t.Trigger.Trigger {
	case spec.TriggerMessage:
		if ev.GetNewMessage() == nil {
			return nil, false
		}
	case spec.TriggerEdited:
		if ev.GetEditedMessage() == nil {
			return nil, false
		}
	case spec.TriggerDeleted:
		del := ev.GetDeletedMessages()
		if del == nil {
			return nil, false
		}
		if ids := del.GetMessageIds(); len(ids) > 0 {
			d.Message.ID = ids[0]
		}
		d.Chat = chatData(del.GetChat())
		return d, true
	case spec.TriggerCommand:
		m := ev.GetNewMessage()
		if m == nil {
			return nil, false
		}
		prefix := e.p.Settings().CommandPrefix
		rest, ok := strings.CutPrefix(m.GetText(), prefix+t.Command)
		if !ok || (rest != "" && !startsWithSpace(rest)) {
			return nil, false
		}
		d.Command = t.Command
		d.ArgText = strings.TrimSpace(rest)
		d.Args = strings.Fields(rest)
	case spec.TriggerRegex:
		m := ev.GetNewMessage()
		if m == nil && t.Edited {
			m = ev.GetEditedMessage()
		}
		if m == nil {
			return nil, false
		}
		sub := t.Regex.FindStringSubmatch(m.GetText())
		if sub == nil {
			return nil, false
		}
		d.Match = sub
		for i, name := range t.Regex.SubexpNames() {
			if name != "" && i < len(sub) {
				d.Groups[name] = sub[i]
			}
		}
	case spec.TriggerReaction:
		re := ev.GetReaction()
		if re == nil {
			return nil, false
		}
		emoji := ""
		for _, rc := range re.GetReactions() {
			if rc.GetCount() > 0 && (t.Emoji == "" || rc.GetReaction() == t.Emoji) {
				emoji = rc.GetReaction()
				break
			}
		}
		if t.Emoji != "" && emoji == "" {
			return nil, false
		}
		d.Trigger.Emoji = emoji
		d.Message.ID = re.GetMessageId()
		d.Chat = chatData(re.GetChat())
		d.Sender = userData(re.GetUser())
		return d, true
	case spec.TriggerMember:
		ca := ev.GetChatAction()
		if ca == nil {
			return nil, false
		}
		var kind string
		switch ca.GetAction() {
		case pb.ChatActionKind_CHAT_ACTION_KIND_JOINED, pb.ChatActionKind_CHAT_ACTION_KIND_ADDED:
			kind = spec.MemberJoined
		case pb.ChatActionKind_CHAT_ACTION_KIND_LEFT, pb.ChatActionKind_CHAT_ACTION_KIND_REMOVED:
			kind = spec.MemberLeft
		default:
			return nil, false
		}
		if t.Event != spec.MemberAny && t.Event != kind {
			return nil, false
		}
		d.Trigger.Member = kind
		d.Chat = chatData(ca.GetChat())
		who := ca.GetActor()
		if us := ca.GetUsers(); len(us) > 0 {
			who = us[0]
		}
		d.Sender = userData(who)
		d.Message.ID = ca.GetMessageId()
		return d, true
	default:
		return nil, false
	}
	m := messageOf(ev)
	d.Message = spec.MessageData{
		ID: m.GetId(), Text: m.GetText(), Outgoing: m.GetOutgoing(),
		ReplyTo: m.GetReplyToMessageId(), Date: time.Unix(m.GetDate(), 0).In(r.Location),
	}
	d.Chat = chatData(m.GetChat())
	d.Sender = userData(m.GetSender())
	return d, true
}

func startsWithSpace(s string) bool {
	return s != "" && strings.ContainsRune(" \t\n\r", rune(s[0]))
}

// Bot API style ids: what users write in configs.
const channelBase = 1_000_000_000_000

// botID is a peer's Bot API style id.
func botID(p *pb.Peer) int64 {
	switch p.GetKind() {
	case pb.PeerKind_PEER_KIND_CHAT:
		return -p.GetId()
	case pb.PeerKind_PEER_KIND_CHANNEL:
		return -channelBase - p.GetId()
	}
	return p.GetId()
}

// peerOfID is the inverse of botID.
func peerOfID(id int64) *pb.Peer {
	switch {
	case id > 0:
		return sdk.UserPeer(id)
	case id < -channelBase:
		return sdk.ChannelPeer(-id - channelBase)
	default:
		return sdk.ChatPeer(-id)
	}
}

var chatKinds = map[pb.ChatType]string{
	pb.ChatType_CHAT_TYPE_PRIVATE:    spec.KindPrivate,
	pb.ChatType_CHAT_TYPE_SELF:       spec.KindSelf,
	pb.ChatType_CHAT_TYPE_GROUP:      spec.KindGroup,
	pb.ChatType_CHAT_TYPE_SUPERGROUP: "supergroup",
	pb.ChatType_CHAT_TYPE_CHANNEL:    spec.KindChannel,
}

func chatData(c *pb.Chat) spec.ChatData {
	if c == nil {
		return spec.ChatData{}
	}
	return spec.ChatData{ID: botID(c.GetPeer()), Title: c.GetTitle(), Username: c.GetUsername(), Kind: chatKinds[c.GetType()]}
}

func userData(u *pb.User) spec.UserData {
	if u == nil {
		return spec.UserData{}
	}
	name := strings.TrimSpace(u.GetFirstName() + " " + u.GetLastName())
	mention := name
	if u.GetUsername() != "" {
		mention = "@" + u.GetUsername()
	}
	return spec.UserData{
		ID: u.GetId(), FirstName: u.GetFirstName(), LastName: u.GetLastName(), Username: u.GetUsername(),
		Name: name, Mention: mention, IsContact: u.GetContact(), IsBot: u.GetBot(), IsSelf: u.GetSelf(),
	}
}

// recent remembers the last n messages the rules sent.
type recent struct {
	mu   sync.Mutex
	n    int
	keys []string
	set  map[string]bool
}

func newRecent(n int) *recent { return &recent{n: n, set: map[string]bool{}} }

func recentKey(p *pb.Peer, id int64) string { return fmt.Sprintf("%s/%d", sdk.PeerString(p), id) }

func (r *recent) add(p *pb.Peer, id int64) {
	if p == nil || id == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := recentKey(p, id)
	if r.set[k] {
		return
	}
	r.set[k] = true
	r.keys = append(r.keys, k)
	if len(r.keys) > r.n {
		delete(r.set, r.keys[0])
		r.keys = r.keys[1:]
	}
}

func (r *recent) has(p *pb.Peer, id int64) bool {
	if p == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set[recentKey(p, id)]
}

var _ context.Context = (*sdk.Context)(nil)
