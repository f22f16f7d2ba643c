package sdk_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// recorder collects which handlers ran, in order.
type recorder struct {
	mu  sync.Mutex
	ran []string
}

func (r *recorder) handler(name string, ret error) sdk.HandlerFunc {
	return func(c *sdk.Context) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ran = append(r.ran, name)
		return ret
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ran
	r.ran = nil
	return out
}

func TestFilters(t *testing.T) {
	cases := []struct {
		name   string
		filter sdk.Filter
		event  func() *pluginv1.Event
		want   bool
	}{
		{"command matches", sdk.Command("ping"), func() *pluginv1.Event { return sdktest.PrivateText(".ping") }, true},
		{"command with args", sdk.Command("ping"), func() *pluginv1.Event { return sdktest.PrivateText(".ping a b") }, true},
		{"command is not a prefix of a word", sdk.Command("ping"), func() *pluginv1.Event { return sdktest.PrivateText(".pingo") }, false},
		{"command needs the prefix", sdk.Command("ping"), func() *pluginv1.Event { return sdktest.PrivateText("ping") }, false},
		{"command ignores edits", sdk.Command("ping"), func() *pluginv1.Event { return sdktest.Edit(sdktest.PrivateText(".pong"), ".ping") }, false},
		{"command is case-sensitive", sdk.Command("ping"), func() *pluginv1.Event { return sdktest.PrivateText(".Ping") }, false},
		{"one of several commands", sdk.Command("a", "b"), func() *pluginv1.Event { return sdktest.PrivateText(".b") }, true},
		{"regex", sdk.Regex(`^hi (\w+)$`), func() *pluginv1.Event { return sdktest.GroupText("hi bob") }, true},
		{"regex no match", sdk.Regex(`^hi (\w+)$`), func() *pluginv1.Event { return sdktest.GroupText("hello bob") }, false},
		{"regex sees edits", sdk.Regex(`x`), func() *pluginv1.Event { return sdktest.Edit(sdktest.GroupText("a"), "x") }, true},
		{"incoming", sdk.Incoming, func() *pluginv1.Event { return sdktest.PrivateText("x") }, true},
		{"incoming not outgoing", sdk.Incoming, func() *pluginv1.Event { return sdktest.PrivateText("x", sdktest.Outgoing()) }, false},
		{"outgoing", sdk.Outgoing, func() *pluginv1.Event { return sdktest.GroupText("x", sdktest.Outgoing()) }, true},
		{"private", sdk.Private, func() *pluginv1.Event { return sdktest.PrivateText("x") }, true},
		{"private not group", sdk.Private, func() *pluginv1.Event { return sdktest.GroupText("x") }, false},
		{"group", sdk.Group, func() *pluginv1.Event { return sdktest.GroupText("x") }, true},
		{"supergroup", sdk.Supergroup, func() *pluginv1.Event { return sdktest.SupergroupText("x") }, true},
		{"any group", sdk.AnyGroup, func() *pluginv1.Event { return sdktest.SupergroupText("x") }, true},
		{"channel", sdk.Channel, func() *pluginv1.Event { return sdktest.ChannelPost("x") }, true},
		{"self", sdk.Self, func() *pluginv1.Event { return sdktest.SavedText("x") }, true},
		{"self not private", sdk.Private, func() *pluginv1.Event { return sdktest.SavedText("x") }, false},
		{"chat", sdk.Chats(sdk.ChatPeer(3001)), func() *pluginv1.Event { return sdktest.GroupText("x") }, true},
		{"other chat", sdk.Chats(sdk.ChatPeer(9)), func() *pluginv1.Event { return sdktest.GroupText("x") }, false},
		{"sender", sdk.Senders(sdktest.Alice().Id), func() *pluginv1.Event { return sdktest.GroupText("x") }, true},
		{"other sender", sdk.Senders(sdktest.Bob().Id), func() *pluginv1.Event { return sdktest.GroupText("x") }, false},
		{"edited", sdk.Edited, func() *pluginv1.Event { return sdktest.Edit(sdktest.GroupText("a"), "b") }, true},
		{"edited not new", sdk.Edited, func() *pluginv1.Event { return sdktest.GroupText("a") }, false},
		{"media kind", sdk.Media(pluginv1.MediaKind_MEDIA_KIND_PHOTO), func() *pluginv1.Event {
			return sdktest.GroupText("", sdktest.WithMedia(pluginv1.MediaKind_MEDIA_KIND_PHOTO))
		}, true},
		{"other media kind", sdk.Media(pluginv1.MediaKind_MEDIA_KIND_VOICE), func() *pluginv1.Event {
			return sdktest.GroupText("", sdktest.WithMedia(pluginv1.MediaKind_MEDIA_KIND_PHOTO))
		}, false},
		{"has media", sdk.HasMedia, func() *pluginv1.Event { return sdktest.GroupText("x") }, false},
		{"text prefix", sdk.TextPrefix("!", "?"), func() *pluginv1.Event { return sdktest.GroupText("?x") }, true},
		{"and", sdk.And(sdk.Private, sdk.Incoming), func() *pluginv1.Event { return sdktest.PrivateText("x") }, true},
		{"and fails", sdk.And(sdk.Private, sdk.Outgoing), func() *pluginv1.Event { return sdktest.PrivateText("x") }, false},
		{"or", sdk.Or(sdk.Group, sdk.Private), func() *pluginv1.Event { return sdktest.PrivateText("x") }, true},
		{"not", sdk.Not(sdk.Private), func() *pluginv1.Event { return sdktest.PrivateText("x") }, false},
		{"func", sdk.Func(func(c *sdk.Context) bool { return strings.Contains(c.Text(), "needle") }),
			func() *pluginv1.Event { return sdktest.PrivateText("hay needle hay") }, true},
		{"reaction kind", sdk.Kinds(pluginv1.EventKind_EVENT_KIND_REACTION), func() *pluginv1.Event {
			return sdktest.ReactionEvent(sdktest.GroupChat(), 5, sdktest.Bob(), "👍")
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := sdk.New("filters", "0")
			matched := false
			p.Handle(tc.filter, func(c *sdk.Context) error { matched = true; return nil })
			h := sdktest.New(t, p, sdktest.Quiet())
			out := h.Handle(tc.event())
			if out.Err != "" {
				t.Fatalf("acked with error %q", out.Err)
			}
			if matched != tc.want {
				t.Fatalf("matched = %v, want %v", matched, tc.want)
			}
		})
	}
}

func TestCommandArgsAndConfiguredPrefix(t *testing.T) {
	p := sdk.New("echo", "0")
	var got []string
	var gotText, gotName string
	p.Command("echo", func(c *sdk.Context) error {
		got, gotText, gotName = c.Args(), c.ArgText(), c.Command()
		_, err := c.Reply(c.ArgText())
		return err
	})
	h := sdktest.New(t, p, sdktest.WithPrefix("!"))
	if out := h.Handle(sdktest.PrivateText(".echo no")); len(out.Calls) != 0 {
		t.Fatalf("the default prefix still matched after the runner configured '!': %v", out.Calls)
	}
	out := h.Handle(sdktest.PrivateText("!echo  hello   world "))
	if gotName != "echo" || gotText != "hello   world" || !slices.Equal(got, []string{"hello", "world"}) {
		t.Fatalf("command %q args %q text %q", gotName, got, gotText)
	}
	if len(out.Calls) != 1 || out.Calls[0].Text() != "hello   world" {
		t.Fatalf("calls = %v", out.Calls)
	}
	send := out.Calls[0].Action.GetSend()
	if send.GetReplyToMessageId() == 0 || sdk.PeerString(send.GetChat()) != "user:2001" {
		t.Fatalf("reply went to %s replying to %d", sdk.PeerString(send.GetChat()), send.GetReplyToMessageId())
	}
	// The subscription follows the configured prefix once Info is asked again.
	if prefixes := p.Info().GetSubscription().GetTextPrefixes(); !slices.Equal(prefixes, []string{"!echo"}) {
		t.Fatalf("text prefixes = %q", prefixes)
	}
}

func TestRegexGroups(t *testing.T) {
	p := sdk.New("re", "0")
	var all []string
	var name string
	p.Handle(sdk.Regex(`^remind (?P<who>\w+) (\d+)m$`), func(c *sdk.Context) error {
		all, name = c.Matches(), c.Group("who")
		return nil
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	h.Handle(sdktest.PrivateText("remind bob 15m"))
	if !slices.Equal(all, []string{"remind bob 15m", "bob", "15"}) || name != "bob" {
		t.Fatalf("matches %q, who %q", all, name)
	}
}

func TestGroupsContinueAndStop(t *testing.T) {
	cases := []struct {
		name  string
		first error // what group 0's first handler returns
		want  []string
	}{
		{"nil moves to the next group", nil, []string{"g0a", "g1"}},
		{"continue runs the next handler of the group", sdk.Continue, []string{"g0a", "g0b", "g1"}},
		{"stop skips later groups", sdk.Stop, []string{"g0a"}},
		{"an error stops and fails the event", errors.New("boom"), []string{"g0a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r recorder
			p := sdk.New("groups", "0")
			// Registered out of order: groups run by number.
			p.Handle(sdk.Any, r.handler("g1", nil)).InGroup(1)
			p.Handle(sdk.Any, r.handler("g0a", tc.first))
			p.Handle(sdk.Any, r.handler("g0b", nil))
			p.Handle(sdk.Edited, r.handler("g0-never", nil))
			h := sdktest.New(t, p, sdktest.Quiet())
			out := h.Handle(sdktest.PrivateText("x"))
			if got := r.take(); !slices.Equal(got, tc.want) {
				t.Fatalf("ran %v, want %v", got, tc.want)
			}
			wantErr := tc.first != nil && tc.first != sdk.Continue && tc.first != sdk.Stop
			if (out.Err != "") != wantErr {
				t.Fatalf("ack error %q, want an error: %v", out.Err, wantErr)
			}
		})
	}
}

func TestPanicIsRecoveredAndAckedWithError(t *testing.T) {
	p := sdk.New("panicky", "0")
	n := 0
	p.Command("boom", func(c *sdk.Context) error {
		n++
		if n%3 == 0 {
			var m map[string]int
			m["nil map"] = 1
		}
		_, err := c.Reply(fmt.Sprint(n))
		return err
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	var failed []int
	for i := 1; i <= 7; i++ {
		out := h.Handle(sdktest.PrivateText(".boom"))
		if out.Err != "" {
			if !strings.Contains(out.Err, "panicked") || !strings.Contains(out.Err, "command boom") {
				t.Fatalf("ack error %q does not say which handler panicked", out.Err)
			}
			failed = append(failed, i)
		}
	}
	if !slices.Equal(failed, []int{3, 6}) {
		t.Fatalf("failed events %v, want [3 6]", failed)
	}
	if sends := h.Calls("send"); len(sends) != 5 {
		t.Fatalf("%d replies, want 5 (the plugin must keep running after a panic)", len(sends))
	}
}

func TestPanicInFilterIsRecovered(t *testing.T) {
	p := sdk.New("badfilter", "0")
	p.Handle(sdk.Func(func(c *sdk.Context) bool { panic("filter bug") }), func(c *sdk.Context) error { return nil })
	h := sdktest.New(t, p, sdktest.Quiet())
	if out := h.Handle(sdktest.PrivateText("x")); !strings.Contains(out.Err, "filter bug") {
		t.Fatalf("ack error %q", out.Err)
	}
}

func TestRegistrationAfterStartPanics(t *testing.T) {
	p := sdk.New("late", "0")
	sdktest.New(t, p, sdktest.Quiet())
	defer func() {
		if recover() == nil {
			t.Fatal("registering a handler on a running plugin did not panic")
		}
	}()
	p.Command("late", func(c *sdk.Context) error { return nil })
}
