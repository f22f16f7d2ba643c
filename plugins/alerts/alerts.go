// Package alerts is the first-party keyword alert plugin: messages that
// contain a keyword or match a regex, in the chats it watches, are reported
// to Saved Messages (or a chosen chat) with who wrote them, where, and a
// link to the message when the chat has links.
package alerts

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tgrunner/tgrunner/plugins/internal/kit"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Config is the plugin's config section.
type Config struct {
	// Keywords match anywhere in the text, ignoring case unless
	// case_sensitive.
	Keywords []string `json:"keywords"`
	// Patterns are Go regular expressions.
	Patterns []string `json:"patterns"`
	// WholeWords makes keywords match whole words only.
	WholeWords bool `json:"whole_words"`
	// CaseSensitive makes keywords match case.
	CaseSensitive bool `json:"case_sensitive"`
	// Chats to watch: chats or kinds (private, group, supergroup, channel).
	// Empty: every chat the runner delivers to the plugin.
	Chats []string `json:"chats"`
	// ExcludeChats are never watched.
	ExcludeChats []string `json:"exclude_chats"`
	// Notify is where alerts go (default me: Saved Messages).
	Notify string `json:"notify"`
	// IncludeOutgoing also watches the account's own messages (channel
	// posts are always watched).
	IncludeOutgoing bool `json:"include_outgoing"`
	// Edits also watches edited messages (each message alerts once).
	Edits bool `json:"edits"`
	// QuoteChars bounds the quoted text (default 300).
	QuoteChars int `json:"quote_chars"`

	matchers []matcher
	chats    []kit.ChatRef
	exclude  []kit.ChatRef
	notify   kit.ChatRef
}

type matcher struct {
	label string
	re    *regexp.Regexp
}

// Defaults are the values of keys the config leaves out.
func Defaults() Config { return Config{Notify: "me", QuoteChars: 300} }

// Validate checks the config and compiles it.
func (c *Config) Validate() error {
	if len(c.Keywords) == 0 && len(c.Patterns) == 0 {
		return &sdk.ConfigError{Field: "keywords", Reason: "set keywords or patterns: there is nothing to look for"}
	}
	c.matchers = nil
	for i, k := range c.Keywords {
		k = strings.TrimSpace(k)
		if k == "" {
			return &sdk.ConfigError{Field: fmt.Sprintf("keywords[%d]", i), Reason: "empty keyword"}
		}
		expr := regexp.QuoteMeta(k)
		if c.WholeWords {
			expr = `(^|[^\p{L}\p{N}_])` + expr + `($|[^\p{L}\p{N}_])`
		}
		if !c.CaseSensitive {
			expr = "(?i)" + expr
		}
		c.matchers = append(c.matchers, matcher{label: k, re: regexp.MustCompile(expr)})
	}
	for i, p := range c.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return &sdk.ConfigError{Field: fmt.Sprintf("patterns[%d]", i), Reason: err.Error()}
		}
		c.matchers = append(c.matchers, matcher{label: "/" + p + "/", re: re})
	}
	var err error
	if c.chats, err = kit.ParseChatRefs("chats", c.Chats); err != nil {
		return err
	}
	if c.exclude, err = kit.ParseChatRefs("exclude_chats", c.ExcludeChats); err != nil {
		return err
	}
	if c.notify, err = kit.ParseTarget("notify", c.Notify); err != nil {
		return err
	}
	if c.QuoteChars <= 0 {
		return &sdk.ConfigError{Field: "quote_chars", Reason: "must be positive"}
	}
	return nil
}

type plugin struct {
	cfg  *sdk.Config[Config]
	res  kit.Resolver
	sent kit.Sent
}

// New builds the plugin.
func New() *sdk.Plugin {
	p := sdk.New("alerts", "1.0.0",
		sdk.WithDescription("Keyword and regex alerts to Saved Messages, with a link to the message"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send"}, Chats: []string{"self", "private", "group", "channel"}}),
	)
	a := &plugin{cfg: sdk.NewConfig(p, Defaults())}
	p.Handle(sdk.AnyMessage, a.message).Named("alert")
	return p
}

func (a *plugin) message(c *sdk.Context) error {
	cfg := a.cfg.Get()
	m := c.Message()
	if c.Event().GetKind() == pb.EventKind_EVENT_KIND_EDITED_MESSAGE && !cfg.Edits {
		return nil
	}
	if a.sent.Has(m) || (kit.WrittenByMe(m) && !cfg.IncludeOutgoing) {
		return nil
	}
	me := c.Plugin().Settings().Me.GetId()
	chat := m.GetChat()
	if len(cfg.chats) > 0 && !kit.MatchesAny(cfg.chats, chat, me) {
		return nil
	}
	if kit.MatchesAny(cfg.exclude, chat, me) {
		return nil
	}
	var hits []string
	for _, mt := range cfg.matchers {
		if mt.re.MatchString(m.GetText()) {
			hits = append(hits, mt.label)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	if c.Event().GetKind() == pb.EventKind_EVENT_KIND_EDITED_MESSAGE {
		// One alert per message, however often it is edited.
		key := fmt.Sprintf("alerted/%s/%d", sdk.PeerString(chat.GetPeer()), m.GetId())
		if _, ok, err := c.KV().Get(key); err != nil || ok {
			return err
		}
		if err := c.KV().Set(key, []byte{1}); err != nil {
			return err
		}
	}
	to, err := a.res.Peer(c, cfg.notify)
	if err != nil {
		return err
	}
	if kit.SamePeer(to, chat.GetPeer()) && kit.WrittenByMe(m) {
		return nil
	}
	sent, err := c.Send(to, Format(m, hits, cfg.QuoteChars), sdk.NoWebpage())
	if err != nil {
		return err
	}
	a.sent.Add(to, sent)
	return nil
}

// Format renders an alert: what matched, who wrote it where (with a link
// when the chat has message links), and the text quoted.
func Format(m *pb.Message, hits []string, quoteChars int) string {
	var b strings.Builder
	b.WriteString("🔔 Alert: ")
	for i, h := range hits {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + h + `"`)
	}
	b.WriteString("\n")
	who := "A post"
	if s := m.GetSender(); s != nil {
		who = kit.UserName(s)
		if s.GetUsername() != "" && !strings.HasPrefix(who, "@") {
			who += " (@" + s.GetUsername() + ")"
		}
	}
	b.WriteString(who + " " + kit.Where(m.GetChat(), m.GetId()) + "\n")
	text := m.GetText()
	if utf8.RuneCountInString(text) > quoteChars {
		text = string([]rune(text)[:quoteChars]) + "…"
	}
	for _, line := range strings.Split(text, "\n") {
		b.WriteString("> " + line + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
