package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Problem is something wrong with a rule, located by its key path
// ("rules[2].actions[0].text").
type Problem struct {
	Path string
	Msg  string
	// Warning: worth telling, but the rules still run.
	Warning bool
}

func (p Problem) String() string { return p.Path + ": " + p.Msg }

// Set is a compiled, checked set of rules, ready to run.
type Set struct {
	Rules []*Compiled
	ByID  map[string]*Compiled
}

// Compiled is a rule with its defaults applied and everything parsed.
type Compiled struct {
	Rule
	Index      int
	Location   *time.Location
	Triggers   []*CTrigger
	Conditions []*CCondition
	Actions    []*CAction
}

// Name is the rule's alias, or its id.
func (c *Compiled) Name() string {
	if c.Alias != "" {
		return c.Alias
	}
	return c.ID
}

// CTrigger is a compiled trigger.
type CTrigger struct {
	Trigger
	Index int
	Regex *regexp.Regexp
	// Schedule (cron and at) and Location; Every for intervals.
	Schedule cron.Schedule
	Location *time.Location
}

// CCondition is a compiled condition.
type CCondition struct {
	Condition
	Chats      []ChatRef
	Users      []ChatRef
	Regex      *regexp.Regexp
	After      int // minutes after midnight; -1 when unset
	Before     int
	Weekdays   []time.Weekday
	Location   *time.Location
	Conditions []*CCondition
	// Key identifies a cooldown condition in the plugin's store.
	Key string
}

// CAction is a compiled action.
type CAction struct {
	Action
	Index int
	Text  *Template
	Chat  ChatRef
	To    ChatRef
}

// ChatRef is a parsed Ref: exactly one of ID, Username, Kind is set.
type ChatRef struct {
	ID       int64
	Username string // lowercase, without @
	// Kind: self, or (chats only) private, group, channel.
	Kind string
}

func (r ChatRef) String() string {
	switch {
	case r.Username != "":
		return "@" + r.Username
	case r.Kind != "":
		return r.Kind
	}
	return strconv.FormatInt(r.ID, 10)
}

// Chat kinds usable in chat conditions and kinds lists.
const (
	KindPrivate = "private"
	KindGroup   = "group"
	KindChannel = "channel"
	KindSelf    = "self"
)

// ChatKinds lists the chat kinds.
var ChatKinds = []string{KindPrivate, KindGroup, KindChannel, KindSelf}

var (
	idRe       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	usernameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{3,31}$`)
	clockRe    = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)
	commandRe  = regexp.MustCompile(`^[^\s]{1,64}$`)
)

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a cron spec as the rules plugin runs it (the SDK's
// syntax: five fields, an optional leading seconds field, descriptors such
// as @daily, an optional CRON_TZ= prefix).
func ParseCron(s string) (cron.Schedule, error) { return cronParser.Parse(s) }

// Weekdays in config order.
var weekdayNames = map[string]time.Weekday{
	"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
	"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
}

// WeekdayNames lists the weekday names a config may use.
var WeekdayNames = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// MaxCallDepth bounds nested call actions, against loops.
const MaxCallDepth = 8

type checker struct {
	problems []Problem
}

func (c *checker) errorf(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) warnf(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// Compile checks rules and compiles them. Paths in problems start with
// prefix ("rules"); rule i is prefix[i]. The Set is usable only when no
// problem is an error.
func Compile(prefix string, rules []Rule) (*Set, []Problem) {
	c := &checker{}
	set := &Set{ByID: map[string]*Compiled{}}
	for i, r := range rules {
		path := fmt.Sprintf("%s[%d]", prefix, i)
		cr := c.rule(path, r)
		cr.Index = i
		set.Rules = append(set.Rules, cr)
		if r.ID == "" {
			continue
		}
		if prev, dup := set.ByID[r.ID]; dup {
			c.errorf(path+".id", "%q is already the id of %s[%d]", r.ID, prefix, prev.Index)
			continue
		}
		set.ByID[r.ID] = cr
	}
	called := map[string]bool{}
	for _, cr := range set.Rules {
		path := fmt.Sprintf("%s[%d]", prefix, cr.Index)
		for _, a := range cr.Actions {
			if a.Action.Action != ActCall || a.Rule == "" {
				continue
			}
			ap := fmt.Sprintf("%s.actions[%d].rule", path, a.Index)
			target, ok := set.ByID[a.Rule]
			switch {
			case !ok:
				ids := make([]string, 0, len(set.ByID))
				for id := range set.ByID {
					ids = append(ids, id)
				}
				slices.Sort(ids)
				msg := fmt.Sprintf("no rule has the id %q", a.Rule)
				if s := Suggest(a.Rule, ids); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				c.errorf(ap, "%s", msg)
			case target == cr:
				c.errorf(ap, "a rule cannot call itself")
			default:
				called[a.Rule] = true
			}
		}
	}
	for _, cr := range set.Rules {
		if len(cr.Rule.Triggers) == 0 && cr.ID != "" && !called[cr.ID] {
			c.errorf(fmt.Sprintf("%s[%d].triggers", prefix, cr.Index), "required: at least one trigger (or call this rule from another rule's call action)")
		}
	}
	if cyc := callCycle(set); cyc != "" {
		c.errorf(fmt.Sprintf("%s[%d]", prefix, set.ByID[strings.SplitN(cyc, " → ", 2)[0]].Index), "call actions form a loop: %s", cyc)
	}
	return set, c.problems
}

// callCycle finds a loop of call actions, as "a → b → a".
func callCycle(set *Set) string {
	state := map[string]int{} // 1 visiting, 2 done
	var stack []string
	var found string
	var visit func(id string) bool
	visit = func(id string) bool {
		state[id] = 1
		stack = append(stack, id)
		for _, a := range set.ByID[id].Actions {
			if a.Action.Action != ActCall {
				continue
			}
			if _, ok := set.ByID[a.Rule]; !ok || a.Rule == id {
				continue
			}
			switch state[a.Rule] {
			case 1:
				i := slices.Index(stack, a.Rule)
				found = strings.Join(append(slices.Clone(stack[i:]), a.Rule), " → ")
				return true
			case 0:
				if visit(a.Rule) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = 2
		return false
	}
	for _, cr := range set.Rules {
		if cr.ID != "" && state[cr.ID] == 0 && set.ByID[cr.ID] == cr && visit(cr.ID) {
			return found
		}
	}
	return ""
}

func (c *checker) rule(path string, r Rule) *Compiled {
	cr := &Compiled{Rule: r}
	switch {
	case r.ID == "":
		c.errorf(path+".id", "required: a short id such as away_message (used by call actions and in logs)")
	case !idRe.MatchString(r.ID):
		c.errorf(path+".id", "%q: use lowercase letters, digits, - and _ (at most 64), starting with a letter or digit", r.ID)
	}
	if cr.Mode == "" {
		cr.Mode = ModeSingle
	}
	if !slices.Contains(Modes, cr.Mode) {
		c.enumError(path+".mode", cr.Mode, Modes)
	}
	switch {
	case r.Max != 0 && cr.Mode != ModeQueued && cr.Mode != ModeParallel:
		c.errorf(path+".max", "only used with mode: queued or parallel (mode is %s)", cr.Mode)
	case r.Max < 0 || r.Max > 1000:
		c.errorf(path+".max", "must be between 1 and 1000, got %d", r.Max)
	case r.Max == 0:
		cr.Max = DefaultMax
	}
	if cr.CatchUp == "" {
		cr.CatchUp = CatchUpSkip
	}
	if !slices.Contains([]string{CatchUpSkip, CatchUpRun}, cr.CatchUp) {
		c.enumError(path+".catch_up", cr.CatchUp, []string{CatchUpSkip, CatchUpRun})
	}
	loc, err := LoadLocation(r.TimeZone)
	if err != nil {
		c.errorf(path+".time_zone", "%v", err)
		loc = time.Local
	}
	cr.Location = loc
	for i, t := range r.Triggers {
		if ct := c.trigger(fmt.Sprintf("%s.triggers[%d]", path, i), t, loc); ct != nil {
			ct.Index = i
			cr.Triggers = append(cr.Triggers, ct)
		}
	}
	for i, cd := range r.Conditions {
		p := fmt.Sprintf("%s.conditions[%d]", path, i)
		if cc := c.condition(p, cd, loc, r.ID+"/"+strconv.Itoa(i), 0); cc != nil {
			cr.Conditions = append(cr.Conditions, cc)
		}
	}
	if len(r.Actions) == 0 {
		c.errorf(path+".actions", "required: at least one action")
	}
	for i, a := range r.Actions {
		if ca := c.action(fmt.Sprintf("%s.actions[%d]", path, i), a); ca != nil {
			ca.Index = i
			cr.Actions = append(cr.Actions, ca)
		}
	}
	return cr
}

func (c *checker) enumError(path, got string, allowed []string) {
	msg := fmt.Sprintf("expected one of %s; got %q", strings.Join(allowed, ", "), got)
	if s := Suggest(got, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	c.errorf(path, "%s", msg)
}

func kinds(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TriggerKinds, ConditionKinds and ActionKinds list the kinds, sorted.
var (
	TriggerKinds   = kinds(TriggerKeys)
	ConditionKinds = kinds(ConditionKeys)
	ActionKinds    = kinds(ActionKeys)
)

func (c *checker) trigger(path string, t Trigger, ruleLoc *time.Location) *CTrigger {
	if _, ok := TriggerKeys[t.Trigger]; !ok {
		c.kindError(path+".trigger", "trigger", t.Trigger, TriggerKinds)
		return nil
	}
	ct := &CTrigger{Trigger: t, Location: ruleLoc}
	switch t.Trigger {
	case TriggerCommand:
		name := strings.TrimSpace(t.Command)
		switch {
		case name == "":
			c.errorf(path+".command", "required: the command name without the prefix, such as afk")
		case !commandRe.MatchString(name):
			c.errorf(path+".command", "%q: a command name has no spaces", name)
		}
	case TriggerRegex:
		if t.Pattern == "" {
			c.errorf(path+".pattern", "required: a regular expression")
			break
		}
		re, err := regexp.Compile(t.Pattern)
		if err != nil {
			c.errorf(path+".pattern", "invalid regular expression: %v", err)
			break
		}
		ct.Regex = re
	case TriggerMember:
		if ct.Event == "" {
			ct.Event = MemberAny
		}
		if !slices.Contains([]string{MemberJoined, MemberLeft, MemberAny}, ct.Event) {
			c.enumError(path+".event", ct.Event, []string{MemberJoined, MemberLeft, MemberAny})
		}
	case TriggerSchedule:
		c.schedule(path, ct)
	}
	return ct
}

func (c *checker) kindError(path, key, got string, allowed []string) {
	if got == "" {
		c.errorf(path, "required: one of %s", strings.Join(allowed, ", "))
		return
	}
	c.enumError(path, got, allowed)
}

func (c *checker) schedule(path string, ct *CTrigger) {
	if ct.TimeZone != "" {
		loc, err := LoadLocation(ct.TimeZone)
		if err != nil {
			c.errorf(path+".time_zone", "%v", err)
			return
		}
		ct.Location = loc
	}
	n := 0
	for _, set := range []bool{ct.Cron != "", ct.Every != 0, ct.At != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		c.errorf(path, "a schedule needs exactly one of cron (\"0 9 * * 1-5\"), every (\"6h\") and at (\"08:30\")")
		return
	}
	if len(ct.Weekdays) > 0 && ct.At == "" {
		c.errorf(path+".weekdays", "only used with at; a cron spec has its own day-of-week field")
		return
	}
	switch {
	case ct.Cron != "":
		if strings.HasPrefix(ct.Cron, "CRON_TZ=") || strings.HasPrefix(ct.Cron, "TZ=") {
			if ct.TimeZone != "" {
				c.errorf(path+".cron", "the spec names its own time zone; drop time_zone or the CRON_TZ= prefix")
				return
			}
		} else {
			// The rule's or trigger's zone applies.
			ct.Cron = "CRON_TZ=" + ct.Location.String() + " " + ct.Cron
		}
		s, err := ParseCron(ct.Cron)
		if err != nil {
			c.errorf(path+".cron", "invalid cron spec: %v (five fields: minute hour day-of-month month day-of-week, such as \"0 9 * * 1-5\")", err)
			return
		}
		ct.Schedule = s
	case ct.Every != 0:
		if ct.Every.D() < time.Second {
			c.errorf(path+".every", "must be at least 1s, got %s", ct.Every)
		}
	default:
		m := clockRe.FindStringSubmatch(ct.At)
		if m == nil {
			c.errorf(path+".at", "expected a time of day HH:MM such as \"08:30\", got %q", ct.At)
			return
		}
		days := "*"
		if len(ct.Weekdays) > 0 {
			wd, ok := c.weekdays(path+".weekdays", ct.Weekdays)
			if !ok {
				return
			}
			var nums []string
			for _, d := range wd {
				nums = append(nums, strconv.Itoa(int(d)))
			}
			days = strings.Join(nums, ",")
		}
		spec := fmt.Sprintf("CRON_TZ=%s %s %s * * %s", ct.Location, m[2], m[1], days)
		s, err := ParseCron(spec)
		if err != nil {
			c.errorf(path+".at", "%v", err)
			return
		}
		ct.Cron, ct.Schedule = spec, s
	}
}

func (c *checker) weekdays(path string, names []string) ([]time.Weekday, bool) {
	var out []time.Weekday
	ok := true
	for i, n := range names {
		d, found := weekdayNames[strings.ToLower(n)]
		if !found {
			c.enumError(fmt.Sprintf("%s[%d]", path, i), n, WeekdayNames)
			ok = false
			continue
		}
		out = append(out, d)
	}
	return out, ok
}

func (c *checker) condition(path string, cd Condition, ruleLoc *time.Location, key string, depth int) *CCondition {
	if _, ok := ConditionKeys[cd.Condition]; !ok {
		c.kindError(path+".condition", "condition", cd.Condition, ConditionKinds)
		return nil
	}
	if depth > 16 {
		c.errorf(path, "conditions nested more than 16 deep")
		return nil
	}
	cc := &CCondition{Condition: cd, Location: ruleLoc, After: -1, Before: -1, Key: key}
	switch cd.Condition {
	case CondChat:
		if len(cd.Chats) == 0 {
			c.errorf(path+".chats", "required: a list of chat ids, @usernames or kinds (%s)", strings.Join(ChatKinds, ", "))
		}
		for i, r := range cd.Chats {
			ref, err := ParseChatRef(r, true)
			if err != nil {
				c.errorf(fmt.Sprintf("%s.chats[%d]", path, i), "%v", err)
				continue
			}
			cc.Chats = append(cc.Chats, ref)
		}
	case CondSender:
		if len(cd.Users) == 0 {
			c.errorf(path+".users", "required: a list of user ids, @usernames or self")
		}
		for i, r := range cd.Users {
			ref, err := ParseUserRef(r)
			if err != nil {
				c.errorf(fmt.Sprintf("%s.users[%d]", path, i), "%v", err)
				continue
			}
			cc.Users = append(cc.Users, ref)
		}
	case CondChatKind:
		if len(cd.Kinds) == 0 {
			c.errorf(path+".kinds", "required: a list of %s", strings.Join(ChatKinds, ", "))
		}
		for i, k := range cd.Kinds {
			if !slices.Contains(ChatKinds, k) {
				c.enumError(fmt.Sprintf("%s.kinds[%d]", path, i), k, ChatKinds)
			}
		}
	case CondTime:
		if cd.TimeZone != "" {
			loc, err := LoadLocation(cd.TimeZone)
			if err != nil {
				c.errorf(path+".time_zone", "%v", err)
			} else {
				cc.Location = loc
			}
		}
		for _, f := range []struct {
			key string
			val string
			dst *int
		}{{"after", cd.After, &cc.After}, {"before", cd.Before, &cc.Before}} {
			if f.val == "" {
				continue
			}
			m := clockRe.FindStringSubmatch(f.val)
			if m == nil {
				c.errorf(path+"."+f.key, "expected a time of day HH:MM such as \"09:00\", got %q", f.val)
				continue
			}
			h, _ := strconv.Atoi(m[1])
			mi, _ := strconv.Atoi(m[2])
			*f.dst = h*60 + mi
		}
		if cd.After == "" && cd.Before == "" && len(cd.Weekdays) == 0 {
			c.errorf(path, "a time condition needs after, before or weekdays")
		}
		if cd.After != "" && cd.After == cd.Before {
			c.errorf(path+".before", "after and before are the same time")
		}
		if len(cd.Weekdays) > 0 {
			cc.Weekdays, _ = c.weekdays(path+".weekdays", cd.Weekdays)
		}
	case CondText:
		n := 0
		for _, s := range []string{cd.Contains, cd.Equals, cd.StartsWith, cd.EndsWith, cd.Regex} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			c.errorf(path, "a text condition needs exactly one of contains, equals, starts_with, ends_with and regex")
		}
		if cd.Regex != "" {
			expr := cd.Regex
			if !cd.CaseSensitive {
				expr = "(?i)" + expr
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				c.errorf(path+".regex", "invalid regular expression: %v", err)
			}
			cc.Regex = re
		}
	case CondCooldown:
		if cd.Period.D() <= 0 {
			c.errorf(path+".period", "required: how long the rule stays quiet after it ran, such as \"1h\"")
		}
		if cc.Per == "" {
			cc.Per = PerRule
		}
		if !slices.Contains([]string{PerRule, PerChat, PerSender}, cc.Per) {
			c.enumError(path+".per", cc.Per, []string{PerRule, PerChat, PerSender})
		}
	case CondAnd, CondOr, CondNot:
		if len(cd.Conditions) == 0 {
			c.errorf(path+".conditions", "required: the conditions to combine")
		}
		for i, sub := range cd.Conditions {
			p := fmt.Sprintf("%s.conditions[%d]", path, i)
			if s := c.condition(p, sub, ruleLoc, key+"."+strconv.Itoa(i), depth+1); s != nil {
				cc.Conditions = append(cc.Conditions, s)
			}
		}
	}
	return cc
}

func (c *checker) action(path string, a Action) *CAction {
	if _, ok := ActionKeys[a.Action]; !ok {
		c.kindError(path+".action", "action", a.Action, ActionKinds)
		return nil
	}
	ca := &CAction{Action: a}
	text := func(required bool) {
		if a.Text == "" {
			if required {
				c.errorf(path+".text", "required: the message text (a template such as \"Hi {{ .Sender.Name }}\")")
			}
			return
		}
		t, err := ParseTemplate(path, a.Text)
		if err != nil {
			c.errorf(path+".text", "%v", err)
			return
		}
		ca.Text = t
	}
	target := func(key string, r Ref, dst *ChatRef) {
		if r == "" {
			c.errorf(path+"."+key, "required: a chat id, @username or self")
			return
		}
		ref, err := ParseTargetRef(r)
		if err != nil {
			c.errorf(path+"."+key, "%v", err)
			return
		}
		*dst = ref
	}
	switch a.Action {
	case ActReply, ActNotify, ActEdit:
		text(true)
	case ActSend:
		text(true)
		target("chat", a.Chat, &ca.Chat)
	case ActForward, ActCopy:
		target("to", a.To, &ca.To)
	case ActDeleteOld:
		target("chat", a.Chat, &ca.Chat)
		if a.OlderThan.D() <= 0 {
			c.errorf(path+".older_than", "required: the age after which messages are deleted, such as \"24h\"")
		}
		switch {
		case a.Limit == 0:
			ca.Limit = 100
		case a.Limit < 1 || a.Limit > 1000:
			c.errorf(path+".limit", "must be between 1 and 1000, got %d", a.Limit)
		}
	case ActWait:
		switch {
		case a.Duration.D() <= 0:
			c.errorf(path+".duration", "required: how long to wait, such as \"30s\"")
		case a.Duration.D() > 7*24*time.Hour:
			c.errorf(path+".duration", "at most 168h (a week), got %s", a.Duration)
		}
	case ActCall:
		if a.Rule == "" {
			c.errorf(path+".rule", "required: the id of the rule to run")
		}
	}
	if a.ParseMode != "" && !slices.Contains([]string{ParseNone, ParseMarkdown, ParseHTML}, a.ParseMode) {
		c.enumError(path+".parse_mode", a.ParseMode, []string{ParseNone, ParseMarkdown, ParseHTML})
	}
	return ca
}

// ParseChatRef parses a chat reference; kinds (private, group, channel)
// are allowed only where a set of chats is meant.
func ParseChatRef(r Ref, allowKinds bool) (ChatRef, error) {
	s := strings.TrimSpace(string(r))
	switch {
	case s == KindSelf || s == "me":
		return ChatRef{Kind: KindSelf}, nil
	case slices.Contains(ChatKinds, s):
		if !allowKinds {
			return ChatRef{}, fmt.Errorf("%q is a kind of chat, not one chat; use a chat id, @username or self", s)
		}
		return ChatRef{Kind: s}, nil
	case strings.HasPrefix(s, "@"):
		if !usernameRe.MatchString(s[1:]) {
			return ChatRef{}, fmt.Errorf("%q is not a valid username (5-32 letters, digits and _, starting with a letter)", s)
		}
		return ChatRef{Username: strings.ToLower(s[1:])}, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id == 0 {
		want := "a chat id, @username or self"
		if allowKinds {
			want = "a chat id, @username or one of " + strings.Join(ChatKinds, ", ")
		}
		msg := fmt.Sprintf("expected %s; got %q", want, s)
		if usernameRe.MatchString(s) {
			if k := Suggest(s, ChatKinds); k != "" && allowKinds {
				msg += fmt.Sprintf(" (did you mean %q?)", k)
			} else {
				msg += fmt.Sprintf(" (did you mean \"@%s\"?)", s)
			}
		}
		return ChatRef{}, fmt.Errorf("%s", msg)
	}
	return ChatRef{ID: id}, nil
}

// ParseTargetRef parses where an action sends: one chat.
func ParseTargetRef(r Ref) (ChatRef, error) { return ParseChatRef(r, false) }

// ParseUserRef parses a user: a positive id, @username or self.
func ParseUserRef(r Ref) (ChatRef, error) {
	ref, err := ParseChatRef(r, false)
	if err != nil {
		return ref, fmt.Errorf("%s", strings.Replace(err.Error(), "a chat id", "a user id", 1))
	}
	if ref.ID < 0 {
		return ChatRef{}, fmt.Errorf("%d is a group or channel id; a user id is positive", ref.ID)
	}
	return ref, nil
}

// Suggest returns the candidate closest to s, if close enough to be a
// typo.
func Suggest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, k := range candidates {
		d := levenshtein(strings.ToLower(s), k)
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	if best != "" && (bestDist <= limit || (len(s) >= 3 && strings.HasPrefix(best, strings.ToLower(s)))) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
