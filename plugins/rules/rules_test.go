package rules

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// monday9 is the harness's default clock: Monday 2025-01-06 09:00 UTC.
var monday9 = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)

type fixture struct {
	h   *sdktest.Harness
	clk *sdktest.Clock
	e   *engine
}

// rulesConfig decodes rules written in YAML, as users write them, into
// the plugin's config.
func rulesConfig(t testing.TB, rulesYAML string) spec.Config {
	t.Helper()
	var cfg spec.Config
	require.NoError(t, yaml.Unmarshal([]byte("rules:\n"+rulesYAML), &cfg))
	return cfg
}

func start(t *testing.T, rulesYAML string, opts ...sdktest.Option) *fixture {
	t.Helper()
	return startAt(t, monday9, rulesYAML, opts...)
}

func startAt(t *testing.T, at time.Time, rulesYAML string, opts ...sdktest.Option) *fixture {
	t.Helper()
	clk := sdktest.NewClock(at)
	e := newEngine(clk)
	opts = append([]sdktest.Option{sdktest.WithClock(clk), sdktest.WithConfig(rulesConfig(t, rulesYAML)), sdktest.Quiet()}, opts...)
	h := sdktest.New(t, e.p, opts...)
	return &fixture{h: h, clk: clk, e: e}
}

// texts returns the texts of the sends in an outcome.
func texts(calls []*sdktest.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Name == "send" {
			out = append(out, c.Text())
		}
	}
	return out
}

func sends(o sdktest.Outcome) []string { return texts(o.Calls) }

func TestMessageTriggerReplies(t *testing.T) {
	f := start(t, `
  - id: hello
    triggers: [{trigger: message}]
    actions:
      - action: reply
        text: "Hi {{ .Sender.Name }}, you said {{ .Message.Text | upper }}"
`)
	out := f.h.Handle(sdktest.PrivateText("hello"))
	require.Empty(t, out.Err)
	require.Len(t, out.Calls, 1)
	send := out.Calls[0].Action.GetSend()
	require.Equal(t, "Hi Alice, you said HELLO", send.GetText())
	require.NotZero(t, send.GetReplyToMessageId(), "a reply quotes the message")
	require.Equal(t, sdk.PeerString(sdktest.PrivateChat(sdktest.Alice()).GetPeer()), sdk.PeerString(send.GetChat()))

	// Its own reply comes back as an outgoing message: it must not trigger
	// the rule again.
	reply := out.Calls[0].Result.GetMessage()
	again := f.h.Handle(sdktest.NewMessage(reply))
	require.Empty(t, again.Calls, "a rule's own message never triggers rules")
}

func TestTriggers(t *testing.T) {
	group := sdktest.GroupChat()
	for _, tc := range []struct {
		name    string
		trigger string
		feed    func(f *fixture) sdktest.Outcome
		want    []string
	}{
		{"edited", `{trigger: edited}`, func(f *fixture) sdktest.Outcome {
			orig := sdktest.PrivateText("v1")
			f.h.Handle(orig)
			return f.h.Handle(sdktest.Edit(orig, "v2"))
		}, []string{"edited to v2"}},
		{"deleted", `{trigger: deleted}`, func(f *fixture) sdktest.Outcome {
			return f.h.Handle(sdktest.Deleted(sdktest.SupergroupChat(), 42))
		}, []string{"deleted 42"}},
		{"command", `{trigger: command, command: afk}`, func(f *fixture) sdktest.Outcome {
			require.Empty(t, f.h.Handle(sdktest.PrivateText(".afkx")).Calls, "a longer word is another command")
			return f.h.Handle(sdktest.PrivateText(".afk  back at 5 "))
		}, []string{"cmd afk args [back at 5] text back at 5"}},
		{"regex", `{trigger: regex, pattern: 'price of (?P<item>\w+) in (\w+)'}`, func(f *fixture) sdktest.Outcome {
			return f.h.Handle(sdktest.PrivateText("what is the price of milk in Paris?"))
		}, []string{"item milk city Paris"}},
		{"reaction", `{trigger: reaction, emoji: "👍"}`, func(f *fixture) sdktest.Outcome {
			require.Empty(t, f.h.Handle(sdktest.ReactionEvent(group, 7, sdktest.Bob(), "👎")).Calls)
			return f.h.Handle(sdktest.ReactionEvent(group, 7, sdktest.Bob(), "👍"))
		}, []string{"Bob reacted 👍 to 7"}},
		{"member joined", `{trigger: member, event: joined}`, func(f *fixture) sdktest.Outcome {
			return f.h.Handle(sdktest.Joined(group, sdktest.Bob()))
		}, []string{"welcome Bob (joined)"}},
		{"member left", `{trigger: member, event: left}`, func(f *fixture) sdktest.Outcome {
			require.Empty(t, f.h.Handle(sdktest.Joined(group, sdktest.Bob())).Calls, "joined is not left")
			ev := sdktest.Joined(group, sdktest.Bob())
			ev.GetChatAction().Action = pb.ChatActionKind_CHAT_ACTION_KIND_LEFT
			return f.h.Handle(ev)
		}, []string{"welcome Bob (left)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			texts := map[string]string{
				"edited":        `edited to {{ .Message.Text }}`,
				"deleted":       `deleted {{ .Message.ID }}`,
				"command":       `cmd {{ .Command }} args {{ .Args }} text {{ .ArgText }}`,
				"regex":         `item {{ .Groups.item }} city {{ nth 2 .Match }}`,
				"reaction":      `{{ .Sender.FirstName }} reacted {{ .Trigger.Emoji }} to {{ .Message.ID }}`,
				"member joined": `welcome {{ .Sender.FirstName }} ({{ .Trigger.Member }})`,
				"member left":   `welcome {{ .Sender.FirstName }} ({{ .Trigger.Member }})`,
			}
			f := start(t, `
  - id: t
    mode: parallel
    triggers: [`+tc.trigger+`]
    actions:
      - action: notify
        text: '`+texts[tc.name]+`'
`)
			out := tc.feed(f)
			require.Empty(t, out.Err)
			require.Equal(t, tc.want, sends(out))
			require.Equal(t, "user:"+itoa(sdktest.Me().GetId()), sdk.PeerString(out.Calls[0].Action.GetSend().GetChat()), "notify writes to Saved Messages")
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
