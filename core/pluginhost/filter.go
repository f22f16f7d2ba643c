package pluginhost

import (
	"regexp"
	"slices"
	"strings"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// matcher is the host-side evaluation of a config filter and a plugin's
// own subscription: an event is delivered only if both match.
type matcher struct {
	filters []compiledFilter
	rawTL   bool
}

type compiledFilter struct {
	events       []pluginv1.EventKind
	chatTypes    []pluginv1.ChatType
	chats        []ChatRef
	direction    pluginv1.Direction
	textPrefixes []string
	pattern      *regexp.Regexp
}

// newMatcher combines the config filter with the plugin's subscription. A
// chat in the subscription that does not parse is reported, never ignored:
// ignoring it would widen what the plugin receives.
func newMatcher(cfg Filter, sub *pluginv1.Subscription) (*matcher, error) {
	m := &matcher{filters: []compiledFilter{{
		events: cfg.Events, chatTypes: cfg.ChatTypes, chats: cfg.Chats,
		direction: cfg.Direction, textPrefixes: cfg.TextPrefixes, pattern: cfg.Pattern,
	}}}
	if sub != nil {
		f := compiledFilter{
			events: sub.GetEvents(), chatTypes: sub.GetChatTypes(),
			direction: sub.GetDirection(), textPrefixes: sub.GetTextPrefixes(),
		}
		for _, s := range sub.GetChats() {
			ref, err := ParseChatRef(s)
			if err != nil {
				return nil, err
			}
			f.chats = append(f.chats, ref)
		}
		m.filters = append(m.filters, f)
		m.rawTL = sub.GetRawTl()
	}
	return m, nil
}

func (m *matcher) match(ev *pluginv1.Event) bool {
	for i := range m.filters {
		if !m.filters[i].match(ev) {
			return false
		}
	}
	return true
}

func (f *compiledFilter) match(ev *pluginv1.Event) bool {
	if len(f.events) > 0 && !slices.Contains(f.events, ev.GetKind()) {
		return false
	}
	chat := eventChat(ev)
	if len(f.chatTypes) > 0 && (chat == nil || !slices.Contains(f.chatTypes, chat.GetType())) {
		return false
	}
	if len(f.chats) > 0 && (chat == nil || !chatMatchesAny(chat, f.chats)) {
		return false
	}
	msg := eventMessage(ev)
	if msg != nil {
		switch f.direction {
		case pluginv1.Direction_DIRECTION_INCOMING:
			if msg.GetOutgoing() {
				return false
			}
		case pluginv1.Direction_DIRECTION_OUTGOING:
			if !msg.GetOutgoing() {
				return false
			}
		}
	}
	if len(f.textPrefixes) > 0 {
		if msg == nil || !slices.ContainsFunc(f.textPrefixes, func(p string) bool { return strings.HasPrefix(msg.GetText(), p) }) {
			return false
		}
	}
	if f.pattern != nil && (msg == nil || !f.pattern.MatchString(msg.GetText())) {
		return false
	}
	return true
}

// chatMatchesAny reports whether a fully described chat (as events carry
// it) matches one of refs.
func chatMatchesAny(chat *pluginv1.Chat, refs []ChatRef) bool {
	for _, r := range refs {
		switch {
		case r.Peer != nil:
			if p := chat.GetPeer(); p != nil && p.GetKind() == r.Peer.GetKind() && p.GetId() == r.Peer.GetId() {
				return true
			}
		case r.Username != "":
			if chat.GetUsername() != "" && strings.EqualFold(chat.GetUsername(), r.Username) {
				return true
			}
		case r.Kind != "":
			if kindMatches(r.Kind, chat.GetType()) {
				return true
			}
		}
	}
	return false
}

func kindMatches(k ChatKind, t pluginv1.ChatType) bool {
	switch k {
	case ChatAny:
		return true
	case ChatPrivate:
		return t == pluginv1.ChatType_CHAT_TYPE_PRIVATE
	case ChatSelf:
		return t == pluginv1.ChatType_CHAT_TYPE_SELF
	case ChatGroup:
		return t == pluginv1.ChatType_CHAT_TYPE_GROUP || t == pluginv1.ChatType_CHAT_TYPE_SUPERGROUP
	case ChatChannel:
		return t == pluginv1.ChatType_CHAT_TYPE_CHANNEL
	}
	return false
}

func eventMessage(ev *pluginv1.Event) *pluginv1.Message {
	switch p := ev.GetPayload().(type) {
	case *pluginv1.Event_NewMessage:
		return p.NewMessage
	case *pluginv1.Event_EditedMessage:
		return p.EditedMessage
	}
	return nil
}

func eventChat(ev *pluginv1.Event) *pluginv1.Chat {
	switch p := ev.GetPayload().(type) {
	case *pluginv1.Event_NewMessage:
		return p.NewMessage.GetChat()
	case *pluginv1.Event_EditedMessage:
		return p.EditedMessage.GetChat()
	case *pluginv1.Event_DeletedMessages:
		return p.DeletedMessages.GetChat()
	case *pluginv1.Event_ChatAction:
		return p.ChatAction.GetChat()
	case *pluginv1.Event_Reaction:
		return p.Reaction.GetChat()
	case *pluginv1.Event_Read:
		return p.Read.GetChat()
	case *pluginv1.Event_Typing:
		return p.Typing.GetChat()
	}
	return nil
}

// forPlugin returns the event as the plugin should see it: without the raw
// TL bytes unless it subscribed to them. Events may be shared between
// plugins, so it never modifies ev.
func (m *matcher) forPlugin(ev *pluginv1.Event) *pluginv1.Event {
	if m.rawTL || len(ev.GetRawTl()) == 0 {
		return ev
	}
	out := &pluginv1.Event{Seq: ev.Seq, Account: ev.Account, Date: ev.Date, Kind: ev.Kind}
	out.Payload = ev.Payload // payload messages are only read, never written
	return out
}
