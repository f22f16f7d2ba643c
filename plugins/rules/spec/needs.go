package spec

import "slices"

// Needs is what a set of rules needs from the runner: the event kinds
// (as the config's plugins[].events spells them), the actions to grant,
// and the chats to grant them in (as plugins[].permissions.chats).
type Needs struct {
	Events  []string
	Actions []string
	Chats   []string
	// Usernames are the @usernames the rules name; they are resolved when
	// the runner is connected.
	Usernames []string
}

// triggerEvents maps trigger kinds to the event kinds they listen to.
var triggerEvents = map[string][]string{
	TriggerMessage:  {"new_message"},
	TriggerCommand:  {"new_message"},
	TriggerRegex:    {"new_message"},
	TriggerEdited:   {"edited_message"},
	TriggerDeleted:  {"deleted_message"},
	TriggerReaction: {"reaction"},
	TriggerMember:   {"chat_action"},
}

// actionGrants maps action kinds to the permissions they use.
var actionGrants = map[string][]string{
	ActReply:     {"send"},
	ActSend:      {"send"},
	ActNotify:    {"send"},
	ActForward:   {"forward"},
	ActCopy:      {"forward"},
	ActEdit:      {"edit"},
	ActDelete:    {"delete"},
	ActDeleteOld: {"history", "delete"},
	ActReact:     {"react"},
	ActMarkRead:  {"read_history"},
}

// inTriggerChat reports whether an action acts in the chat the rule was
// triggered in.
func inTriggerChat(kind string) bool {
	switch kind {
	case ActReply, ActEdit, ActDelete, ActReact, ActMarkRead, ActForward, ActCopy:
		return true
	}
	return false
}

// NeedsOf derives what the compiled rules need. Chats: where an action
// acts in the triggering chat, the chats the rule's top-level chat or
// chat_kind conditions allow (every kind when it has none); plus every
// explicit target, and self for notify.
func NeedsOf(set *Set) Needs {
	var n Needs
	add := func(list *[]string, items ...string) {
		for _, it := range items {
			if !slices.Contains(*list, it) {
				*list = append(*list, it)
			}
		}
	}
	for _, r := range set.Rules {
		if r.Disabled {
			continue
		}
		for _, t := range r.Triggers {
			add(&n.Events, triggerEvents[t.Trigger.Trigger]...)
			if t.Trigger.Trigger == TriggerRegex && t.Edited {
				add(&n.Events, "edited_message")
			}
		}
		for _, a := range r.Actions {
			add(&n.Actions, actionGrants[a.Action.Action]...)
			if inTriggerChat(a.Action.Action) {
				add(&n.Chats, triggerChats(r)...)
			}
			for _, ref := range []ChatRef{a.Chat, a.To} {
				if ref == (ChatRef{}) {
					continue
				}
				add(&n.Chats, ref.String())
				if ref.Username != "" {
					add(&n.Actions, "resolve")
					add(&n.Usernames, "@"+ref.Username)
				}
			}
			if a.Action.Action == ActNotify {
				add(&n.Chats, KindSelf)
			}
		}
		for _, c := range r.Conditions {
			walkConditions(c, func(c *CCondition) {
				for _, ref := range append(slices.Clone(c.Chats), c.Users...) {
					if ref.Username != "" {
						add(&n.Usernames, "@"+ref.Username)
					}
				}
			})
		}
	}
	slices.Sort(n.Events)
	slices.Sort(n.Actions)
	slices.Sort(n.Usernames)
	return n
}

func walkConditions(c *CCondition, fn func(*CCondition)) {
	fn(c)
	for _, s := range c.Conditions {
		walkConditions(s, fn)
	}
}

// triggerChats are the chats a rule may be triggered in, as far as its
// top-level conditions say.
func triggerChats(r *Compiled) []string {
	var chats, kinds []string
	for _, c := range r.Conditions {
		switch c.Condition.Condition {
		case CondChat:
			for _, ref := range c.Chats {
				chats = append(chats, ref.String())
			}
			if len(c.Chats) > 0 {
				return chats
			}
		case CondChatKind:
			kinds = append(kinds, c.Kinds...)
		}
	}
	if len(kinds) > 0 {
		return kinds
	}
	return ChatKinds
}
