package guard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func tl(t testing.TB, req bin.Encoder) []byte {
	t.Helper()
	var b bin.Buffer
	require.NoError(t, req.Encode(&b))
	return b.Buf
}

func TestForbiddenMethodTable(t *testing.T) {
	tests := []struct {
		name      string
		req       []byte
		method    string
		forbidden bool
	}{
		{"views increment", tl(t, &tg.MessagesGetMessagesViewsRequest{Peer: &tg.InputPeerSelf{}, ID: []int{1}, Increment: true}), "messages.getMessagesViews", true},
		{"views read", tl(t, &tg.MessagesGetMessagesViewsRequest{Peer: &tg.InputPeerSelf{}, ID: []int{1}}), "messages.getMessagesViews", false},
		{"views truncated", tl(t, &tg.MessagesGetMessagesViewsRequest{Peer: &tg.InputPeerSelf{}, ID: []int{1}})[:6], "messages.getMessagesViews", true},
		{"delete account", tl(t, &tg.AccountDeleteAccountRequest{Reason: "x"}), "account.deleteAccount", true},
		{"2fa", tl(t, &tg.AccountUpdatePasswordSettingsRequest{Password: &tg.InputCheckPasswordEmpty{}}), "account.updatePasswordSettings", true},
		{"phone", tl(t, &tg.AccountChangePhoneRequest{}), "account.changePhone", true},
		{"phone code", tl(t, &tg.AccountSendChangePhoneCodeRequest{Settings: tg.CodeSettings{}}), "account.sendChangePhoneCode", true},
		{"export auth", tl(t, &tg.AuthExportAuthorizationRequest{DCID: 2}), "auth.exportAuthorization", true},
		{"reset auths", tl(t, &tg.AuthResetAuthorizationsRequest{}), "auth.resetAuthorizations", true},
		{"reset auth", tl(t, &tg.AccountResetAuthorizationRequest{Hash: 5}), "account.resetAuthorization", true},
		{"logout", tl(t, &tg.AuthLogOutRequest{}), "auth.logOut", true},
		{"qr accept", tl(t, &tg.AuthAcceptLoginTokenRequest{Token: []byte{1}}), "auth.acceptLoginToken", true},
		{"wrapper", tl(t, &tg.InvokeWithoutUpdatesRequest{Query: &tg.HelpGetConfigRequest{}}), "invokeWithoutUpdates", true},
		{"send", tl(t, &tg.MessagesSendMessageRequest{Peer: &tg.InputPeerSelf{}, Message: "hi"}), "messages.sendMessage", false},
		{"get config", tl(t, &tg.HelpGetConfigRequest{}), "help.getConfig", false},
		{"unknown", []byte{1, 2, 3, 4}, "#04030201", false},
		{"short", []byte{1, 2}, "", true},
		{"empty", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, forbidden := ForbiddenMethod(tt.req)
			require.Equal(t, tt.method, name)
			require.Equal(t, tt.forbidden, forbidden)
		})
	}
}

func FuzzForbiddenMethod(f *testing.F) {
	var b bin.Buffer
	_ = (&tg.MessagesGetMessagesViewsRequest{Peer: &tg.InputPeerSelf{}, ID: []int{1, 2}, Increment: true}).Encode(&b)
	f.Add(b.Buf)
	f.Add([]byte{})
	f.Add([]byte{0x78, 0x97, 0x3f, 0x3e})
	f.Fuzz(func(t *testing.T, req []byte) {
		name, forbidden := ForbiddenMethod(req)
		if len(req) < 4 && !forbidden {
			t.Fatalf("a request without a constructor id must be refused")
		}
		if id, ok := constructorID(req); ok && forbiddenMethods[id] != "" && !forbidden {
			t.Fatalf("%s allowed", name)
		}
	})
}

func TestNormalizeText(t *testing.T) {
	same := [][]string{
		{"Buy NOW: https://x.io/a?1 — 50% off!!", "buy now https://y.io/b 70% OFF"},
		{"Hello   @alice_bob, win 100$", "hello @someone_else win 5 $"},
		{"Join t.me/spamchannel now", "JOIN   t.me/other NOW!!!"},
		{"Visit example.com today", "visit spam.net today"},
	}
	for _, p := range same {
		require.Equal(t, NormalizeText(p[0]), NormalizeText(p[1]), "%q vs %q", p[0], p[1])
	}
	require.Equal(t, "buy now <url> 0 off", NormalizeText("Buy NOW: https://x.io/a?1 — 50% off!!"))
	require.Equal(t, "curl urls", NormalizeText("curl URLs"), "words containing url stay words")
	require.NotEqual(t, NormalizeText("see you at noon"), NormalizeText("see you at night"))
}

func FuzzNormalizeText(f *testing.F) {
	f.Add("Buy NOW: https://x.io/a?1 — 50% off!!")
	f.Add("\ue000\ue001 @user t.me/x")
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeText(s)
		if NormalizeText(" \t"+s+"!! \n") != n {
			t.Fatalf("%q: surrounding space and punctuation changed the form %q", s, n)
		}
		if strings.Contains(n, "  ") || strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") {
			t.Fatalf("%q: untidy spaces in %q", s, n)
		}
	})
}

func TestQuietEnd(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	night := &config.QuietHours{From: 23 * 60, To: 7 * 60, Location: berlin}
	day := &config.QuietHours{From: 12 * 60, To: 13*60 + 30, Location: time.UTC}
	at := func(loc *time.Location, d, h, m int) time.Time { return time.Date(2024, 3, d, h, m, 0, 0, loc) }
	tests := []struct {
		q    *config.QuietHours
		now  time.Time
		in   bool
		ends time.Time
	}{
		{night, at(berlin, 10, 23, 30), true, at(berlin, 11, 7, 0)},
		{night, at(berlin, 11, 2, 0), true, at(berlin, 11, 7, 0)},
		{night, at(berlin, 11, 7, 0), false, time.Time{}},
		{night, at(berlin, 11, 22, 59), false, time.Time{}},
		// 22:30 UTC is 23:30 in Berlin in March (before DST).
		{night, at(time.UTC, 10, 22, 30), true, at(berlin, 11, 7, 0)},
		{day, at(time.UTC, 10, 12, 0), true, at(time.UTC, 10, 13, 30)},
		{day, at(time.UTC, 10, 13, 30), false, time.Time{}},
		{&config.QuietHours{From: 60, To: 60}, at(time.UTC, 10, 1, 0), false, time.Time{}},
	}
	for i, tt := range tests {
		end, in := quietEnd(tt.q, tt.now)
		require.Equal(t, tt.in, in, "case %d", i)
		if tt.in {
			require.True(t, tt.ends.Equal(end), "case %d: ends %v, want %v", i, end, tt.ends)
		}
	}
}

func TestDupTracker(t *testing.T) {
	cfg := config.DuplicateText{MaxChats: 2, Window: time.Minute, Allow: []string{"news", "rule:digest"}}
	d := newDupTracker(nil, nil)
	now := time.Unix(1000, 0)
	in := func(chat, text string) info { return info{chatKey: chat, text: text} }
	text := "Limited offer, only today at our shop"
	for _, chat := range []string{"user:1", "user:2"} {
		_, why := d.check("plugin:p", in(chat, text), now, cfg)
		require.Empty(t, why)
		d.record(context.Background(), in(chat, text), now, cfg)
	}
	// The same chat again is fine; a third chat is not.
	_, why := d.check("plugin:p", in("user:1", text), now, cfg)
	require.Empty(t, why)
	retry, why := d.check("plugin:p", in("user:3", strings.ToUpper(text)), now.Add(10*time.Second), cfg)
	require.Contains(t, why, "likely spam")
	require.Contains(t, why, `add "p" to limits.duplicate_text.allow`)
	require.Equal(t, 50*time.Second, retry)
	// Allowed sources, replies and short texts pass.
	_, why = d.check("plugin:news", in("user:3", text), now, cfg)
	require.Empty(t, why)
	_, why = d.check("rule:digest", in("user:3", text), now, cfg)
	require.Empty(t, why)
	_, why = d.check("plugin:p", info{chatKey: "user:3", text: text, reply: true}, now, cfg)
	require.Empty(t, why)
	for _, chat := range []string{"user:1", "user:2", "user:3"} {
		d.record(context.Background(), in(chat, "thanks!"), now, cfg)
	}
	_, why = d.check("plugin:p", in("user:4", "thanks!"), now, cfg)
	require.Empty(t, why, "short everyday texts are exempt")
	// After the window it may go again.
	_, why = d.check("plugin:p", in("user:3", text), now.Add(time.Minute), cfg)
	require.Empty(t, why)
}

// The duplicate-text memory is in the store: a new tracker on the same
// storage (a restart) refuses what the old one would have, and records
// past the window are dropped from storage.
func TestDupTrackerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/data"
	cfg := config.DuplicateText{MaxChats: 2, Window: time.Minute}
	now := time.Unix(1000, 0)
	in := func(chat, text string) info { return info{chatKey: chat, text: text} }
	text := "Limited offer, only today at our shop"
	open := func() (*dupTracker, store.KV, func()) {
		st, err := store.Open(ctx, dir, store.Options{})
		require.NoError(t, err)
		kv := store.Bolt(st).PluginKV(kvNamespace)
		return newDupTracker(kv, nil), kv, func() { require.NoError(t, st.Close()) }
	}

	d, _, closeFirst := open()
	require.NoError(t, d.load(ctx, now, cfg.Window))
	for _, chat := range []string{"user:1", "user:2"} {
		_, why := d.check("plugin:p", in(chat, text), now, cfg)
		require.Empty(t, why)
		d.record(ctx, in(chat, text), now, cfg)
	}
	d.record(ctx, in("user:1", "another long text that went to one chat"), now.Add(-50*time.Second), cfg)
	closeFirst()

	d, kv, closeStore := open()
	require.NoError(t, d.load(ctx, now.Add(20*time.Second), cfg.Window))
	retry, why := d.check("plugin:p", in("user:3", text), now.Add(20*time.Second), cfg)
	require.Contains(t, why, "likely spam", "the restart did not reset the memory")
	require.Equal(t, 40*time.Second, retry)
	pairs, err := kv.List(ctx, prefixDup, 0)
	require.NoError(t, err)
	require.Len(t, pairs, 1, "the text older than the window was dropped on load")
	closeStore()

	d, kv, closeStore = open()
	defer closeStore()
	later := now.Add(2 * time.Minute)
	require.NoError(t, d.load(ctx, later, cfg.Window))
	_, why = d.check("plugin:p", in("user:3", text), later, cfg)
	require.Empty(t, why)
	pairs, err = kv.List(ctx, prefixDup, 0)
	require.NoError(t, err)
	require.Empty(t, pairs, "expired records are deleted")
}

func TestLaneOrderAndGivingUp(t *testing.T) {
	st, err := store.Open(context.Background(), t.TempDir()+"/data", store.Options{})
	require.NoError(t, err)
	defer st.Close()
	g := New(config.Default().Limits, Deps{Store: store.Bolt(st)}, Options{})
	defer g.Close(context.Background())
	l1, t1 := g.enqueue("user:1")
	l2, t2 := g.enqueue("user:1")
	l3, t3 := g.enqueue("user:1")
	_, other := g.enqueue("user:2")
	require.True(t, closed(t1))
	require.True(t, closed(other))
	require.False(t, closed(t2))
	// The second gives up its place; the third is next after the first.
	g.release(l2, t2)
	g.release(l1, t1)
	require.True(t, closed(t3))
	require.False(t, closed(t2))
	g.release(l3, t3)
	g.mu.Lock()
	_, ok := g.lanes["user:1"]
	g.mu.Unlock()
	require.False(t, ok, "an idle lane is forgotten")
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAuditFilterAndDigest(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/data", store.Options{})
	require.NoError(t, err)
	defer st.Close()
	g := New(config.Default().Limits, Deps{Store: store.Bolt(st)}, Options{})
	defer g.Close(ctx)
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	recs := []AuditRecord{
		{Time: t0, Source: "plugin:echo", Kind: "send", Chat: "user:1", Outcome: OutcomeOK},
		{Time: t0.Add(time.Minute), Source: "plugin:echo", Kind: "send", Chat: "user:2", Outcome: OutcomeThrottled, Reason: "likely spam: the same text already went to 5 chats"},
		{Time: t0.Add(2 * time.Minute), Source: "rule:echo", Kind: "react", Chat: "user:1", Outcome: OutcomeOK},
		{Time: t0.Add(3 * time.Minute), Source: "owner", Kind: "pause", Outcome: OutcomeOK, Reason: "maintenance"},
		{Time: t0.Add(4 * time.Minute), Source: "plugin:evil", Kind: "raw_invoke", Method: "auth.logOut", Outcome: OutcomeDenied, Reason: "auth.logOut is never allowed"},
	}
	for _, r := range recs {
		g.Record(r)
	}
	get := func(f AuditFilter) []AuditRecord {
		out, err := g.Audit(ctx, f)
		require.NoError(t, err)
		return out
	}
	require.Len(t, get(AuditFilter{}), 5)
	require.Len(t, get(AuditFilter{Plugin: "echo"}), 3)
	require.Len(t, get(AuditFilter{Source: "plugin:echo"}), 2)
	require.Len(t, get(AuditFilter{Chat: "user:1"}), 2)
	require.Len(t, get(AuditFilter{Outcome: OutcomeDenied}), 1)
	require.Len(t, get(AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}), 2)
	last := get(AuditFilter{Limit: 2})
	require.Len(t, last, 2)
	require.Equal(t, "plugin:evil", last[1].Source)

	text, err := g.Digest(ctx, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Contains(t, text, "plugin:echo: 1 send")
	require.Contains(t, text, "outcomes: 1 ok, 1 throttled")
	require.Contains(t, text, "1× plugin:echo throttled: likely spam")
	require.Contains(t, text, "1× plugin:evil denied")
	require.Contains(t, text, "pause maintenance")
	empty, err := g.Digest(ctx, t0.Add(-time.Hour), t0)
	require.NoError(t, err)
	require.Contains(t, empty, "No actions.")
}

func TestDryRunResultMarksMessages(t *testing.T) {
	peer := &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 5}
	a := &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: peer, Text: "x"}}}
	r := dryRunResult(a, describe(a), time.Unix(100, 0))
	require.Zero(t, r.GetMessage().GetId())
	require.Equal(t, "x", r.GetMessage().GetText())
	edit := &pb.Action{Kind: &pb.Action_Edit{Edit: &pb.EditMessage{Chat: peer, MessageId: 1, Text: "y"}}}
	require.NotNil(t, dryRunResult(edit, describe(edit), time.Unix(100, 0)).GetOk())
}

func TestLongQueueIsRefusedUpFront(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/data", store.Options{})
	require.NoError(t, err)
	defer st.Close()
	limits := config.Default().Limits
	limits.PersistWaiting = false
	g := New(limits, Deps{Store: store.Bolt(st)}, Options{MaxQueueWait: 2 * time.Second})
	release := make(chan struct{})
	next := ExecutorFunc(func(ctx context.Context, call action.Call) *pb.ActionResult {
		<-release
		return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}
	})
	w := g.Wrap(next)
	peer := &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 7}
	msg := func(i int) action.Call {
		return action.Call{Source: PluginSource("p"), Action: &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: peer, Text: strings.Repeat("x", i+1)}}}}
	}
	var chans []<-chan *pb.ActionResult
	for i := 0; i < 4; i++ {
		chans = append(chans, w.Submit(ctx, msg(i)))
	}
	// One runs, three wait at 1/s: a fifth would wait about 3 s.
	r := <-w.Submit(ctx, msg(4))
	require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().GetCode())
	require.Contains(t, r.GetError().GetMessage(), "maximum queue wait")
	require.Equal(t, int32(3), r.GetError().GetRetryAfterSeconds())
	// The owner is never refused for it.
	owner := msg(5)
	owner.Source = SourceOwner
	ownerCh := w.Submit(ctx, owner)
	close(release)
	for _, ch := range append(chans, ownerCh) {
		require.Nil(t, (<-ch).GetError())
	}
	require.NoError(t, g.Close(ctx))
}

func TestAuditAfterCloseIsWrittenThrough(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/data", store.Options{})
	require.NoError(t, err)
	defer st.Close()
	g := New(config.Default().Limits, Deps{Store: store.Bolt(st)}, Options{})
	g.Record(AuditRecord{Source: "owner", Kind: "send", Outcome: OutcomeOK})
	require.NoError(t, g.Close(ctx))
	g.Record(AuditRecord{Source: "runner", Kind: "send", Outcome: OutcomeOK})
	g.Pause("late")
	recs, err := ReadAudit(ctx, st, AuditFilter{})
	require.NoError(t, err)
	require.Len(t, recs, 3)
}

func TestCallerGivingUp(t *testing.T) {
	for _, persist := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "persisted"}[persist], func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, t.TempDir()+"/data", store.Options{})
			require.NoError(t, err)
			defer st.Close()
			limits := config.Default().Limits
			limits.PersistWaiting = persist
			g := New(limits, Deps{Store: store.Bolt(st)}, Options{})
			done := make(chan string, 1)
			w := g.Wrap(ExecutorFunc(func(ctx context.Context, call action.Call) *pb.ActionResult {
				done <- call.Action.GetSend().GetText()
				return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}
			}))
			g.Pause("hold")
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			r := w.Execute(short, action.Call{Source: SourceOwner, Action: &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{
				Chat: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: 9}, Text: "later"}}}})
			require.Equal(t, pb.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED, r.GetError().GetCode())
			g.Resume()
			if persist {
				require.Contains(t, r.GetError().GetMessage(), "will still be done")
				require.Equal(t, "later", <-done)
				require.Eventually(t, func() bool {
					l, err := st.Outbox().List(ctx)
					return err == nil && len(l) == 0
				}, 5*time.Second, time.Millisecond)
			} else {
				require.Contains(t, r.GetError().GetMessage(), "it was not done")
				require.NoError(t, g.Close(ctx))
				require.Empty(t, done, "an abandoned action never runs")
			}
			require.NoError(t, g.Close(ctx))
		})
	}
}

// An owner pause outlives the guard: a new guard on the same storage (a
// restart, or another runner taking the account over) starts paused with
// the same reason and time, until Resume, which is kept too.
func TestPauseSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/data"
	never := ExecutorFunc(func(context.Context, action.Call) *pb.ActionResult {
		t.Error("nothing was queued, nothing may run")
		return nil
	})
	withGuard := func(f func(g *Guard)) {
		st, err := store.Open(ctx, dir, store.Options{})
		require.NoError(t, err)
		defer st.Close()
		g := New(config.Default().Limits, Deps{Store: store.Bolt(st)}, Options{})
		defer g.Close(ctx)
		_, err = g.Recover(ctx, never)
		require.NoError(t, err)
		f(g)
	}
	var since time.Time
	withGuard(func(g *Guard) {
		require.False(t, g.Snapshot(ctx).Paused)
		g.Pause("something is spamming")
		since = g.Snapshot(ctx).PausedSince
	})
	withGuard(func(g *Guard) {
		s := g.Snapshot(ctx)
		require.True(t, s.Paused, "the pause is back after the restart")
		require.Equal(t, "something is spamming", s.PauseReason)
		require.True(t, s.PausedSince.Equal(since), "since %v, want %v", s.PausedSince, since)
		g.Resume()
	})
	withGuard(func(g *Guard) {
		require.False(t, g.Snapshot(ctx).Paused, "the resume is kept too")
	})
}

// An outside pause switch holds writes while it is on, wakes waiting
// actions when it goes off, and counts as on while it cannot be read.
func TestPauseCheck(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir()+"/data", store.Options{})
	require.NoError(t, err)
	defer st.Close()
	var mu sync.Mutex
	reason, on, failing := "", false, error(nil)
	set := func(r string, o bool, err error) {
		mu.Lock()
		reason, on, failing = r, o, err
		mu.Unlock()
	}
	g := New(config.Default().Limits, Deps{Store: store.Bolt(st)}, Options{
		PauseFilePoll: 20 * time.Millisecond,
		PauseCheck: func(context.Context) (string, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return reason, on, failing
		},
	})
	defer g.Close(ctx)
	require.False(t, g.Snapshot(ctx).Paused)
	set("fleet test", true, nil)
	require.Eventually(t, func() bool { return g.Snapshot(ctx).PauseReason == "fleet test" }, 2*time.Second, 5*time.Millisecond)
	require.True(t, g.Snapshot(ctx).Paused)
	set("", false, errors.New("redis: connection refused"))
	require.Eventually(t, func() bool {
		return strings.Contains(g.Snapshot(ctx).PauseReason, "cannot read the fleet's pause switch")
	}, 2*time.Second, 5*time.Millisecond)
	set("", false, nil)
	require.Eventually(t, func() bool { return !g.Snapshot(ctx).Paused }, 2*time.Second, 5*time.Millisecond)
}
