package rules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// contact sets whether the author of a message is one of the account's
// contacts.
func contact(is bool) sdktest.MsgOption {
	return func(m *pb.Message) {
		u := *m.GetSender()
		u.Contact = is
		m.Sender = &u
	}
}

func TestConditions(t *testing.T) {
	alice := sdktest.Alice()
	for _, tc := range []struct {
		name      string
		condition string
		pass      []*pb.Event
		fail      []*pb.Event
	}{
		{"chat by id", `{condition: chat, chats: [` + itoa(alice.GetId()) + `]}`,
			[]*pb.Event{sdktest.PrivateText("x")}, []*pb.Event{sdktest.GroupText("x")}},
		{"chat by kind", `{condition: chat, chats: [group]}`,
			[]*pb.Event{sdktest.GroupText("x"), sdktest.SupergroupText("x")}, []*pb.Event{sdktest.PrivateText("x")}},
		{"chat self", `{condition: chat, chats: [self]}`,
			[]*pb.Event{sdktest.SavedText("x")}, []*pb.Event{sdktest.PrivateText("x")}},
		{"sender by username", `{condition: sender, users: ["@` + alice.GetUsername() + `"]}`,
			[]*pb.Event{sdktest.PrivateText("x")}, []*pb.Event{sdktest.GroupText("x", sdktest.From(sdktest.Bob()))}},
		{"sender self", `{condition: sender, users: [self]}`,
			[]*pb.Event{sdktest.PrivateText("x", sdktest.Outgoing())}, []*pb.Event{sdktest.PrivateText("x")}},
		{"chat kind", `{condition: chat_kind, kinds: [private, channel]}`,
			[]*pb.Event{sdktest.PrivateText("x"), sdktest.ChannelPost("x")}, []*pb.Event{sdktest.GroupText("x")}},
		{"incoming", `{condition: incoming}`,
			[]*pb.Event{sdktest.PrivateText("x")}, []*pb.Event{sdktest.PrivateText("x", sdktest.Outgoing())}},
		{"outgoing", `{condition: outgoing}`,
			[]*pb.Event{sdktest.PrivateText("x", sdktest.Outgoing())}, []*pb.Event{sdktest.PrivateText("x")}},
		{"text contains, any case", `{condition: text, contains: URGENT}`,
			[]*pb.Event{sdktest.PrivateText("this is urgent!")}, []*pb.Event{sdktest.PrivateText("later")}},
		{"text equals, case sensitive", `{condition: text, equals: Hi, case_sensitive: true}`,
			[]*pb.Event{sdktest.PrivateText("Hi")}, []*pb.Event{sdktest.PrivateText("hi"), sdktest.PrivateText("Hi there")}},
		{"text starts_with", `{condition: text, starts_with: "re:"}`,
			[]*pb.Event{sdktest.PrivateText("Re: lunch")}, []*pb.Event{sdktest.PrivateText("lunch re:")}},
		{"text ends_with", `{condition: text, ends_with: "?"}`,
			[]*pb.Event{sdktest.PrivateText("ok?")}, []*pb.Event{sdktest.PrivateText("ok")}},
		{"text regex", `{condition: text, regex: '^\d{4}$'}`,
			[]*pb.Event{sdktest.PrivateText("1234")}, []*pb.Event{sdktest.PrivateText("12345")}},
		{"contact", `{condition: contact}`,
			[]*pb.Event{sdktest.PrivateText("x", contact(true))}, []*pb.Event{sdktest.PrivateText("x", contact(false))}},
		{"and", `{condition: and, conditions: [{condition: incoming}, {condition: chat_kind, kinds: [group]}]}`,
			[]*pb.Event{sdktest.GroupText("x")}, []*pb.Event{sdktest.PrivateText("x"), sdktest.GroupText("x", sdktest.Outgoing())}},
		{"or", `{condition: or, conditions: [{condition: text, equals: a}, {condition: text, equals: b}]}`,
			[]*pb.Event{sdktest.PrivateText("a"), sdktest.PrivateText("b")}, []*pb.Event{sdktest.PrivateText("c")}},
		{"not", `{condition: not, conditions: [{condition: contact}]}`,
			[]*pb.Event{sdktest.PrivateText("x", contact(false))}, []*pb.Event{sdktest.PrivateText("x", contact(true))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, `
  - id: c
    mode: parallel
    triggers: [{trigger: message}]
    conditions: [`+tc.condition+`]
    actions: [{action: notify, text: ok}]
`)
			for _, ev := range tc.pass {
				require.Len(t, sends(f.h.Handle(ev)), 1, "should pass: %v", ev)
			}
			for _, ev := range tc.fail {
				require.Empty(t, sends(f.h.Handle(ev)), "should fail: %v", ev)
			}
		})
	}
}

func TestTimeCondition(t *testing.T) {
	// Office hours in Berlin, weekdays. Monday 09:00 UTC is 10:00 there.
	f := start(t, `
  - id: office
    mode: parallel
    triggers: [{trigger: message}]
    conditions: [{condition: time, after: "09:00", before: "17:00", weekdays: [mon, tue, wed, thu, fri], time_zone: Europe/Berlin}]
    actions: [{action: notify, text: ok}]
  - id: night
    mode: parallel
    triggers: [{trigger: message}]
    conditions: [{condition: time, after: "22:00", before: "07:00", weekdays: [fri], time_zone: UTC}]
    actions: [{action: notify, text: night}]
`)
	require.Equal(t, []string{"ok"}, sends(f.h.Handle(sdktest.PrivateText("a"))))
	f.clk.Advance(7 * time.Hour) // 17:00 Berlin
	require.Empty(t, sends(f.h.Handle(sdktest.PrivateText("b"))))
	f.clk.Set(time.Date(2025, 1, 11, 9, 0, 0, 0, time.UTC)) // Saturday
	require.Empty(t, sends(f.h.Handle(sdktest.PrivateText("c"))))
	// Saturday 02:00 UTC belongs to Friday night's window.
	f2 := startAt(t, time.Date(2025, 1, 11, 2, 0, 0, 0, time.UTC), `
  - id: night
    triggers: [{trigger: message}]
    conditions: [{condition: time, after: "22:00", before: "07:00", weekdays: [fri], time_zone: UTC}]
    actions: [{action: notify, text: night}]
`)
	require.Equal(t, []string{"night"}, sends(f2.h.Handle(sdktest.PrivateText("d"))))
	f2.clk.Advance(5 * time.Hour) // 07:00
	require.Empty(t, sends(f2.h.Handle(sdktest.PrivateText("e"))))
}

func TestCooldown(t *testing.T) {
	for _, tc := range []struct {
		per  string
		want []int // sends after each of: alice, alice, bob(group), alice after the period
	}{
		{"rule", []int{1, 0, 0, 1}},
		{"sender", []int{1, 0, 1, 1}},
		{"chat", []int{1, 0, 1, 1}},
	} {
		t.Run(tc.per, func(t *testing.T) {
			f := start(t, `
  - id: away
    triggers: [{trigger: message}]
    conditions: [{condition: cooldown, period: 1h, per: `+tc.per+`}]
    actions: [{action: reply, text: away}]
`)
			got := []int{
				len(sends(f.h.Handle(sdktest.PrivateText("1")))),
				len(sends(f.h.Handle(sdktest.PrivateText("2")))),
				len(sends(f.h.Handle(sdktest.GroupText("3", sdktest.From(sdktest.Bob()))))),
			}
			f.clk.Advance(time.Hour)
			got = append(got, len(sends(f.h.Handle(sdktest.PrivateText("4")))))
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCooldownSurvivesRestart(t *testing.T) {
	rules := `
  - id: away
    triggers: [{trigger: message}]
    conditions: [{condition: cooldown, period: 1h, per: sender}]
    actions: [{action: reply, text: away}]
`
	f := start(t, rules)
	require.Len(t, sends(f.h.Handle(sdktest.PrivateText("1"))), 1)
	kv := f.h.KV()
	// A new process with the store the runner kept.
	f2 := startAt(t, monday9.Add(30*time.Minute), rules)
	for k, v := range kv {
		f2.h.SetKV(k, v)
	}
	require.Empty(t, sends(f2.h.Handle(sdktest.PrivateText("2"))), "still cooling down after the restart")
}
