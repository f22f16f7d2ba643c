package sdk

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Filter decides whether a handler runs for an event. Filters compose with
// And, Or and Not. Besides matching, each filter tells the runner which
// events it can possibly match, so the runner drops the rest before they
// reach the plugin (see PluginInfo.subscription). Write your own with Func.
type Filter interface {
	// Match reports whether the event in c passes. A filter may record
	// what it found in c (a command's arguments, a regex's groups).
	Match(c *Context) bool
	// constraint is what the filter can match, given the command prefix
	// ("" when it is not known yet).
	constraint(prefix string) constraint
}

type filter struct {
	match func(*Context) bool
	cons  func(prefix string) constraint
}

func (f filter) Match(c *Context) bool               { return f.match(c) }
func (f filter) constraint(prefix string) constraint { return f.cons(prefix) }

func fixed(c constraint) func(string) constraint { return func(string) constraint { return c } }

// Func makes a filter from a function. The runner cannot see inside it, so
// it does not narrow the plugin's subscription; combine it with the built-in
// filters (And(Private, Func(...))) to keep traffic down.
func Func(fn func(c *Context) bool) Filter {
	return filter{match: fn, cons: fixed(anyEvent())}
}

// Any matches every event.
var Any Filter = filter{match: func(*Context) bool { return true }, cons: fixed(anyEvent())}

// And matches when every filter matches. Filters run in order and stop at
// the first that fails.
func And(fs ...Filter) Filter {
	return filter{
		match: func(c *Context) bool {
			for _, f := range fs {
				if !f.Match(c) {
					return false
				}
			}
			return true
		},
		cons: func(prefix string) constraint {
			out := anyEvent()
			for _, f := range fs {
				out = and(out, f.constraint(prefix))
			}
			return out
		},
	}
}

// Or matches when any filter matches, trying them in order.
func Or(fs ...Filter) Filter {
	return filter{
		match: func(c *Context) bool {
			for _, f := range fs {
				if f.Match(c) {
					return true
				}
			}
			return false
		},
		cons: func(prefix string) constraint {
			out := neverEvent()
			for _, f := range fs {
				out = or(out, f.constraint(prefix))
			}
			return out
		},
	}
}

// Not matches when f does not.
func Not(f Filter) Filter {
	return filter{
		match: func(c *Context) bool { return !f.Match(c) },
		// The complement of a necessary condition is not one; stay open.
		cons: fixed(anyEvent()),
	}
}

// Kinds matches events of the given kinds.
func Kinds(kinds ...pluginv1.EventKind) Filter {
	kinds = slices.Clone(kinds)
	return filter{
		match: func(c *Context) bool { return slices.Contains(kinds, c.event.GetKind()) },
		cons:  fixed(ofKinds(kinds...)),
	}
}

// The kinds of messages.
var (
	// NewMessage matches new messages, incoming or outgoing.
	NewMessage = Kinds(pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE)
	// Edited matches edits of messages.
	Edited = Kinds(pluginv1.EventKind_EVENT_KIND_EDITED_MESSAGE)
	// AnyMessage matches new and edited messages.
	AnyMessage = Kinds(messageKinds...)
)

func direction(outgoing bool) Filter {
	dir := pluginv1.Direction_DIRECTION_INCOMING
	if outgoing {
		dir = pluginv1.Direction_DIRECTION_OUTGOING
	}
	return filter{
		match: func(c *Context) bool {
			m := c.Message()
			return m != nil && m.GetOutgoing() == outgoing
		},
		cons: fixed(constraint{kinds: messageKinds, direction: dir}),
	}
}

// Directions of messages.
var (
	// Incoming matches messages others sent.
	Incoming = direction(false)
	// Outgoing matches messages the account sent, from any device.
	Outgoing = direction(true)
)

// ChatTypes matches events in chats of the given types.
func ChatTypes(types ...pluginv1.ChatType) Filter {
	types = slices.Clone(types)
	return filter{
		match: func(c *Context) bool {
			ch := c.Chat()
			return ch != nil && slices.Contains(types, ch.GetType())
		},
		cons: fixed(constraint{chatTypes: types}),
	}
}

// Chat types.
var (
	// Private matches one-to-one chats with other users and bots.
	Private = ChatTypes(pluginv1.ChatType_CHAT_TYPE_PRIVATE)
	// Self matches the account's Saved Messages.
	Self = ChatTypes(pluginv1.ChatType_CHAT_TYPE_SELF)
	// Group matches basic groups.
	Group = ChatTypes(pluginv1.ChatType_CHAT_TYPE_GROUP)
	// Supergroup matches supergroups.
	Supergroup = ChatTypes(pluginv1.ChatType_CHAT_TYPE_SUPERGROUP)
	// AnyGroup matches basic groups and supergroups.
	AnyGroup = ChatTypes(pluginv1.ChatType_CHAT_TYPE_GROUP, pluginv1.ChatType_CHAT_TYPE_SUPERGROUP)
	// Channel matches broadcast channels.
	Channel = ChatTypes(pluginv1.ChatType_CHAT_TYPE_CHANNEL)
)

// Chats matches events in the given chats.
func Chats(peers ...*pluginv1.Peer) Filter {
	keys := make([]string, len(peers))
	for i, p := range peers {
		keys[i] = PeerString(p)
	}
	return filter{
		match: func(c *Context) bool {
			ch := c.Chat()
			return ch != nil && slices.Contains(keys, PeerString(ch.GetPeer()))
		},
		cons: fixed(constraint{chats: keys}),
	}
}

// Senders matches messages sent by the given users.
func Senders(userIDs ...int64) Filter {
	ids := slices.Clone(userIDs)
	return filter{
		match: func(c *Context) bool {
			m := c.Message()
			if m == nil {
				return false
			}
			if m.GetSender() != nil {
				return slices.Contains(ids, m.GetSender().GetId())
			}
			from := m.GetFrom()
			return from.GetKind() == pluginv1.PeerKind_PEER_KIND_USER && slices.Contains(ids, from.GetId())
		},
		cons: fixed(ofKinds(messageKinds...)),
	}
}

// TextPrefix matches messages (new or edited) whose text starts with one of
// the prefixes.
func TextPrefix(prefixes ...string) Filter {
	prefixes = slices.Clone(prefixes)
	return filter{
		match: func(c *Context) bool {
			m := c.Message()
			if m == nil {
				return false
			}
			for _, p := range prefixes {
				if strings.HasPrefix(m.GetText(), p) {
					return true
				}
			}
			return false
		},
		cons: fixed(constraint{kinds: messageKinds, prefixes: prefixes}),
	}
}

// Regex matches messages (new or edited) whose text matches expr. The
// handler reads the groups with Context.Matches and Context.Group. It panics
// on an invalid expression, like regexp.MustCompile: registration happens at
// start-up, where a panic is the clearest report.
func Regex(expr string) Filter {
	re := regexp.MustCompile(expr)
	return filter{
		match: func(c *Context) bool {
			m := c.Message()
			if m == nil {
				return false
			}
			sub := re.FindStringSubmatch(m.GetText())
			if sub == nil {
				return false
			}
			c.matches, c.matchNames = sub, re.SubexpNames()
			return true
		},
		cons: fixed(ofKinds(messageKinds...)),
	}
}

// Command matches new messages that are one of the commands: the command
// prefix (default ".", set by the runner's config), the name, then the end
// of the text or white space. The handler reads the arguments with
// Context.Args and Context.ArgText. Names are case-sensitive.
func Command(names ...string) Filter {
	names = slices.Clone(names)
	return filter{
		match: func(c *Context) bool {
			if c.event.GetKind() != pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE {
				return false
			}
			name, args, ok := parseCommand(c.Message().GetText(), c.plugin.prefix())
			if !ok || !slices.Contains(names, name) {
				return false
			}
			c.command, c.argText = name, args
			return true
		},
		cons: func(prefix string) constraint {
			newOnly := []pluginv1.EventKind{pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE}
			if prefix == "" {
				// Not configured yet: the runner's prefix is unknown.
				return constraint{kinds: newOnly}
			}
			ps := make([]string, len(names))
			for i, n := range names {
				ps[i] = prefix + n
			}
			return constraint{kinds: newOnly, prefixes: ps}
		},
	}
}

// parseCommand splits ".name args" into name and args.
func parseCommand(text, prefix string) (name, args string, ok bool) {
	if prefix == "" || !strings.HasPrefix(text, prefix) {
		return "", "", false
	}
	rest := text[len(prefix):]
	end := strings.IndexFunc(rest, unicode.IsSpace)
	if end < 0 {
		end = len(rest)
	}
	name = rest[:end]
	if name == "" {
		return "", "", false
	}
	return name, strings.TrimSpace(rest[end:]), true
}

// Media matches messages with media of the given kinds.
func Media(kinds ...pluginv1.MediaKind) Filter {
	kinds = slices.Clone(kinds)
	return filter{
		match: func(c *Context) bool {
			m := c.Message()
			return m != nil && m.GetMedia() != nil && slices.Contains(kinds, m.GetMedia().GetKind())
		},
		cons: fixed(ofKinds(messageKinds...)),
	}
}

// HasMedia matches messages with any media.
var HasMedia Filter = filter{
	match: func(c *Context) bool {
		m := c.Message()
		return m != nil && m.GetMedia().GetKind() != pluginv1.MediaKind_MEDIA_KIND_NONE
	},
	cons: fixed(ofKinds(messageKinds...)),
}

// validCommandName reports whether name can follow the prefix.
func validCommandName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	return strings.IndexFunc(name, unicode.IsSpace) < 0
}
