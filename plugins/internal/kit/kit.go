// Package kit owns what the first-party plugins share and the SDK does not
// offer: chat references written in plugin configs, durations and time
// zones in config, message links, simple text templates, and remembering
// the messages a plugin sent itself.
package kit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ChatRef is a chat as a plugin config names it:
//
//	me, saved, self        the account's Saved Messages
//	user:ID, chat:ID, channel:ID
//	123 / -45 / -100678    Bot API style ids (user, basic group, channel)
//	@username              resolved through the runner (resolve permission)
//	private, group, supergroup, channel
//	                       a kind of chat (only where a set of chats is
//	                       matched, never as a target)
type ChatRef struct {
	Self     bool
	Peer     *pb.Peer
	Username string
	Kind     pb.ChatType
	// Raw is the text as written, for messages.
	Raw string
}

// ParseChatRef parses one chat reference; field names the config key in
// the error.
func ParseChatRef(field, s string) (ChatRef, error) {
	raw := strings.TrimSpace(s)
	r := ChatRef{Raw: raw}
	switch strings.ToLower(raw) {
	case "":
		return r, &sdk.ConfigError{Field: field, Reason: "empty chat"}
	case "me", "saved", "self", "saved_messages":
		r.Self = true
		return r, nil
	case "private":
		r.Kind = pb.ChatType_CHAT_TYPE_PRIVATE
		return r, nil
	case "group":
		r.Kind = pb.ChatType_CHAT_TYPE_GROUP
		return r, nil
	case "supergroup":
		r.Kind = pb.ChatType_CHAT_TYPE_SUPERGROUP
		return r, nil
	case "channel":
		r.Kind = pb.ChatType_CHAT_TYPE_CHANNEL
		return r, nil
	}
	if strings.HasPrefix(raw, "@") {
		if len(raw) < 2 {
			return r, &sdk.ConfigError{Field: field, Reason: "empty username"}
		}
		r.Username = raw[1:]
		return r, nil
	}
	if strings.Contains(raw, ":") {
		p, err := sdk.ParsePeer(raw)
		if err != nil {
			return r, &sdk.ConfigError{Field: field, Reason: err.Error()}
		}
		r.Peer = p
		return r, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return r, &sdk.ConfigError{Field: field, Reason: fmt.Sprintf("%q is not a chat: use me, @username, user:ID, chat:ID, channel:ID or a numeric id", raw)}
	}
	switch {
	case n > 0:
		r.Peer = sdk.UserPeer(n)
	case n < -1_000_000_000_000:
		r.Peer = sdk.ChannelPeer(-n - 1_000_000_000_000)
	case n < 0:
		r.Peer = sdk.ChatPeer(-n)
	default:
		return r, &sdk.ConfigError{Field: field, Reason: "chat id 0"}
	}
	return r, nil
}

// ParseChatRefs parses a list, naming the failing index.
func ParseChatRefs(field string, ss []string) ([]ChatRef, error) {
	out := make([]ChatRef, 0, len(ss))
	for i, s := range ss {
		r, err := ParseChatRef(fmt.Sprintf("%s[%d]", field, i), s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseTarget parses a chat that messages are sent to: a kind is refused.
func ParseTarget(field, s string) (ChatRef, error) {
	r, err := ParseChatRef(field, s)
	if err == nil && r.Kind != pb.ChatType_CHAT_TYPE_UNSPECIFIED {
		return r, &sdk.ConfigError{Field: field, Reason: fmt.Sprintf("%q is a kind of chat; name one chat", s)}
	}
	return r, err
}

// Matches reports whether the chat is the one (or of the kind) r names.
// selfID is the account's id, for "me".
func (r ChatRef) Matches(chat *pb.Chat, selfID int64) bool {
	switch {
	case chat == nil:
		return false
	case r.Self:
		return chat.GetType() == pb.ChatType_CHAT_TYPE_SELF ||
			(chat.GetPeer().GetKind() == pb.PeerKind_PEER_KIND_USER && chat.GetPeer().GetId() == selfID && selfID != 0)
	case r.Peer != nil:
		return SamePeer(r.Peer, chat.GetPeer())
	case r.Username != "":
		return chat.GetUsername() != "" && strings.EqualFold(chat.GetUsername(), r.Username)
	case r.Kind == pb.ChatType_CHAT_TYPE_GROUP:
		// "group" means any group, as in the runner's grants.
		return chat.GetType() == pb.ChatType_CHAT_TYPE_GROUP || chat.GetType() == pb.ChatType_CHAT_TYPE_SUPERGROUP
	case r.Kind != pb.ChatType_CHAT_TYPE_UNSPECIFIED:
		return chat.GetType() == r.Kind
	}
	return false
}

// MatchesAny reports whether any ref matches; an empty list matches
// nothing.
func MatchesAny(refs []ChatRef, chat *pb.Chat, selfID int64) bool {
	for _, r := range refs {
		if r.Matches(chat, selfID) {
			return true
		}
	}
	return false
}

// SamePeer compares two peers by kind and id.
func SamePeer(a, b *pb.Peer) bool {
	return a != nil && b != nil && a.GetKind() == b.GetKind() && a.GetId() == b.GetId()
}

// Resolver turns chat references into peers, asking the runner for
// usernames once and remembering the answer.
type Resolver struct {
	mu    sync.Mutex
	cache map[string]*pb.Peer
}

// Peer returns the peer r names. "me" needs the account's id from the
// runner; usernames need the resolve permission.
func (res *Resolver) Peer(c *sdk.Context, r ChatRef) (*pb.Peer, error) {
	switch {
	case r.Self:
		me, err := c.Me()
		if err != nil {
			return nil, fmt.Errorf("who am I: %w", err)
		}
		return sdk.UserPeer(me.GetId()), nil
	case r.Peer != nil:
		return r.Peer, nil
	case r.Username != "":
		key := strings.ToLower(r.Username)
		res.mu.Lock()
		p := res.cache[key]
		res.mu.Unlock()
		if p != nil {
			return p, nil
		}
		chat, err := c.Resolve("@" + r.Username)
		if err != nil {
			return nil, fmt.Errorf("resolve @%s: %w", r.Username, err)
		}
		res.mu.Lock()
		if res.cache == nil {
			res.cache = map[string]*pb.Peer{}
		}
		res.cache[key] = chat.GetPeer()
		res.mu.Unlock()
		return chat.GetPeer(), nil
	}
	return nil, fmt.Errorf("%q names a kind of chat, not one chat", r.Raw)
}

// ParseDuration parses a Go duration from config ("90s", "1h30m"); "" is 0.
func ParseDuration(field, s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, &sdk.ConfigError{Field: field, Reason: fmt.Sprintf("%q is not a duration such as 90s, 30m or 24h", s)}
	}
	if d < 0 {
		return 0, &sdk.ConfigError{Field: field, Reason: "must not be negative"}
	}
	return d, nil
}

// ParseZone loads an IANA time zone; "" is UTC.
func ParseZone(field, s string) (*time.Location, error) {
	if s == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, &sdk.ConfigError{Field: field, Reason: fmt.Sprintf("unknown time zone %q (use an IANA name such as Europe/Berlin or UTC)", s)}
	}
	return loc, nil
}

// ChatID renders a peer as the Bot API style id users see in configs.
func ChatID(p *pb.Peer) int64 {
	switch p.GetKind() {
	case pb.PeerKind_PEER_KIND_CHAT:
		return -p.GetId()
	case pb.PeerKind_PEER_KIND_CHANNEL:
		return -1_000_000_000_000 - p.GetId()
	}
	return p.GetId()
}

// UserName is how a user is shown: the full name, else @username, else
// the id.
func UserName(u *pb.User) string {
	if u == nil {
		return "someone"
	}
	name := strings.TrimSpace(u.GetFirstName() + " " + u.GetLastName())
	if name == "" && u.GetUsername() != "" {
		name = "@" + u.GetUsername()
	}
	if name == "" {
		name = "user:" + strconv.FormatInt(u.GetId(), 10)
	}
	return name
}

// ChatName is how a chat is shown: its title, else its peer.
func ChatName(c *pb.Chat) string {
	if t := strings.TrimSpace(c.GetTitle()); t != "" {
		return t
	}
	if c.GetUsername() != "" {
		return "@" + c.GetUsername()
	}
	return sdk.PeerString(c.GetPeer())
}

// MessageLink is a link that opens the message, and whether there is one:
// t.me/USERNAME/MSG for public supergroups and channels, t.me/c/ID/MSG for
// private ones. Private chats and basic groups have no message links.
func MessageLink(chat *pb.Chat, msgID int64) (string, bool) {
	if chat.GetPeer().GetKind() != pb.PeerKind_PEER_KIND_CHANNEL || msgID == 0 {
		return "", false
	}
	if u := chat.GetUsername(); u != "" {
		return fmt.Sprintf("https://t.me/%s/%d", u, msgID), true
	}
	return fmt.Sprintf("https://t.me/c/%d/%d", chat.GetPeer().GetId(), msgID), true
}

// Where says where a message is, for notifications: a link when there is
// one, else "in private chat with NAME" or "in group TITLE".
func Where(chat *pb.Chat, msgID int64) string {
	if link, ok := MessageLink(chat, msgID); ok {
		return "in " + ChatName(chat) + ": " + link
	}
	switch chat.GetType() {
	case pb.ChatType_CHAT_TYPE_PRIVATE:
		return "in private chat with " + ChatName(chat)
	case pb.ChatType_CHAT_TYPE_SELF:
		return "in Saved Messages"
	case pb.ChatType_CHAT_TYPE_GROUP:
		return "in group " + ChatName(chat)
	}
	return "in " + ChatName(chat)
}

// Expand replaces {name} placeholders with vars; unknown placeholders stay
// as written, so a typo shows in the output rather than vanishing.
func Expand(tmpl string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		name := tmpl[i+1 : i+j]
		b.WriteString(tmpl[:i])
		if v, ok := vars[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[i : i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
}

// Sent remembers the ids of messages a plugin sent itself, per chat, so it
// can tell its own outgoing messages from the owner's when their events
// come back. Events of one chat are handled in order, so an id is recorded
// before the event of that message is handled.
type Sent struct {
	mu  sync.Mutex
	ids map[string][]int64
}

const sentPerChat = 64

// Add records a message sent to chat to.
func (s *Sent) Add(to *pb.Peer, m *pb.Message) {
	if m == nil {
		return
	}
	if p := m.GetChat().GetPeer(); p != nil {
		to = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string][]int64{}
	}
	k := sdk.PeerString(to)
	l := append(s.ids[k], m.GetId())
	if len(l) > sentPerChat {
		l = l[len(l)-sentPerChat:]
	}
	s.ids[k] = l
}

// Has reports whether m is a message the plugin sent.
func (s *Sent) Has(m *pb.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.ids[sdk.PeerString(m.GetChat().GetPeer())] {
		if id == m.GetId() {
			return true
		}
	}
	return false
}

// FromOwner reports whether the account itself wrote m: outgoing, and, when
// the author is known, the author is the account. The second check keeps
// a server that marks others' messages as outgoing (the sandbox does so
// in supergroups) from handing the owner's commands to anyone.
func FromOwner(m *pb.Message) bool {
	return m.GetOutgoing() && (m.GetSender() == nil || m.GetSender().GetSelf())
}

// ByOwner is the SDK filter of FromOwner, for the owner's commands. It
// narrows the subscription like sdk.Outgoing does.
var ByOwner = sdk.And(sdk.Outgoing, sdk.Func(func(c *sdk.Context) bool { return FromOwner(c.Message()) }))

// WrittenByMe reports whether the account wrote m as a user. Channel
// posts never count: they have no user author (and the sandbox marks every
// post outgoing, which would make them the account's).
func WrittenByMe(m *pb.Message) bool { return m.GetSender().GetSelf() && !m.GetPost() }
