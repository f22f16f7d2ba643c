// Package autoreply is the first-party away ("AFK") plugin: while the owner
// is away it answers private messages once per sender per period, turns
// itself off when the owner writes, and can turn itself back on after the
// owner has been idle for a while. The owner switches it with .afk [reason]
// and .back. Its state is kept in the runner's KV store, so it survives
// restarts.
package autoreply

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/plugins/internal/kit"
	"github.com/tgrunner/tgrunner/sdk"
)

// Config is the plugin's config section.
type Config struct {
	// Message is the away reply. Placeholders: {name} (the sender's first
	// name), {since} (HH:MM when the owner went away), {ago} (how long).
	Message string `json:"message"`
	// MessageWithReason is used when .afk was given a reason ({reason}).
	MessageWithReason string `json:"message_with_reason"`
	// Period: each sender gets at most one reply per period.
	Period string `json:"period"`
	// Enabled: away from the start, before any .afk or .back.
	Enabled bool `json:"enabled"`
	// OffWhenOwnerWrites: the owner's own messages end the away state.
	OffWhenOwnerWrites bool `json:"off_when_owner_writes"`
	// AutoOnAfter: after the owner has been idle this long, replies start
	// by themselves ("" never).
	AutoOnAfter string `json:"auto_on_after"`
	// OnlyContacts answers only the account's contacts.
	OnlyContacts bool `json:"only_contacts"`
	// IgnoreBots never answers bots.
	IgnoreBots bool `json:"ignore_bots"`
	// IgnoreOutgoing are regexes of the account's own messages that are
	// not the owner writing (other automations' messages).
	IgnoreOutgoing []string `json:"ignore_outgoing"`
	// TimeZone is the zone of {since} (IANA name; default UTC).
	TimeZone string `json:"time_zone"`

	period, autoOn time.Duration
	ignore         []*regexp.Regexp
	loc            *time.Location
}

// Validate checks the config and compiles it.
func (c *Config) Validate() error {
	var err error
	if c.period, err = kit.ParseDuration("period", c.Period); err != nil {
		return err
	}
	if c.autoOn, err = kit.ParseDuration("auto_on_after", c.AutoOnAfter); err != nil {
		return err
	}
	if c.loc, err = kit.ParseZone("time_zone", c.TimeZone); err != nil {
		return err
	}
	if strings.TrimSpace(c.Message) == "" {
		return &sdk.ConfigError{Field: "message", Reason: "must not be empty"}
	}
	c.ignore = nil
	for i, expr := range c.IgnoreOutgoing {
		re, err := regexp.Compile(expr)
		if err != nil {
			return &sdk.ConfigError{Field: fmt.Sprintf("ignore_outgoing[%d]", i), Reason: err.Error()}
		}
		c.ignore = append(c.ignore, re)
	}
	return nil
}

// Defaults are the values of keys the config leaves out.
func Defaults() Config {
	return Config{
		Message:            "Hi {name}, I'm away right now and will answer when I'm back.",
		MessageWithReason:  "Hi {name}, I'm away right now ({reason}) and will answer when I'm back.",
		Period:             "1h",
		OffWhenOwnerWrites: true,
		IgnoreBots:         true,
	}
}

// state is what the plugin keeps in KV under stateKey.
type state struct {
	Away   bool      `json:"away"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Set: .afk or .back was used, so Config.Enabled no longer applies.
	Set bool `json:"set"`
	// LastOwner is when the owner last wrote.
	LastOwner time.Time `json:"last_owner"`
}

const (
	stateKey      = "state"
	repliedPrefix = "replied/"
)

type plugin struct {
	cfg     *sdk.Config[Config]
	sent    kit.Sent
	started time.Time
	now     func() time.Time
}

// New builds the plugin.
func New() *sdk.Plugin { return build(time.Now) }

func build(now func() time.Time) *sdk.Plugin {
	p := sdk.New("autoreply", "1.0.0",
		sdk.WithDescription("Away replies in private chats while you are AFK"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send", "edit"}, Chats: []string{"private"}}),
	)
	a := &plugin{cfg: sdk.NewConfig(p, Defaults()), now: now, started: now()}
	// Commands first: in group 0 the first matching handler runs, so the
	// owner's .afk is never also taken for the owner writing.
	p.Command("afk", a.afk).Where(kit.ByOwner).Describe("Turn away replies on").Usage("[reason]")
	p.Command("back", a.back).Where(kit.ByOwner).Describe("Turn away replies off")
	p.Handle(sdk.And(sdk.NewMessage, kit.ByOwner), a.ownerWrote).Named("owner-wrote")
	p.Handle(sdk.And(sdk.NewMessage, sdk.Incoming, sdk.Private), a.incoming).Named("away-reply")
	return p
}

func (a *plugin) load(c *sdk.Context) (state, error) {
	var st state
	v, ok, err := c.KV().Get(stateKey)
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if !ok {
		if a.cfg.Get().Enabled {
			st.Away, st.Since = true, a.started
		}
		return st, nil
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("decode state: %w", err)
	}
	return st, nil
}

func (a *plugin) save(c *sdk.Context, st state) error {
	b, _ := json.Marshal(st)
	if err := c.KV().Set(stateKey, b); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// msgTime is when the event's message was sent, or now.
func (a *plugin) msgTime(c *sdk.Context) time.Time {
	if d := c.Message().GetDate(); d > 0 {
		return time.Unix(d, 0)
	}
	return a.now()
}

func (a *plugin) afk(c *sdk.Context) error {
	st, err := a.load(c)
	if err != nil {
		return err
	}
	st.Away, st.Set, st.Reason, st.Since = true, true, c.ArgText(), a.msgTime(c)
	if err := a.save(c, st); err != nil {
		return err
	}
	// A new away period: everyone gets the notice again.
	keys, err := c.KV().List(repliedPrefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := c.KV().Delete(k); err != nil {
			return err
		}
	}
	text := "💤 Away replies on"
	if st.Reason != "" {
		text += ": " + st.Reason
	}
	return a.confirm(c, text)
}

func (a *plugin) back(c *sdk.Context) error {
	st, err := a.load(c)
	if err != nil {
		return err
	}
	was := st.Away
	st.Away, st.Set, st.Reason, st.LastOwner = false, true, "", a.msgTime(c)
	if err := a.save(c, st); err != nil {
		return err
	}
	text := "👋 Away replies off"
	if was {
		text += " (away since " + st.Since.In(a.cfg.Get().loc).Format("15:04") + ")"
	}
	return a.confirm(c, text)
}

// confirm turns the owner's command message into the answer, when edit is
// granted: a reply would go to whoever the chat is with.
func (a *plugin) confirm(c *sdk.Context, text string) error {
	if !slices.Contains(c.Plugin().Settings().Granted.Actions, "edit") {
		return nil
	}
	_, err := c.Edit(c.ChatPeer(), c.Message().GetId(), text)
	return err
}

func (a *plugin) ownerWrote(c *sdk.Context) error {
	m := c.Message()
	cfg := a.cfg.Get()
	if a.sent.Has(m) || strings.HasPrefix(m.GetText(), c.Plugin().Settings().CommandPrefix) {
		return nil
	}
	for _, re := range cfg.ignore {
		if re.MatchString(m.GetText()) {
			return nil
		}
	}
	st, err := a.load(c)
	if err != nil {
		return err
	}
	st.LastOwner = a.msgTime(c)
	if st.Away && cfg.OffWhenOwnerWrites {
		st.Away, st.Set, st.Reason = false, true, ""
		c.Log().Info("owner wrote: away replies off")
	}
	return a.save(c, st)
}

func (a *plugin) incoming(c *sdk.Context) error {
	cfg := a.cfg.Get()
	sender := c.Sender()
	if sender == nil || sender.GetSelf() || (cfg.IgnoreBots && sender.GetBot()) || (cfg.OnlyContacts && !sender.GetContact()) {
		return nil
	}
	st, err := a.load(c)
	if err != nil {
		return err
	}
	now := a.msgTime(c)
	away, since := st.Away, st.Since
	if !away && cfg.autoOn > 0 {
		idleSince := st.LastOwner
		if idleSince.IsZero() {
			idleSince = a.started
		}
		if now.Sub(idleSince) >= cfg.autoOn {
			away, since = true, idleSince
		}
	}
	if !away {
		return nil
	}
	key := repliedPrefix + strconv.FormatInt(sender.GetId(), 10)
	if v, ok, err := c.KV().Get(key); err != nil {
		return err
	} else if ok {
		if last, err := strconv.ParseInt(string(v), 10, 64); err == nil && now.Sub(time.Unix(last, 0)) < cfg.period {
			return nil
		}
	}
	tmpl := cfg.Message
	if st.Reason != "" && cfg.MessageWithReason != "" {
		tmpl = cfg.MessageWithReason
	}
	text := kit.Expand(tmpl, map[string]string{
		"name":   sender.GetFirstName(),
		"reason": st.Reason,
		"since":  since.In(cfg.loc).Format("15:04"),
		"ago":    ago(now.Sub(since)),
	})
	reply, err := c.Reply(text)
	if err != nil {
		var fw *sdk.FloodWaitError
		if errors.As(err, &fw) || errors.Is(err, sdk.ErrThrottled) {
			c.Log().Warn("away reply held back", "error", err)
		}
		return err
	}
	a.sent.Add(c.ChatPeer(), reply)
	return c.KV().Set(key, []byte(strconv.FormatInt(now.Unix(), 10)))
}

// ago renders a duration the way people say it: "5 min", "2 h", "3 days".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "a moment"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
