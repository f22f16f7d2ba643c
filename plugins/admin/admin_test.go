package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Harness {
	t.Helper()
	clk := sdktest.NewClock(time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC))
	return sdktest.New(t, build(clk.Now), sdktest.WithClock(clk), sdktest.WithConfig(config), sdktest.Quiet())
}

func lastEdit(t *testing.T, out sdktest.Outcome) string {
	t.Helper()
	require.Empty(t, out.Err)
	for i := len(out.Calls) - 1; i >= 0; i-- {
		if out.Calls[i].Name == "edit" {
			return out.Calls[i].Text()
		}
	}
	t.Fatalf("no edit in %v", out.Calls)
	return ""
}

func TestHelpListsCommandsFromListPlugins(t *testing.T) {
	h := start(t, `{}`)
	text := lastEdit(t, h.Handle(sdktest.SavedText(".help")))
	require.True(t, strings.HasPrefix(text, "Commands:\n\nadmin — The owner's commands"), text)
	require.Contains(t, text, "\n  .purge N: Delete your own last N messages in this chat")
	require.Contains(t, text, "\n  .ping: Round trip")
	require.Len(t, h.Calls("list_plugins"), 1)

	// Another prefix shows in the help.
	h = sdktest.New(t, New(), sdktest.WithPrefix("!"), sdktest.Quiet())
	require.Contains(t, lastEdit(t, h.Handle(sdktest.SavedText("!help"))), "\n  !status: ")
}

func TestOnlyTheOwnerAndWhere(t *testing.T) {
	h := start(t, `{}`)
	require.Empty(t, h.Handle(sdktest.PrivateText(".status")).Calls, "others cannot run commands")
	require.Len(t, h.Handle(sdktest.GroupText(".status", sdktest.Outgoing())).Calls, 2, "the owner anywhere")
	// A server that wrongly flags another member's message as outgoing
	// (the sandbox does in supergroups) does not make it the owner's.
	spoof := sdktest.SupergroupText(".purge 5")
	spoof.GetNewMessage().Outgoing = true
	require.Empty(t, h.Handle(spoof).Calls)

	h = start(t, `{"where":"saved","output":"reply"}`)
	require.Empty(t, h.Handle(sdktest.GroupText(".status", sdktest.Outgoing())).Calls)
	out := h.Handle(sdktest.SavedText(".status"))
	require.Equal(t, "send", out.Calls[1].Name, "reply output")
	require.Contains(t, out.Calls[1].Text(), "▶️ running")
}

func TestPingStatusPauseResume(t *testing.T) {
	h := start(t, `{}`)
	out := h.Handle(sdktest.SavedText(".ping"))
	require.Equal(t, "pong: 0 ms round trip, event 0s old", lastEdit(t, out), "the fake clock stands still")

	out = h.Handle(sdktest.SavedText(".pause lunch break"))
	require.Equal(t, "⏸ Paused: outgoing actions wait until .resume", lastEdit(t, out))
	require.Equal(t, "edit", out.Calls[0].Name, "answered before pausing")
	require.Equal(t, "pause", out.Calls[1].Name)
	require.Equal(t, "lunch break", out.Calls[1].Action.GetPause().GetReason())

	status := lastEdit(t, h.Handle(sdktest.SavedText(".status")))
	require.Contains(t, status, "⏸ paused: lunch break")
	require.Contains(t, status, "\n  admin 1.0.0 running · queue 0")

	out = h.Handle(sdktest.SavedText(".resume"))
	require.Equal(t, "resume", out.Calls[0].Name)
	require.Equal(t, "▶️ Resumed", lastEdit(t, out))
	require.Contains(t, lastEdit(t, h.Handle(sdktest.SavedText(".status"))), "▶️ running")
	require.Equal(t, "1 plugins:\n  admin 1.0.0 [running] — The owner's commands: help, ping, status, pause, resume, purge",
		lastEdit(t, h.Handle(sdktest.SavedText(".plugins"))))
}

func TestPurgeDeletesOwnMessagesOnly(t *testing.T) {
	h := start(t, `{"purge_max":5}`)
	var mine []int64
	for i, text := range []string{"mine 1", "theirs", "mine 2", "mine 3", "theirs 2"} {
		ev := sdktest.GroupText(text)
		if i != 1 && i != 4 {
			ev = sdktest.GroupText(text, sdktest.Outgoing())
		}
		h.Handle(ev)
		if ev.GetNewMessage().GetOutgoing() {
			mine = append(mine, ev.GetNewMessage().GetId())
		}
	}
	cmd := sdktest.GroupText(".purge 2", sdktest.Outgoing())
	out := h.Handle(cmd)
	require.Empty(t, out.Err)
	del := h.Calls("delete")
	require.Len(t, del, 1)
	require.Equal(t, []int64{cmd.GetNewMessage().GetId(), mine[2], mine[1]}, del[0].Action.GetDelete().GetMessageIds())
	require.True(t, del[0].Action.GetDelete().GetRevoke())
	require.Equal(t, pb.PeerKind_PEER_KIND_CHAT, del[0].Chat().GetKind())

	require.Contains(t, lastEdit(t, h.Handle(sdktest.GroupText(".purge 6", sdktest.Outgoing()))), "usage: .purge N, with N from 1 to 5")
	require.Contains(t, lastEdit(t, h.Handle(sdktest.GroupText(".purge x", sdktest.Outgoing()))), "usage")
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"where":"everywhere"}`: "where",
		`{"output":"print"}`:     "output",
		`{"purge_max":0}`:        "purge_max",
	} {
		_, err := sdktest.Start(t, New(), sdktest.WithConfig(cfg), sdktest.Quiet())
		require.Error(t, err, cfg)
		require.Contains(t, err.Error(), want, cfg)
	}
}
