package schedule

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Harness {
	t.Helper()
	clk := sdktest.NewClock(time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)) // a Monday
	return sdktest.New(t, build(clk.Now), sdktest.WithClock(clk), sdktest.WithConfig(config), sdktest.Quiet())
}

func TestSendInTimeZone(t *testing.T) {
	h := start(t, `{"time_zone":"Europe/Berlin","jobs":[
		{"name":"standup","cron":"30 10 * * 1-5","to":"me","text":"Standup! {weekday} {date} {time}"},
		{"name":"utc","cron":"0 12 * * *","time_zone":"UTC","to":"chat:3001","text":"noon UTC","silent":true}]}`)
	h.Tick(29 * time.Minute)
	require.Empty(t, h.Calls("send"), "10:29 in Berlin")
	h.Tick(time.Minute)
	sends := h.Calls("send")
	require.Len(t, sends, 1)
	require.Equal(t, "Standup! Monday 2025-01-06 10:30", sends[0].Text())
	require.Equal(t, "user:1000", sdk.PeerString(sends[0].Chat()))

	h.Tick(150 * time.Minute) // 12:00 UTC
	sends = h.Calls("send")
	require.Len(t, sends, 2)
	require.Equal(t, "noon UTC", sends[1].Text())
	require.True(t, sends[1].Action.GetSend().GetSilent())

	// Tuesday to Saturday, a day at a time (a fake timer, like a real one,
	// fires once however far the clock jumps): 4 standups, 5 noons.
	for range 5 {
		h.Tick(24 * time.Hour)
	}
	require.Len(t, h.Calls("send"), 2+4+5)
}

func TestDigestForwardsWhatIsNew(t *testing.T) {
	h := start(t, `{"jobs":[{"name":"digest","cron":"@daily","to":"me","text":"Digest {date}: {count} new",
		"forward":{"from":"channel:5001","new":true,"max":2,"copy":true}}]}`)
	var ids []int64
	for _, s := range []string{"one", "two", "three"} {
		ev := sdktest.ChannelPost(s)
		h.Handle(ev)
		ids = append(ids, ev.GetNewMessage().GetId())
	}
	h.Tick(15 * time.Hour) // midnight UTC
	sends, fwds := h.Calls("send"), h.Calls("forward")
	require.Len(t, sends, 1)
	require.Equal(t, "Digest 2025-01-07: 2 new", sends[0].Text())
	require.Len(t, fwds, 1)
	f := fwds[0].Action.GetForward()
	require.Equal(t, ids[1:], f.GetMessageIds(), "the newest two, oldest first")
	require.True(t, f.GetDropAuthor())
	require.Equal(t, strconv.FormatInt(ids[2], 10), string(h.KV()["last/digest"]))

	h.Tick(24 * time.Hour)
	require.Len(t, h.Calls("send"), 1, "nothing new: nothing sent")

	four := sdktest.ChannelPost("four")
	h.Handle(four)
	h.Tick(24 * time.Hour)
	require.Len(t, h.Calls("forward"), 2)
	require.Equal(t, []int64{four.GetNewMessage().GetId()}, h.Calls("forward")[1].Action.GetForward().GetMessageIds())
}

func TestFixedForwardAndReload(t *testing.T) {
	h := start(t, `{"jobs":[{"cron":"@every 1h","to":"@testchannel","forward":{"from":"me","message_ids":[5,6]}}]}`)
	h.AddChat(sdktest.ChannelChat())
	h.Tick(time.Hour)
	fwds := h.Calls("forward")
	require.Len(t, fwds, 1)
	require.Equal(t, "channel:5001", sdk.PeerString(fwds[0].Action.GetForward().GetToChat()))
	require.Equal(t, "user:1000", sdk.PeerString(fwds[0].Action.GetForward().GetFromChat()))

	// A reload replaces the jobs.
	require.NoError(t, h.Reconfigure(`{"jobs":[{"cron":"@every 2h","to":"me","text":"new job"}]}`))
	h.Tick(2 * time.Hour)
	require.Len(t, h.Calls("forward"), 1, "the old job is gone")
	require.Len(t, h.Calls("send"), 1)
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"jobs":[{"to":"me","text":"x"}]}`:                                                                              "jobs[0].cron",
		`{"jobs":[{"cron":"61 * * * *","to":"me","text":"x"}]}`:                                                          "jobs[0].cron",
		`{"jobs":[{"cron":"@daily","to":"group","text":"x"}]}`:                                                           "jobs[0].to",
		`{"jobs":[{"cron":"@daily","to":"me"}]}`:                                                                         "jobs[0].text",
		`{"time_zone":"Nowhere/City"}`:                                                                                   "time_zone",
		`{"jobs":[{"cron":"@daily","to":"me","text":"x","time_zone":"X/Y"}]}`:                                            "jobs[0].time_zone",
		`{"jobs":[{"cron":"@daily","to":"me","forward":{"from":"me"}}]}`:                                                 "jobs[0].forward",
		`{"jobs":[{"name":"a","cron":"@daily","to":"me","text":"x"},{"name":"a","cron":"@daily","to":"me","text":"y"}]}`: "jobs[1].name",
	} {
		_, err := sdktest.Start(t, New(), sdktest.WithConfig(cfg), sdktest.Quiet())
		require.Error(t, err, cfg)
		require.Contains(t, err.Error(), want, cfg)
	}
}

func TestJobsAndRunNow(t *testing.T) {
	h := start(t, `{"jobs":[{"name":"hello","cron":"0 9 * * *","time_zone":"Europe/Berlin","to":"me","text":"hello {date}"}]}`)
	h.Tick(0) // the jobs are armed
	out := h.Handle(sdktest.SavedText(".jobs"))
	require.Empty(t, out.Err)
	require.Equal(t, "hello: 0 9 * * * (Europe/Berlin), next 2025-01-07 09:00", h.Calls("edit")[0].Text())

	out = h.Handle(sdktest.SavedText(".runjob hello"))
	require.Empty(t, out.Err)
	require.Equal(t, "hello 2025-01-06", h.Calls("send")[0].Text())
	require.Equal(t, "▶️ ran hello", h.Calls("edit")[1].Text())

	h.Handle(sdktest.SavedText(".runjob nope"))
	require.Equal(t, `no job "nope"; the jobs are: hello`, h.Calls("edit")[2].Text())
	require.Empty(t, h.Handle(sdktest.PrivateText(".runjob hello")).Calls, "only the owner")
}
