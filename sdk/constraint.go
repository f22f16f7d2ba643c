package sdk

import (
	"slices"
	"strings"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// constraint is what a filter tells the runner about the events it can
// match: a necessary condition, never a sufficient one. The runner filters
// with the union of every handler's constraint before an event crosses the
// process boundary, and the router still checks each filter exactly, so a
// constraint may be loose (it only costs traffic) but never too tight.
type constraint struct {
	never     bool
	kinds     []pluginv1.EventKind // nil: any kind
	chatTypes []pluginv1.ChatType  // nil: any chat type
	chats     []string             // nil: any chat; else peer strings
	direction pluginv1.Direction
	prefixes  []string // nil: any text; else only messages starting with one
}

func anyEvent() constraint { return constraint{} }

func neverEvent() constraint { return constraint{never: true} }

func ofKinds(kinds ...pluginv1.EventKind) constraint { return constraint{kinds: kinds} }

var messageKinds = []pluginv1.EventKind{
	pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE,
	pluginv1.EventKind_EVENT_KIND_EDITED_MESSAGE,
}

func intersect[T comparable](a, b []T) []T {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := []T{}
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func union[T comparable](a, b []T) []T {
	if a == nil || b == nil {
		return nil
	}
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func and(a, b constraint) constraint {
	if a.never || b.never {
		return neverEvent()
	}
	out := constraint{
		kinds:     intersect(a.kinds, b.kinds),
		chatTypes: intersect(a.chatTypes, b.chatTypes),
	}
	if (out.kinds != nil && len(out.kinds) == 0) || (out.chatTypes != nil && len(out.chatTypes) == 0) {
		return neverEvent()
	}
	// The same chat may be named twice ("@name" and "user:1"), so an empty
	// intersection is not proof of "never": keep one side, which is looser.
	out.chats = intersect(a.chats, b.chats)
	if out.chats != nil && len(out.chats) == 0 {
		out.chats = a.chats
	}
	switch {
	case a.direction == pluginv1.Direction_DIRECTION_ANY:
		out.direction = b.direction
	case b.direction == pluginv1.Direction_DIRECTION_ANY || a.direction == b.direction:
		out.direction = a.direction
	default:
		return neverEvent()
	}
	switch {
	case a.prefixes == nil:
		out.prefixes = b.prefixes
	case b.prefixes == nil:
		out.prefixes = a.prefixes
	default:
		// A text starting with both p and q starts with the longer of them.
		out.prefixes = []string{}
		for _, p := range a.prefixes {
			for _, q := range b.prefixes {
				longer := ""
				if strings.HasPrefix(p, q) {
					longer = p
				} else if strings.HasPrefix(q, p) {
					longer = q
				} else {
					continue
				}
				if !slices.Contains(out.prefixes, longer) {
					out.prefixes = append(out.prefixes, longer)
				}
			}
		}
		if len(out.prefixes) == 0 {
			return neverEvent()
		}
	}
	return out
}

func or(a, b constraint) constraint {
	if a.never {
		return b
	}
	if b.never {
		return a
	}
	out := constraint{
		kinds:     union(a.kinds, b.kinds),
		chatTypes: union(a.chatTypes, b.chatTypes),
		chats:     union(a.chats, b.chats),
	}
	if a.direction == b.direction {
		out.direction = a.direction
	}
	// A text prefix also rules out events that are not messages (that is
	// how the runner applies it), so it survives a union only when both
	// sides have one.
	out.prefixes = union(a.prefixes, b.prefixes)
	return out
}

// subscription renders the constraint for PluginInfo.
func (c constraint) subscription() *pluginv1.Subscription {
	if c.never {
		// Empty lists mean "any" in the contract, so "nothing" is spelled
		// as a kind no event has.
		return &pluginv1.Subscription{Events: []pluginv1.EventKind{pluginv1.EventKind_EVENT_KIND_UNSPECIFIED}}
	}
	s := &pluginv1.Subscription{
		Events:       slices.Clone(c.kinds),
		ChatTypes:    slices.Clone(c.chatTypes),
		Chats:        slices.Clone(c.chats),
		Direction:    c.direction,
		TextPrefixes: slices.Clone(c.prefixes),
	}
	slices.Sort(s.Events)
	slices.Sort(s.ChatTypes)
	slices.Sort(s.Chats)
	slices.Sort(s.TextPrefixes)
	return s
}
