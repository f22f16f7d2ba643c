// Package forward is the first-party mirroring plugin: it forwards (with the
// "forwarded from" header) or copies (without it) messages from source chats
// and channels to a target, filtered by text, regex, media kind and sender.
// It never sends the same message twice, even across restarts (KV, by
// source chat and message id, and optionally by content), and can strip or
// rewrite links.
package forward

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/plugins/internal/kit"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Config is the plugin's config section.
type Config struct {
	// Sources are the chats to mirror.
	Sources []string `json:"sources"`
	// Target is where messages go.
	Target string `json:"target"`
	// Mode: forward (with the "forwarded from" header) or copy.
	Mode string `json:"mode"`
	// Keywords: when set, only messages containing one (ignoring case).
	Keywords []string `json:"keywords"`
	// Patterns: when set, only messages matching one (Go regexps).
	Patterns []string `json:"patterns"`
	// ExcludePatterns: messages matching one are skipped.
	ExcludePatterns []string `json:"exclude_patterns"`
	// Media: when set, only these kinds: text (no media), photo, video,
	// document, audio, voice, video_note, sticker, animation, poll, ...
	Media []string `json:"media"`
	// Senders: when set, only messages by these users (user:ID, ID or
	// @username).
	Senders []string `json:"senders"`
	// IncludeOutgoing also mirrors the account's own messages (channel
	// posts are always mirrored).
	IncludeOutgoing bool `json:"include_outgoing"`
	// DedupeContent also skips a message whose content (text and media)
	// was already sent within dedupe_window, from any source.
	DedupeContent bool `json:"dedupe_content"`
	// DedupeWindow is how long sent messages are remembered (default
	// 168h).
	DedupeWindow string `json:"dedupe_window"`
	// Links: keep, strip, or rewrite (with link_rewrite). Messages whose
	// links change are copied, whatever the mode.
	Links string `json:"links"`
	// LinkRewrite replaces each link; {url} is the original link.
	LinkRewrite string `json:"link_rewrite"`

	sources  []kit.ChatRef
	target   kit.ChatRef
	include  []*regexp.Regexp
	exclude  []*regexp.Regexp
	media    []pb.MediaKind
	senders  []kit.ChatRef
	window   time.Duration
	textOnly bool
}

// Defaults are the values of keys the config leaves out.
func Defaults() Config { return Config{Mode: "forward", Links: "keep", DedupeWindow: "168h"} }

// Validate checks the config and compiles it.
func (c *Config) Validate() error {
	var err error
	if len(c.Sources) == 0 {
		return &sdk.ConfigError{Field: "sources", Reason: "name at least one source chat"}
	}
	if c.sources, err = kit.ParseChatRefs("sources", c.Sources); err != nil {
		return err
	}
	if c.Target == "" {
		return &sdk.ConfigError{Field: "target", Reason: "name the chat to send to (me for Saved Messages)"}
	}
	if c.target, err = kit.ParseTarget("target", c.Target); err != nil {
		return err
	}
	if c.Mode != "forward" && c.Mode != "copy" {
		return &sdk.ConfigError{Field: "mode", Reason: fmt.Sprintf("%q: want forward or copy", c.Mode)}
	}
	c.include, c.exclude = nil, nil
	for i, k := range c.Keywords {
		if strings.TrimSpace(k) == "" {
			return &sdk.ConfigError{Field: fmt.Sprintf("keywords[%d]", i), Reason: "empty keyword"}
		}
		c.include = append(c.include, regexp.MustCompile("(?i)"+regexp.QuoteMeta(k)))
	}
	for i, p := range c.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return &sdk.ConfigError{Field: fmt.Sprintf("patterns[%d]", i), Reason: err.Error()}
		}
		c.include = append(c.include, re)
	}
	for i, p := range c.ExcludePatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return &sdk.ConfigError{Field: fmt.Sprintf("exclude_patterns[%d]", i), Reason: err.Error()}
		}
		c.exclude = append(c.exclude, re)
	}
	c.media, c.textOnly = nil, false
	for i, m := range c.Media {
		if m == "text" {
			c.textOnly = true
			continue
		}
		k, ok := pb.MediaKind_value["MEDIA_KIND_"+strings.ToUpper(m)]
		if !ok || k == 0 {
			return &sdk.ConfigError{Field: fmt.Sprintf("media[%d]", i), Reason: fmt.Sprintf("unknown media kind %q (text, photo, video, document, audio, voice, video_note, sticker, animation, contact, geo, poll, webpage, other)", m)}
		}
		c.media = append(c.media, pb.MediaKind(k))
	}
	if c.senders, err = kit.ParseChatRefs("senders", c.Senders); err != nil {
		return err
	}
	for i, s := range c.senders {
		if s.Self || s.Kind != 0 || (s.Peer != nil && s.Peer.GetKind() != pb.PeerKind_PEER_KIND_USER) {
			return &sdk.ConfigError{Field: fmt.Sprintf("senders[%d]", i), Reason: "a sender is a user: user:ID, ID or @username"}
		}
	}
	if c.window, err = kit.ParseDuration("dedupe_window", c.DedupeWindow); err != nil {
		return err
	}
	switch c.Links {
	case "keep", "strip":
	case "rewrite":
		if c.LinkRewrite == "" {
			return &sdk.ConfigError{Field: "link_rewrite", Reason: "links: rewrite needs link_rewrite, e.g. https://example.org/go?u={url}"}
		}
	default:
		return &sdk.ConfigError{Field: "links", Reason: fmt.Sprintf("%q: want keep, strip or rewrite", c.Links)}
	}
	return nil
}

type plugin struct {
	cfg *sdk.Config[Config]
	res kit.Resolver
	now func() time.Time
}

// New builds the plugin.
func New() *sdk.Plugin { return build(time.Now) }

func build(now func() time.Time) *sdk.Plugin {
	p := sdk.New("forward", "1.0.0",
		sdk.WithDescription("Mirrors messages from source chats to a target, filtered and deduplicated"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"forward", "send", "edit"}}),
	)
	f := &plugin{cfg: sdk.NewConfig(p, Defaults()), now: now}
	p.Handle(sdk.NewMessage, f.message).Named("mirror")
	p.Every(time.Hour, f.prune).Named("prune dedupe keys")
	return p
}

const (
	seenPrefix = "seen/"
	hashPrefix = "hash/"
)

// Wants reports whether the config's filters let m through.
func (c *Config) Wants(m *pb.Message) bool {
	text := m.GetText()
	if len(c.include) > 0 && !slices.ContainsFunc(c.include, func(re *regexp.Regexp) bool { return re.MatchString(text) }) {
		return false
	}
	if slices.ContainsFunc(c.exclude, func(re *regexp.Regexp) bool { return re.MatchString(text) }) {
		return false
	}
	if len(c.media) > 0 || c.textOnly {
		kind := m.GetMedia().GetKind()
		if !(c.textOnly && kind == pb.MediaKind_MEDIA_KIND_NONE) && !slices.Contains(c.media, kind) {
			return false
		}
	}
	if len(c.senders) > 0 {
		s := m.GetSender()
		ok := slices.ContainsFunc(c.senders, func(r kit.ChatRef) bool {
			if r.Username != "" {
				return strings.EqualFold(r.Username, s.GetUsername())
			}
			return s != nil && r.Peer.GetId() == s.GetId()
		})
		if !ok {
			return false
		}
	}
	return true
}

func (f *plugin) message(c *sdk.Context) error {
	cfg := f.cfg.Get()
	m := c.Message()
	me := c.Plugin().Settings().Me.GetId()
	if !kit.MatchesAny(cfg.sources, m.GetChat(), me) || (kit.WrittenByMe(m) && !cfg.IncludeOutgoing) || !cfg.Wants(m) {
		return nil
	}
	to, err := f.res.Peer(c, cfg.target)
	if err != nil {
		return err
	}
	if kit.SamePeer(to, m.GetChat().GetPeer()) {
		return nil // never mirror the target into itself
	}
	kv := c.KV()
	seenKey := fmt.Sprintf("%s%s/%d", seenPrefix, sdk.PeerString(m.GetChat().GetPeer()), m.GetId())
	if _, ok, err := kv.Get(seenKey); err != nil || ok {
		return err
	}
	now := f.now()
	stamp := []byte(strconv.FormatInt(now.Unix(), 10))
	var hashKey string
	if cfg.DedupeContent {
		hashKey = hashPrefix + contentHash(m)
		if v, ok, err := kv.Get(hashKey); err != nil {
			return err
		} else if ok && !expired(v, now, cfg.window) {
			c.Log().Debug("duplicate content skipped", "message", seenKey)
			return kv.Set(seenKey, stamp)
		}
	}
	if err := f.send(c, cfg, m, to); err != nil {
		return err
	}
	if hashKey != "" {
		if err := kv.Set(hashKey, stamp); err != nil {
			return err
		}
	}
	return kv.Set(seenKey, stamp)
}

func (f *plugin) send(c *sdk.Context, cfg Config, m *pb.Message, to *pb.Peer) error {
	from := m.GetChat().GetPeer()
	text, changed := cfg.rewriteLinks(m.GetText())
	switch {
	case changed && m.GetMedia().GetKind() == pb.MediaKind_MEDIA_KIND_NONE:
		_, err := c.Send(to, text, sdk.NoWebpage())
		return err
	case changed:
		copies, err := c.Copy(from, []int64{m.GetId()}, to)
		if err != nil || len(copies) == 0 {
			return err
		}
		_, err = c.Edit(to, copies[0].GetId(), text)
		return err
	case cfg.Mode == "copy":
		_, err := c.Copy(from, []int64{m.GetId()}, to)
		return err
	}
	_, err := c.Forward(from, []int64{m.GetId()}, to)
	return err
}

var linkRE = regexp.MustCompile(`(?i)\b(?:https?://|www\.|t\.me/)[^\s<>"]+`)

// rewriteLinks strips or rewrites the links of text as configured, and
// says whether anything changed.
func (c *Config) rewriteLinks(text string) (string, bool) {
	if c.Links == "keep" || !linkRE.MatchString(text) {
		return text, false
	}
	out := linkRE.ReplaceAllStringFunc(text, func(url string) string {
		// Keep closing punctuation that ends a sentence, not the link.
		trail := ""
		for len(url) > 0 && strings.ContainsAny(url[len(url)-1:], ".,;:!?)") {
			trail = url[len(url)-1:] + trail
			url = url[:len(url)-1]
		}
		if c.Links == "strip" {
			return trail
		}
		return strings.ReplaceAll(c.LinkRewrite, "{url}", url) + trail
	})
	if c.Links == "strip" {
		out = strings.Join(strings.Fields(out), " ")
	}
	return out, out != text
}

func contentHash(m *pb.Message) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s", strings.Join(strings.Fields(m.GetText()), " "),
		m.GetMedia().GetKind(), m.GetMedia().GetSize(), m.GetMedia().GetFileName())
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func expired(stamp []byte, now time.Time, window time.Duration) bool {
	t, err := strconv.ParseInt(string(stamp), 10, 64)
	return err != nil || now.Sub(time.Unix(t, 0)) > window
}

// prune drops dedupe keys older than the window.
func (f *plugin) prune(c *sdk.Context) error {
	cfg := f.cfg.Get()
	now := f.now()
	for _, prefix := range []string{seenPrefix, hashPrefix} {
		keys, err := c.KV().List(prefix)
		if err != nil {
			return err
		}
		for _, k := range keys {
			v, ok, err := c.KV().Get(k)
			if err != nil {
				return err
			}
			if ok && expired(v, now, cfg.window) {
				if err := c.KV().Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
