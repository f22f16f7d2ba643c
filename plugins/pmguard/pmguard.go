// Package pmguard is the first-party private-message guard: strangers who
// write to the account in private get a notice; after max_messages without
// approval the guard stops answering them and reports them in Saved
// Messages. The owner approves people with .approve (in their chat, or
// .approve @user) and revokes with .disapprove; contacts are approved
// automatically. The approved list lives in the runner's KV store.
//
// The plugin contract has no mute, archive or block action yet, so a
// stranger over the limit is reported and ignored (and optionally marked
// read) rather than muted or archived.
package pmguard

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tgrunner/tgrunner/plugins/internal/kit"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Config is the plugin's config section.
type Config struct {
	// Notice is the first answer to a stranger. Placeholders: {name},
	// {limit}.
	Notice string `json:"notice"`
	// MaxMessages without approval before the guard gives up on them.
	MaxMessages int `json:"max_messages"`
	// LimitNotice is the last answer, at max_messages ("" sends none).
	LimitNotice string `json:"limit_notice"`
	// ReportTo is where strangers over the limit are reported (default me:
	// Saved Messages; "" reports nowhere).
	ReportTo string `json:"report_to"`
	// MarkRead marks the messages of strangers over the limit read (needs
	// read_history).
	MarkRead bool `json:"mark_read"`
	// ApproveContacts lets the account's contacts through.
	ApproveContacts bool `json:"approve_contacts"`
	// IgnoreBots lets bots through without a notice.
	IgnoreBots bool `json:"ignore_bots"`
	// ApproveOnOutgoing approves a stranger when the owner writes to them.
	ApproveOnOutgoing bool `json:"approve_on_outgoing"`
	// Approved are users approved in the config: user:ID, ID or @username.
	Approved []string `json:"approved"`

	report   *kit.ChatRef
	approved []kit.ChatRef
}

// Defaults are the values of keys the config leaves out.
func Defaults() Config {
	return Config{
		Notice:          "Hi {name}, this is an automatic message: I don't know you yet, so your messages wait until I approve you. Please don't send more than {limit}.",
		MaxMessages:     3,
		LimitNotice:     "You have sent {limit} messages without approval; I won't answer more of them.",
		ReportTo:        "me",
		ApproveContacts: true,
		IgnoreBots:      true,
	}
}

// Validate checks the config and compiles it.
func (c *Config) Validate() error {
	if c.MaxMessages < 1 {
		return &sdk.ConfigError{Field: "max_messages", Reason: "must be at least 1"}
	}
	if strings.TrimSpace(c.Notice) == "" {
		return &sdk.ConfigError{Field: "notice", Reason: "must not be empty"}
	}
	c.report = nil
	if c.ReportTo != "" {
		r, err := kit.ParseTarget("report_to", c.ReportTo)
		if err != nil {
			return err
		}
		c.report = &r
	}
	var err error
	if c.approved, err = kit.ParseChatRefs("approved", c.Approved); err != nil {
		return err
	}
	for i, r := range c.approved {
		if r.Self || r.Kind != 0 || (r.Peer != nil && r.Peer.GetKind() != pb.PeerKind_PEER_KIND_USER) {
			return &sdk.ConfigError{Field: fmt.Sprintf("approved[%d]", i), Reason: "name a user: user:ID, ID or @username"}
		}
	}
	return nil
}

const (
	approvedPrefix = "approved/"
	countPrefix    = "count/"
)

type plugin struct {
	cfg  *sdk.Config[Config]
	res  kit.Resolver
	sent kit.Sent
}

// New builds the plugin.
func New() *sdk.Plugin {
	p := sdk.New("pmguard", "1.0.0",
		sdk.WithDescription("Keeps strangers out of private messages until you approve them"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send", "edit", "resolve"}, Chats: []string{"private", "self"}}),
	)
	g := &plugin{cfg: sdk.NewConfig(p, Defaults())}
	p.Command("approve", g.approve).Where(kit.ByOwner).Describe("Let a stranger write to you (in their chat, or @user)").Usage("[@user]")
	p.Command("disapprove", g.disapprove).Where(kit.ByOwner).Describe("Take an approval back").Usage("[@user]")
	p.Command("approved", g.list).Where(kit.ByOwner).Describe("List the approved users")
	p.Handle(sdk.And(sdk.NewMessage, sdk.Private, kit.ByOwner), g.ownerWrote).Named("owner-wrote")
	p.Handle(sdk.And(sdk.NewMessage, sdk.Incoming, sdk.Private), g.incoming).Named("guard")
	return p
}

func userKey(prefix string, id int64) string { return prefix + strconv.FormatInt(id, 10) }

func (g *plugin) isApproved(c *sdk.Context, u *pb.User) (bool, error) {
	cfg := g.cfg.Get()
	if (cfg.ApproveContacts && u.GetContact()) || (cfg.IgnoreBots && u.GetBot()) || u.GetSelf() {
		return true, nil
	}
	for _, r := range cfg.approved {
		if (r.Peer != nil && r.Peer.GetId() == u.GetId()) || (r.Username != "" && strings.EqualFold(r.Username, u.GetUsername())) {
			return true, nil
		}
	}
	_, ok, err := c.KV().Get(userKey(approvedPrefix, u.GetId()))
	return ok, err
}

func (g *plugin) incoming(c *sdk.Context) error {
	u := c.Sender()
	if u == nil {
		return nil
	}
	if ok, err := g.isApproved(c, u); err != nil || ok {
		return err
	}
	cfg := g.cfg.Get()
	key := userKey(countPrefix, u.GetId())
	v, _, err := c.KV().Get(key)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(v))
	n++
	if err := c.KV().Set(key, []byte(strconv.Itoa(n))); err != nil {
		return err
	}
	vars := map[string]string{"name": u.GetFirstName(), "limit": strconv.Itoa(cfg.MaxMessages)}
	switch {
	case n == 1:
		if err := g.say(c, kit.Expand(cfg.Notice, vars)); err != nil {
			return err
		}
	case n > cfg.MaxMessages && cfg.MarkRead:
		return c.MarkRead(c.ChatPeer(), c.Message().GetId())
	}
	if n != cfg.MaxMessages {
		return nil
	}
	if cfg.LimitNotice != "" && n > 1 {
		if err := g.say(c, kit.Expand(cfg.LimitNotice, vars)); err != nil {
			return err
		}
	}
	if cfg.report != nil {
		to, err := g.res.Peer(c, *cfg.report)
		if err != nil {
			return err
		}
		who := describe(u)
		how := ".approve user:" + strconv.FormatInt(u.GetId(), 10)
		if u.GetUsername() != "" {
			how = ".approve @" + u.GetUsername()
		}
		text := fmt.Sprintf("🛡 pmguard: %s wrote %d messages without approval; no more answers to them. To let them in: %s (or .approve in their chat).", who, n, how)
		if _, err := c.Send(to, text); err != nil {
			return err
		}
	}
	if cfg.MarkRead {
		return c.MarkRead(c.ChatPeer(), c.Message().GetId())
	}
	return nil
}

func (g *plugin) say(c *sdk.Context, text string) error {
	m, err := c.Reply(text)
	if err != nil {
		return err
	}
	g.sent.Add(c.ChatPeer(), m)
	return nil
}

func describe(u *pb.User) string {
	s := kit.UserName(u)
	if u.GetUsername() != "" && !strings.HasPrefix(s, "@") {
		s += " (@" + u.GetUsername() + ")"
	}
	return s + " [user:" + strconv.FormatInt(u.GetId(), 10) + "]"
}

func (g *plugin) ownerWrote(c *sdk.Context) error {
	m := c.Message()
	if !g.cfg.Get().ApproveOnOutgoing || g.sent.Has(m) || c.Chat().GetType() != pb.ChatType_CHAT_TYPE_PRIVATE {
		return nil
	}
	if strings.HasPrefix(m.GetText(), c.Plugin().Settings().CommandPrefix) {
		return nil
	}
	id := c.ChatPeer().GetId()
	if _, ok, err := c.KV().Get(userKey(approvedPrefix, id)); err != nil || ok {
		return err
	}
	return g.setApproved(c, id, true)
}

func (g *plugin) setApproved(c *sdk.Context, id int64, approved bool) error {
	if err := c.KV().Delete(userKey(countPrefix, id)); err != nil {
		return err
	}
	if approved {
		return c.KV().Set(userKey(approvedPrefix, id), []byte{1})
	}
	return c.KV().Delete(userKey(approvedPrefix, id))
}

// target is the user a command is about: its argument, else the private
// chat it was written in.
func (g *plugin) target(c *sdk.Context) (id int64, name string, err error) {
	arg := c.ArgText()
	if arg == "" {
		chat := c.Chat()
		if chat.GetType() != pb.ChatType_CHAT_TYPE_PRIVATE {
			return 0, "", fmt.Errorf("say whom: %s%s @user, or use it in their private chat", c.Plugin().Settings().CommandPrefix, c.Command())
		}
		return chat.GetPeer().GetId(), kit.ChatName(chat), nil
	}
	ref, err := kit.ParseChatRef("argument", arg)
	if err != nil || ref.Self || ref.Kind != 0 || (ref.Peer != nil && ref.Peer.GetKind() != pb.PeerKind_PEER_KIND_USER) {
		return 0, "", fmt.Errorf("%q is not a user: use @username, user:ID or an id", arg)
	}
	if ref.Peer != nil {
		return ref.Peer.GetId(), arg, nil
	}
	chat, err := c.Resolve("@" + ref.Username)
	if err != nil {
		return 0, "", fmt.Errorf("find %s: %w", arg, err)
	}
	if chat.GetPeer().GetKind() != pb.PeerKind_PEER_KIND_USER {
		return 0, "", fmt.Errorf("%s is not a user", arg)
	}
	return chat.GetPeer().GetId(), kit.ChatName(chat), nil
}

func (g *plugin) approve(c *sdk.Context) error {
	id, name, err := g.target(c)
	if err != nil {
		return g.confirm(c, "⚠️ "+err.Error())
	}
	if err := g.setApproved(c, id, true); err != nil {
		return err
	}
	return g.confirm(c, "✅ Approved "+name)
}

func (g *plugin) disapprove(c *sdk.Context) error {
	id, name, err := g.target(c)
	if err != nil {
		return g.confirm(c, "⚠️ "+err.Error())
	}
	if err := g.setApproved(c, id, false); err != nil {
		return err
	}
	return g.confirm(c, "🚫 "+name+" is no longer approved")
}

func (g *plugin) list(c *sdk.Context) error {
	keys, err := c.KV().List(approvedPrefix)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return g.confirm(c, "Nobody is approved yet (contacts always are).")
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = "user:" + strings.TrimPrefix(k, approvedPrefix)
	}
	return g.confirm(c, "Approved: "+strings.Join(ids, ", "))
}

// confirm turns the owner's command into the answer when edit is granted.
func (g *plugin) confirm(c *sdk.Context, text string) error {
	if !slices.Contains(c.Plugin().Settings().Granted.Actions, "edit") {
		return nil
	}
	_, err := c.Edit(c.ChatPeer(), c.Message().GetId(), text)
	return err
}
