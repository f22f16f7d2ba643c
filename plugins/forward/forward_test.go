package forward

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Harness {
	t.Helper()
	clk := sdktest.NewClock(time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC))
	return sdktest.New(t, build(clk.Now), sdktest.WithClock(clk), sdktest.WithConfig(config), sdktest.Quiet())
}

func actions(out sdktest.Outcome) []*sdktest.Call {
	var calls []*sdktest.Call
	for _, c := range out.Calls {
		if c.Name != "kv_get" && c.Name != "kv_set" {
			calls = append(calls, c)
		}
	}
	return calls
}

func TestForwardsOnceFromSources(t *testing.T) {
	h := start(t, `{"sources":["@testchannel"],"target":"me"}`)
	post := sdktest.ChannelPost("news!")
	out := h.Handle(post)
	require.Empty(t, out.Err)
	calls := actions(out)
	require.Len(t, calls, 1)
	fwd := calls[0].Action.GetForward()
	require.Equal(t, "channel:5001", sdk.PeerString(fwd.GetFromChat()))
	require.Equal(t, "user:1000", sdk.PeerString(fwd.GetToChat()))
	require.False(t, fwd.GetDropAuthor())

	h.Redeliver(post)
	require.Len(t, h.Calls("forward"), 1, "a redelivered message is not sent twice")
	require.Empty(t, actions(h.Handle(sdktest.GroupText("not a source"))))
}

func TestCopyFiltersAndContentDedupe(t *testing.T) {
	h := start(t, `{"sources":["channel","chat:3001"],"target":"channel:77","mode":"copy",
		"keywords":["release"],"exclude_patterns":["(?i)beta"],"media":["text","photo"],"dedupe_content":true,"dedupe_window":"1h"}`)
	require.Empty(t, actions(h.Handle(sdktest.ChannelPost("nothing here"))), "no keyword")
	require.Empty(t, actions(h.Handle(sdktest.ChannelPost("Release 2 beta"))), "excluded")
	require.Empty(t, actions(h.Handle(sdktest.ChannelPost("release video", sdktest.WithMedia(pb.MediaKind_MEDIA_KIND_VIDEO)))), "media kind")

	out := h.Handle(sdktest.ChannelPost("Release 2.0 is out"))
	require.Len(t, actions(out), 1)
	require.True(t, actions(out)[0].Action.GetForward().GetDropAuthor(), "copy drops the author")
	require.Len(t, actions(h.Handle(sdktest.GroupText("release photo", sdktest.WithMedia(pb.MediaKind_MEDIA_KIND_PHOTO)))), 1)

	// The same text again from the group: a duplicate within the window.
	require.Empty(t, actions(h.Handle(sdktest.GroupText("Release  2.0 is out"))))
	h.Clock().Advance(2 * time.Hour)
	require.Len(t, actions(h.Handle(sdktest.GroupText("Release 2.0 is out"))), 1, "after the window it goes again")
}

func TestSendersAndOutgoing(t *testing.T) {
	h := start(t, `{"sources":["group"],"target":"me","senders":["@bob", "2001"]}`)
	require.Len(t, actions(h.Handle(sdktest.GroupText("from alice"))), 1, "2001 is Alice")
	require.Len(t, actions(h.Handle(sdktest.GroupText("from bob", sdktest.From(sdktest.Bob())))), 1)
	carol := &pb.User{Id: 3003, FirstName: "Carol"}
	require.Empty(t, actions(h.Handle(sdktest.GroupText("from carol", sdktest.From(carol)))))
	require.Empty(t, actions(h.Handle(sdktest.GroupText("mine", sdktest.Outgoing()))))
}

func TestLinks(t *testing.T) {
	h := start(t, `{"sources":["channel"],"target":"me","links":"strip"}`)
	out := h.Handle(sdktest.ChannelPost("Read https://example.com/a?b=1. And www.x.org!"))
	calls := actions(out)
	require.Len(t, calls, 1)
	require.Equal(t, "send", calls[0].Name, "a changed text is sent, not forwarded")
	require.Equal(t, "Read . And !", calls[0].Text())

	h = start(t, `{"sources":["channel"],"target":"me","links":"rewrite","link_rewrite":"https://r.example/?u={url}"}`)
	calls = actions(h.Handle(sdktest.ChannelPost("see t.me/foo/1, thanks", sdktest.WithMedia(pb.MediaKind_MEDIA_KIND_PHOTO))))
	require.Len(t, calls, 2)
	require.Equal(t, "forward", calls[0].Name)
	require.True(t, calls[0].Action.GetForward().GetDropAuthor())
	require.Equal(t, "edit", calls[1].Name)
	require.Equal(t, "see https://r.example/?u=t.me/foo/1, thanks", calls[1].Text())

	calls = actions(h.Handle(sdktest.ChannelPost("no links")))
	require.Equal(t, "forward", calls[0].Name)
	require.False(t, calls[0].Action.GetForward().GetDropAuthor(), "unchanged messages keep the mode")
}

func TestPrune(t *testing.T) {
	h := start(t, `{"sources":["channel"],"target":"me","dedupe_window":"2h"}`)
	h.Handle(sdktest.ChannelPost("one"))
	require.Len(t, h.KV(), 1)
	h.Tick(time.Hour)
	require.Len(t, h.KV(), 1, "still within the window")
	h.Tick(2 * time.Hour)
	require.Empty(t, h.KV(), "pruned after the window")
}

func TestBadConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{}`:                      "sources",
		`{"sources":["channel"]}`: "target",
		`{"sources":["channel"],"target":"channel"}`:                 "target",
		`{"sources":["channel"],"target":"me","mode":"move"}`:        "mode",
		`{"sources":["channel"],"target":"me","media":["gif"]}`:      "media[0]",
		`{"sources":["channel"],"target":"me","senders":["chat:1"]}`: "senders[0]",
		`{"sources":["channel"],"target":"me","links":"rewrite"}`:    "link_rewrite",
		`{"sources":["channel"],"target":"me","patterns":["["]}`:     "patterns[0]",
		`{"sources":["channel"],"target":"me","dedupe_window":"a"}`:  "dedupe_window",
	} {
		_, err := sdktest.Start(t, New(), sdktest.WithConfig(cfg), sdktest.Quiet())
		require.Error(t, err, cfg)
		require.Contains(t, err.Error(), want, cfg)
	}
}
