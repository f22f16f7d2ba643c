package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func names(calls []*sdktest.Call) []string {
	var out []string
	for _, c := range calls {
		if !strings.HasPrefix(c.Name, "kv_") && c.Name != "get_me" {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestActions(t *testing.T) {
	news := &pb.Chat{Peer: sdk.ChannelPeer(777), Type: pb.ChatType_CHAT_TYPE_CHANNEL, Title: "News", Username: "newsroom"}
	for _, tc := range []struct {
		name   string
		action string
		ev     func() *pb.Event
		check  func(t *testing.T, calls []*sdktest.Call)
	}{
		{"send to an id, markdown", `{action: send, chat: -1000000000777, text: "**{{ .Sender.Name }}**", parse_mode: markdown, silent: true}`,
			func() *pb.Event { return sdktest.PrivateText("x") },
			func(t *testing.T, calls []*sdktest.Call) {
				s := calls[0].Action.GetSend()
				require.Equal(t, "channel:777", sdk.PeerString(s.GetChat()))
				require.Equal(t, "**Alice**", s.GetText())
				require.Equal(t, pb.ParseMode_PARSE_MODE_MARKDOWN, s.GetParseMode())
				require.True(t, s.GetSilent())
			}},
		{"send to a username", `{action: send, chat: "@newsroom", text: hi}`,
			func() *pb.Event { return sdktest.PrivateText("x") },
			func(t *testing.T, calls []*sdktest.Call) {
				require.Equal(t, []string{"resolve", "send"}, names(calls))
				require.Equal(t, "channel:777", sdk.PeerString(calls[1].Action.GetSend().GetChat()))
			}},
		{"forward", `{action: forward, to: "@newsroom"}`,
			func() *pb.Event { return sdktest.PrivateText("x") },
			func(t *testing.T, calls []*sdktest.Call) {
				fw := calls[len(calls)-1].Action.GetForward()
				require.Equal(t, "channel:777", sdk.PeerString(fw.GetToChat()))
				require.False(t, fw.GetDropAuthor())
				require.Len(t, fw.GetMessageIds(), 1)
			}},
		{"copy without the author", `{action: copy, to: self}`,
			func() *pb.Event { return sdktest.PrivateText("x") },
			func(t *testing.T, calls []*sdktest.Call) {
				fw := calls[len(calls)-1].Action.GetForward()
				require.True(t, fw.GetDropAuthor())
				require.Equal(t, "user:"+itoa(sdktest.Me().GetId()), sdk.PeerString(fw.GetToChat()))
			}},
		{"edit", `{action: edit, text: "{{ .Message.Text }} (edited)"}`,
			func() *pb.Event { return sdktest.SavedText("draft") },
			func(t *testing.T, calls []*sdktest.Call) {
				require.Equal(t, "draft (edited)", calls[0].Text())
				require.Equal(t, "edit", calls[0].Name)
			}},
		{"delete", `{action: delete, revoke: false}`,
			func() *pb.Event { return sdktest.GroupText("spam") },
			func(t *testing.T, calls []*sdktest.Call) {
				d := calls[0].Action.GetDelete()
				require.False(t, d.GetRevoke())
				require.Len(t, d.GetMessageIds(), 1)
			}},
		{"react", `{action: react, emoji: "👀"}`,
			func() *pb.Event { return sdktest.GroupText("look") },
			func(t *testing.T, calls []*sdktest.Call) {
				require.Equal(t, "👀", calls[0].Action.GetReact().GetReaction())
			}},
		{"mark read", `{action: mark_read}`,
			func() *pb.Event { return sdktest.PrivateText("x") },
			func(t *testing.T, calls []*sdktest.Call) {
				require.Equal(t, "mark_read", calls[0].Name)
				require.NotZero(t, calls[0].Action.GetMarkRead().GetMaxId())
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, `
  - id: a
    triggers: [{trigger: message}]
    actions: [`+tc.action+`]
`)
			f.h.AddChat(news)
			out := f.h.Handle(tc.ev())
			require.Empty(t, out.Err)
			var calls []*sdktest.Call
			for _, c := range out.Calls {
				if !strings.HasPrefix(c.Name, "kv_") {
					calls = append(calls, c)
				}
			}
			require.NotEmpty(t, calls)
			for _, c := range calls {
				require.Equal(t, "a", c.Label, "%s is audited under the rule's id", c.Name)
			}
			tc.check(t, calls)
		})
	}
}

func TestDeleteOld(t *testing.T) {
	f := start(t, `
  - id: purge
    triggers: [{trigger: schedule, every: 1h}]
    actions: [{action: delete_old, chat: self, older_than: 90m}]
`)
	// The account's own messages: two now, two an hour later. At the
	// second hourly run only the first two are older than 90 minutes.
	for _, s := range []string{"old 1", "old 2"} {
		f.h.Handle(sdktest.SavedText(s))
	}
	f.startUp()
	f.h.Tick(time.Hour)
	require.Len(t, f.h.WaitCalls("history", 1), 1)
	require.Empty(t, f.h.Calls("delete"), "nothing is 90 minutes old yet")
	for _, s := range []string{"new 1", "new 2"} {
		f.h.Handle(sdktest.SavedText(s))
	}
	f.h.Tick(time.Hour)
	dels := f.h.WaitCalls("delete", 1)
	d := dels[0].Action.GetDelete()
	require.Len(t, d.GetMessageIds(), 2, "only the two old messages: %v", d)
	require.True(t, d.GetRevoke())
}

func TestWaitCallStop(t *testing.T) {
	f := start(t, `
  - id: greet
    triggers: [{trigger: command, command: greet}]
    actions:
      - action: reply
        text: "1"
      - action: wait
        duration: 10m
      - action: call
        rule: finish
      - action: reply
        text: "never: finish stopped the run"
  - id: finish
    actions:
      - action: reply
        text: "2 at {{ .Now | date \"15:04\" }} from {{ .Rule.ID }}"
      - action: stop
        reason: done
`)
	out := f.h.Handle(sdktest.PrivateText(".greet"))
	require.Equal(t, []string{"1"}, sends(out), "the event is acked at the wait, not after it")
	f.clk.Advance(10 * time.Minute)
	got := texts(f.h.WaitCalls("send", 2))
	require.Equal(t, []string{"1", "2 at 09:10 from finish"}, got)
	var labels []string
	for _, c := range f.h.Calls("send") {
		labels = append(labels, c.Label)
	}
	require.Equal(t, []string{"greet", "finish"}, labels, "a called rule's actions carry its own id")
	require.Never(t, func() bool { return len(f.h.Calls("send")) > 2 }, 100*time.Millisecond, 10*time.Millisecond)
}

func TestFailedActionEndsRun(t *testing.T) {
	f := start(t, `
  - id: r
    triggers: [{trigger: message}]
    actions: [{action: reply, text: a}, {action: reply, text: b}]
`)
	f.h.FailNext("send", sdk.ErrForbidden)
	out := f.h.Handle(sdktest.PrivateText("x"))
	require.Contains(t, out.Err, "forbidden")
	require.Len(t, out.Calls, 1, "the run ends at the first failure")
	require.True(t, errors.Is(out.Calls[0].Err(), sdk.ErrForbidden))
}

func TestTemplateTruncatesLongText(t *testing.T) {
	f := start(t, `
  - id: r
    triggers: [{trigger: message}]
    actions: [{action: reply, text: "{{ range 5000 }}x{{ end }}"}]
`)
	out := f.h.Handle(sdktest.PrivateText("x"))
	require.Empty(t, out.Err)
	require.Len(t, []rune(sends(out)[0]), 4096)
}

// slowRule notifies at the start of a run and again after a minute's
// wait, under the given mode (with its options on following lines).
func slowRule(mode string) string {
	return `
  - id: slow
    mode: ` + mode + `
    triggers: [{trigger: message}]
    actions:
      - action: notify
        text: "start {{ .Message.Text }}"
      - action: wait
        duration: 1m
      - action: notify
        text: "end {{ .Message.Text }}"
`
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		mode string
		// What was sent after three messages a, b, c in three chats, and
		// then after a minute, and two more.
		first, later []string
	}{
		{"single", []string{"start a"}, []string{"end a"}},
		{"restart", []string{"start a", "start b", "start c"}, []string{"end c"}},
		{"queued\n    max: 1", []string{"start a"}, []string{"end a", "start b", "end b"}},
		{"parallel\n    max: 2", []string{"start a", "start b"}, []string{"end a", "end b"}},
	} {
		t.Run(strings.Fields(tc.mode)[0], func(t *testing.T) {
			f := start(t, slowRule(tc.mode))
			for _, ev := range []*pb.Event{sdktest.PrivateText("a"), sdktest.GroupText("b"), sdktest.SupergroupText("c")} {
				f.h.Handle(ev)
			}
			require.Equal(t, tc.first, texts(f.h.Calls("send")))
			want := append(append([]string{}, tc.first...), tc.later...)
			advanceUntil(t, f, len(want))
			require.ElementsMatch(t, want, texts(f.h.Calls("send")))
			// Ended and cancelled runs leave nothing to resume.
			require.Eventually(t, func() bool { return len(parkedKeys(f)) == 0 }, 5*time.Second, 10*time.Millisecond, "%v", parkedKeys(f))
		})
	}
}

// advanceUntil moves the clock a minute at a time until n messages were
// sent: a run reaches its next wait only after its send returned, so one
// jump could come before the wait's timer exists.
func advanceUntil(t *testing.T, f *fixture, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		if len(f.h.Calls("send")) >= n {
			return true
		}
		f.clk.Advance(time.Minute)
		return false
	}, 5*time.Second, 5*time.Millisecond)
	require.Never(t, func() bool { return len(f.h.Calls("send")) > n }, 50*time.Millisecond, 10*time.Millisecond)
}

// A run that has finished no longer counts: with mode single, a trigger
// that comes right after the previous run ended (its event acked) runs.
func TestSingleModeRunsTheNextTriggerAfterARunEnds(t *testing.T) {
	f := start(t, `
  - id: echo
    mode: single
    triggers: [{trigger: message}]
    actions: [{action: reply, text: "got {{ .Message.Text }}"}]
`)
	for i := range 300 {
		text := fmt.Sprintf("m%d", i)
		require.Equal(t, []string{"got " + text}, sends(f.h.Handle(sdktest.PrivateText(text))), "trigger %d", i)
	}
}

// A run waiting when the plugin stops is kept in the plugin's store and
// resumed by the next process: its remaining actions, in a called rule
// too, run once when the wait ends, in the chat of the event that began
// it. A run whose rule changed meanwhile is dropped, not resumed into
// other actions.
func TestWaitingRunSurvivesRestart(t *testing.T) {
	rules := `
  - id: later
    triggers: [{trigger: command, command: later}]
    actions:
      - action: reply
        text: "now"
      - action: call
        rule: tail
      - action: reply
        text: "done {{ .Rule.ID }}"
  - id: tail
    actions:
      - action: wait
        duration: 10m
      - action: reply
        text: "{{ .Message.Text }} at {{ .Now | date \"15:04\" }} from {{ .Rule.ID }}"
`
	f := start(t, rules)
	require.Equal(t, []string{"now"}, sends(f.h.Handle(sdktest.PrivateText(".later"))))
	kv := f.h.KV()
	require.Len(t, parkedKeys(f), 1, "the waiting run is in the store: %v", kv)

	// The next process, 4 minutes later, with the store the runner kept.
	f2 := startAt(t, monday9.Add(4*time.Minute), rules)
	for k, v := range kv {
		f2.h.SetKV(k, v)
	}
	f2.startUp()
	require.Never(t, func() bool { return len(f2.h.Calls("send")) > 0 }, 100*time.Millisecond, 10*time.Millisecond, "still waiting")
	f2.h.Tick(6 * time.Minute)
	got := texts(f2.h.WaitCalls("send", 2))
	require.Equal(t, []string{".later at 09:10 from tail", "done later"}, got)
	for _, c := range f2.h.Calls("send") {
		require.Equal(t, sdktest.PrivateText("x").GetNewMessage().GetChat().GetPeer().GetId(), c.Action.GetSend().GetChat().GetId(), "in the triggering chat")
	}
	require.Eventually(t, func() bool { return len(parkedKeys(f2)) == 0 }, 5*time.Second, 10*time.Millisecond, "forgotten once resumed")

	// The rule changed before the next start: the run is dropped.
	f3 := startAt(t, monday9.Add(4*time.Minute), strings.Replace(rules, "duration: 10m", "duration: 20m", 1))
	for k, v := range kv {
		f3.h.SetKV(k, v)
	}
	f3.startUp()
	f3.h.Tick(30 * time.Minute)
	require.Never(t, func() bool { return len(f3.h.Calls("send")) > 0 }, 100*time.Millisecond, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(parkedKeys(f3)) == 0 }, 5*time.Second, 10*time.Millisecond, "the stale run is forgotten")
}

// parkedKeys lists the waiting runs in the plugin's store.
func parkedKeys(f *fixture) []string {
	var out []string
	for k := range f.h.KV() {
		if strings.HasPrefix(k, "parked/") {
			out = append(out, k)
		}
	}
	return out
}

// A queued run that had not begun when the plugin stopped is kept too:
// the next process finishes the waiting run, then runs the queued one.
func TestQueuedRunSurvivesRestart(t *testing.T) {
	rules := slowRule("queued\n    max: 5")
	f := start(t, rules)
	f.h.Handle(sdktest.PrivateText("a"))
	f.h.Handle(sdktest.PrivateText("b"))
	require.Equal(t, []string{"start a"}, texts(f.h.Calls("send")))
	require.Len(t, parkedKeys(f), 2, "the waiting run and the queued one are in the store")

	f2 := startAt(t, monday9.Add(30*time.Second), rules)
	for k, v := range f.h.KV() {
		f2.h.SetKV(k, v)
	}
	f2.startUp()
	advanceUntil(t, f2, 3)
	require.Equal(t, []string{"end a", "start b", "end b"}, texts(f2.h.Calls("send")))
	require.Eventually(t, func() bool { return len(parkedKeys(f2)) == 0 }, 5*time.Second, 10*time.Millisecond, "%v", parkedKeys(f2))
}
