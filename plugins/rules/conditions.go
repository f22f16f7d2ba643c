package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// conditionsHold evaluates a rule's conditions (all must hold).
func (e *engine) conditionsHold(c *sdk.Context, r *spec.Compiled, d *spec.Data) (bool, error) {
	for _, cd := range r.Conditions {
		ok, err := e.holds(c, r, cd, d)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// selfID is the account's user id, or 0 when unknown.
func (e *engine) selfID() int64 { return e.p.Settings().Me.GetId() }

func (e *engine) holds(c *sdk.Context, r *spec.Compiled, cd *spec.CCondition, d *spec.Data) (bool, error) {
	switch cd.Condition.Condition {
	case spec.CondChat:
		if d.Chat.ID == 0 && d.Chat.Kind == "" {
			return false, nil
		}
		return slices.ContainsFunc(cd.Chats, func(ref spec.ChatRef) bool { return e.chatMatches(ref, d.Chat) }), nil
	case spec.CondSender:
		if d.Sender.ID == 0 {
			return false, nil
		}
		return slices.ContainsFunc(cd.Users, func(ref spec.ChatRef) bool {
			switch {
			case ref.Kind == spec.KindSelf:
				return d.Sender.IsSelf || d.Sender.ID == e.selfID()
			case ref.Username != "":
				return strings.EqualFold(ref.Username, d.Sender.Username)
			}
			return ref.ID == d.Sender.ID
		}), nil
	case spec.CondChatKind:
		return slices.ContainsFunc(cd.Kinds, func(k string) bool { return kindMatches(k, d.Chat.Kind) }), nil
	case spec.CondIncoming, spec.CondOutgoing:
		out, known := outgoing(c, d, e.selfID())
		if !known {
			return false, nil
		}
		return out == (cd.Condition.Condition == spec.CondOutgoing), nil
	case spec.CondTime:
		return inWindow(e.clock.Now().In(cd.Location), cd), nil
	case spec.CondText:
		return textMatches(cd, d.Message.Text), nil
	case spec.CondContact:
		return d.Sender.IsContact, nil
	case spec.CondCooldown:
		last, found, err := e.lastCooldown(c, r, cd, d)
		if err != nil {
			return false, err
		}
		return !found || e.clock.Now().Sub(last) >= cd.Period.D(), nil
	case spec.CondAnd:
		for _, s := range cd.Conditions {
			ok, err := e.holds(c, r, s, d)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case spec.CondOr:
		for _, s := range cd.Conditions {
			ok, err := e.holds(c, r, s, d)
			if err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
		return false, nil
	case spec.CondNot:
		for _, s := range cd.Conditions {
			ok, err := e.holds(c, r, s, d)
			if err != nil {
				return false, err
			}
			if ok {
				return false, nil
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown condition %q", cd.Condition.Condition)
}

func (e *engine) chatMatches(ref spec.ChatRef, chat spec.ChatData) bool {
	switch {
	case ref.Username != "":
		return strings.EqualFold(ref.Username, chat.Username)
	case ref.Kind != "":
		return kindMatches(ref.Kind, chat.Kind)
	}
	return ref.ID == chat.ID
}

// kindMatches: group covers basic groups and supergroups, as in the
// runner's permissions.
func kindMatches(want, got string) bool {
	if want == spec.KindGroup {
		return got == spec.KindGroup || got == "supergroup"
	}
	return want == got
}

// outgoing says whether the trigger came from the account itself, when
// that is known.
func outgoing(c *sdk.Context, d *spec.Data, self int64) (out, known bool) {
	if c == nil || c.Event() == nil {
		return false, false
	}
	if m := messageOf(c.Event()); m != nil {
		return m.GetOutgoing(), true
	}
	if d.Sender.ID != 0 {
		return d.Sender.IsSelf || d.Sender.ID == self, true
	}
	return false, false
}

func inWindow(now time.Time, cd *spec.CCondition) bool {
	day := now.Weekday()
	mins := now.Hour()*60 + now.Minute()
	after, before := cd.After, cd.Before
	if after >= 0 && before >= 0 && after > before {
		// Wraps midnight: the window started the day before when we are
		// past midnight, which is the day the weekday list means.
		if mins < before {
			day = (day + 6) % 7
		}
		if !(mins >= after || mins < before) {
			return false
		}
	} else {
		if after >= 0 && mins < after {
			return false
		}
		if before >= 0 && mins >= before {
			return false
		}
	}
	return len(cd.Weekdays) == 0 || slices.Contains(cd.Weekdays, day)
}

func textMatches(cd *spec.CCondition, text string) bool {
	if cd.Regex != nil {
		return cd.Regex.MatchString(text)
	}
	norm := func(s string) string {
		if cd.CaseSensitive {
			return s
		}
		return strings.ToLower(s)
	}
	t := norm(text)
	switch {
	case cd.Contains != "":
		return strings.Contains(t, norm(cd.Contains))
	case cd.Equals != "":
		return strings.TrimSpace(t) == norm(cd.Equals)
	case cd.StartsWith != "":
		return strings.HasPrefix(t, norm(cd.StartsWith))
	case cd.EndsWith != "":
		return strings.HasSuffix(t, norm(cd.EndsWith))
	}
	return false
}

// cooldownKey is where a cooldown's last run is kept: per rule, chat or
// sender.
func cooldownKey(cd *spec.CCondition, d *spec.Data) string {
	scope := "rule"
	switch cd.Per {
	case spec.PerChat:
		scope = "chat:" + strconv.FormatInt(d.Chat.ID, 10)
	case spec.PerSender:
		scope = "sender:" + strconv.FormatInt(d.Sender.ID, 10)
	}
	return "cooldown/" + cd.Key + "/" + scope
}

func (e *engine) lastCooldown(c *sdk.Context, r *spec.Compiled, cd *spec.CCondition, d *spec.Data) (time.Time, bool, error) {
	raw, found, err := c.KV().Get(cooldownKey(cd, d))
	if err != nil || !found {
		return time.Time{}, false, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return time.Time{}, false, nil
	}
	return t, true, nil
}

// recordCooldowns starts every cooldown of a rule that is about to run.
func (e *engine) recordCooldowns(c *sdk.Context, r *spec.Compiled, d *spec.Data) error {
	now := []byte(e.clock.Now().UTC().Format(time.RFC3339Nano))
	var err error
	var walk func(cds []*spec.CCondition)
	walk = func(cds []*spec.CCondition) {
		for _, cd := range cds {
			if cd.Condition.Condition == spec.CondCooldown && err == nil {
				err = c.KV().Set(cooldownKey(cd, d), now)
			}
			walk(cd.Conditions)
		}
	}
	walk(r.Conditions)
	return err
}

var _ = pb.ChatType_CHAT_TYPE_PRIVATE
