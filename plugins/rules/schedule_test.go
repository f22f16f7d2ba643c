package rules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// The start-up job runs startupDelay after the session opens.
func (f *fixture) startUp() { f.h.Tick(startupDelay) }

func TestScheduleCronWithTimeZone(t *testing.T) {
	// 09:00 UTC is 10:00 in Berlin; the rule fires at 10:30 Berlin time on
	// weekdays.
	f := start(t, `
  - id: standup
    time_zone: Europe/Berlin
    triggers: [{trigger: schedule, cron: "30 10 * * 1-5"}]
    actions:
      - action: notify
        text: 'standup at {{ .Trigger.ScheduledAt | date "15:04 MST" }}'
`)
	f.startUp()
	f.h.Tick(29 * time.Minute)
	require.Empty(t, f.h.Calls("send"), "not yet 10:30 in Berlin")
	f.h.Tick(time.Minute)
	require.Equal(t, []string{"standup at 10:30 CET"}, texts(f.h.WaitCalls("send", 1)))
	require.Contains(t, f.h.KV(), "last_run/standup/0", "the run is recorded for catch-up")
}

func TestScheduleEvery(t *testing.T) {
	f := start(t, `
  - id: tick
    mode: queued
    triggers: [{trigger: schedule, every: 1h}]
    actions: [{action: notify, text: "tick"}]
`)
	f.startUp()
	for i := 1; i <= 3; i++ {
		f.h.Tick(time.Hour)
		require.Len(t, f.h.WaitCalls("send", i), i)
	}
}

func TestScheduleAtWeekdays(t *testing.T) {
	// Monday 09:00 UTC; at 08:30 on Tuesdays only: the first run is
	// Tuesday 08:30.
	f := start(t, `
  - id: tuesday
    time_zone: UTC
    triggers: [{trigger: schedule, at: "08:30", weekdays: [tue]}]
    actions: [{action: notify, text: '{{ .Now | date "Mon 15:04" }}'}]
`)
	f.startUp()
	f.h.Tick(23 * time.Hour)
	require.Empty(t, f.h.Calls("send"))
	f.h.Tick(30 * time.Minute)
	require.Equal(t, []string{"Tue 08:30"}, texts(f.h.WaitCalls("send", 1)))
}

func TestStartedTrigger(t *testing.T) {
	f := start(t, `
  - id: boot
    triggers: [{trigger: started}]
    actions: [{action: notify, text: "runner up ({{ .Trigger.Kind }})"}]
`)
	require.Empty(t, f.h.Calls("send"))
	f.startUp()
	require.Equal(t, []string{"runner up (started)"}, texts(f.h.WaitCalls("send", 1)))
	f.h.Tick(time.Hour)
	require.Len(t, f.h.Calls("send"), 1, "fires once per start")
}

// catchUpRules: a daily 08:00 report, with the given catch-up policy.
func catchUpRules(policy string) string {
	return `
  - id: report
    time_zone: UTC
    catch_up: ` + policy + `
    mode: queued
    triggers: [{trigger: schedule, at: "08:00"}]
    actions: [{action: notify, text: '{{ .Trigger.ScheduledAt | date "Jan 2 15:04" }} missed={{ .Trigger.Missed }}'}]
`
}

func TestScheduleCatchUpAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		policy string
		want   []string
	}{
		{"run", []string{"Jan 7 08:00 missed=true", "Jan 8 08:00 missed=true"}},
		{"skip", nil},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			// The last run was Monday 08:00 (kept in the store by the previous
			// process); the runner comes back Wednesday 09:00.
			back := monday9.Add(48 * time.Hour)
			f := startAt(t, back, catchUpRules(tc.policy))
			f.h.SetKV("last_run/report/0", []byte(monday9.Add(-time.Hour).Format(time.RFC3339Nano)))
			f.startUp()
			if tc.want == nil {
				require.Never(t, func() bool { return len(f.h.Calls("send")) > 0 }, 200*time.Millisecond, 20*time.Millisecond)
			} else {
				require.Equal(t, tc.want, texts(f.h.WaitCalls("send", len(tc.want))))
			}
			require.Equal(t, back.Add(startupDelay).UTC().Format(time.RFC3339Nano), string(f.h.KV()["last_run/report/0"]))
		})
	}
}

func TestScheduleFirstStartRecordsBaseline(t *testing.T) {
	f := start(t, catchUpRules("run"))
	f.startUp()
	require.Eventually(t, func() bool { return f.h.KV()["last_run/report/0"] != nil }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, f.h.Calls("send"), "nothing to catch up on the first start")
}

func TestMessageCatchUp(t *testing.T) {
	for _, tc := range []struct {
		policy string
		want   int
	}{{"run", 1}, {"skip", 0}} {
		t.Run(tc.policy, func(t *testing.T) {
			f := start(t, `
  - id: away
    catch_up: `+tc.policy+`
    triggers: [{trigger: message}]
    actions: [{action: reply, text: "missed={{ .Trigger.Missed }}"}]
`)
			// Written an hour before the plugin started: the runner was down.
			// The runner fetched it now (the event's date); it was written an
			// hour ago (the message's).
			old := sdktest.PrivateText("while you were away")
			old.GetNewMessage().Date = monday9.Add(-time.Hour).Unix()
			out := f.h.Handle(old)
			require.Len(t, sends(out), tc.want)
			if tc.want > 0 {
				require.Equal(t, "missed=true", sends(out)[0])
			}
			// A live message always runs.
			require.Equal(t, []string{"missed=false"}, sends(f.h.Handle(sdktest.PrivateText("now"))))
		})
	}
}
