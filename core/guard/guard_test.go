package guard_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/action"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// submitAll submits the texts in order (each takes its place in the chat's
// queue before the next is submitted) and waits for every result.
func submitAll(t testing.TB, ctx context.Context, w *guard.Guarded, source string, to *pb.Peer, texts []string) []*pb.ActionResult {
	t.Helper()
	chans := make([]<-chan *pb.ActionResult, len(texts))
	for i, text := range texts {
		chans[i] = w.Submit(ctx, send(source, to, text))
	}
	out := make([]*pb.ActionResult, len(texts))
	for i, ch := range chans {
		select {
		case out[i] = <-ch:
		case <-ctx.Done():
			t.Fatalf("result %d: %v", i, ctx.Err())
		}
	}
	return out
}

// maxInWindow is the most calls in any window of length w.
func maxInWindow(times []time.Time, w time.Duration) int {
	best := 0
	j := 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		if n := i - j + 1; n > best {
			best = n
		}
	}
	return best
}

func TestFiveHundredToOneChatStayWithinTheRate(t *testing.T) {
	// The sandbox enforces slightly more than the configured 50/s (burst 3):
	// if the guard let more through it would answer FLOOD_WAIT.
	e := newEnv(t, sandbox.Faults{ChatLimit: sandbox.Limit{Count: 56, Window: time.Second}}, nil)
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	alice, peer := e.user("alice")
	e.wroteFirst(alice)

	texts := numbered("flood", 500)
	start := time.Now()
	results := submitAll(t, e.ctx, w, guard.PluginSource("flooder"), peer, texts)
	elapsed := time.Since(start)
	for i, r := range results {
		require.Nil(t, r.GetError(), "message %d", i)
		require.NotZero(t, r.GetMessage().GetId(), "message %d", i)
	}
	require.Equal(t, texts, e.history(sandbox.UserPeer(alice.ID)), "all 500 delivered in order")
	require.Zero(t, e.floodWaits(), "the sandbox never answered FLOOD_WAIT")

	var times []time.Time
	for _, c := range e.wire.snapshot() {
		if c.kind == "send" {
			times = append(times, c.at)
		}
	}
	require.Len(t, times, 500)
	// Token bucket: at most burst + rate*window in any window.
	require.LessOrEqual(t, maxInWindow(times, time.Second), 3+50+1)
	// And not much slower than the rate either: 497 tokens at 50/s.
	require.Greater(t, elapsed, 9*time.Second)
	require.Less(t, elapsed, 15*time.Second)
	t.Logf("500 messages in %s (%.2f/s)", elapsed, float64(len(times)-3)/elapsed.Seconds())

	recs := audit(t, g, guard.AuditFilter{Plugin: "flooder", Chat: peerString(peer)})
	require.Equal(t, map[string]int{guard.OutcomeOK: 500}, countOutcomes(recs))
	var waited int
	for _, r := range recs {
		if r.Wait > 0 {
			waited++
		}
	}
	require.Greater(t, waited, 400, "the audit records the time spent waiting for the rate")
}

func TestStricterSandboxFloodWaitIsWaitedOut(t *testing.T) {
	// The config allows 50/s; the sandbox only 5 per second to this chat.
	e := newEnv(t, sandbox.Faults{ChatLimit: sandbox.Limit{Count: 5, Window: time.Second}}, nil)
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	bob, peer := e.user("bob")
	e.wroteFirst(bob)

	texts := numbered("strict", 20)
	for i, r := range submitAll(t, e.ctx, w, guard.PluginSource("p"), peer, texts) {
		require.Nil(t, r.GetError(), "message %d", i)
	}
	require.Equal(t, texts, e.history(sandbox.UserPeer(bob.ID)))
	require.Positive(t, e.floodWaits(), "the waiter saw FLOOD_WAIT and waited it out")
}

func TestFloodWaitBeyondMaxWait(t *testing.T) {
	for _, onExceed := range []string{config.OnExceedRetryLater, config.OnExceedFail} {
		t.Run(onExceed, func(t *testing.T) {
			// 3 sends per 3 s: the 4th gets FLOOD_WAIT_3, longer than the
			// waiter's 1 s maximum, so the waiter gives up and the guard
			// decides.
			e := newEnv(t, sandbox.Faults{MethodLimits: map[string]sandbox.Limit{
				"messages.sendMessage": {Count: 3, Window: 3 * time.Second},
			}}, func(c *config.Config) {
				c.Limits.FloodWait = config.FloodWait{MaxWait: time.Second, MaxRetries: 5, OnExceed: onExceed}
			})
			g := e.guard(guard.Options{})
			w := g.Wrap(e.wire)
			carol, peer := e.user("carol")
			e.wroteFirst(carol)

			texts := numbered("fw", 5)
			results := submitAll(t, e.ctx, w, guard.PluginSource("p"), peer, texts)
			recs := audit(t, g, guard.AuditFilter{Plugin: "p"})
			if onExceed == config.OnExceedFail {
				require.Nil(t, results[2].GetError())
				e3 := results[3].GetError()
				require.NotNil(t, e3, "the 4th fails visibly")
				require.Equal(t, pb.ErrorCode_ERROR_CODE_FLOOD_WAIT, e3.Code)
				require.Positive(t, e3.RetryAfterSeconds)
				require.Equal(t, texts[:3], e.history(sandbox.UserPeer(carol.ID))[:3])
				require.Positive(t, countOutcomes(recs)[guard.OutcomeError])
				return
			}
			for i, r := range results {
				require.Nil(t, r.GetError(), "message %d is kept and retried, not failed", i)
			}
			require.Equal(t, texts, e.history(sandbox.UserPeer(carol.ID)))
			c := countOutcomes(recs)
			require.Equal(t, 5, c[guard.OutcomeOK])
			require.Positive(t, c[guard.OutcomeQueued], "the audit shows the action kept for retry")
			for _, r := range recs {
				if r.Outcome == guard.OutcomeQueued {
					require.Equal(t, "FLOOD_WAIT", r.Code)
					require.Positive(t, r.RetryAfter)
				}
			}
		})
	}
}

func TestSameTextToManyChatsIsHeldBack(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) {
		c.Limits.DuplicateText = config.DuplicateText{MaxChats: 5, Window: time.Hour, Allow: []string{"newsletter"}}
	})
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	var peers []*pb.Peer
	var users []*sandbox.User
	for i := 0; i < 50; i++ {
		u, p := e.user("target")
		users, peers = append(users, u), append(peers, p)
	}
	spam := "Earn 500$ a day from home! Details: https://example.com/join?id=%d"
	var ok, held int
	for i, p := range peers {
		// Near-duplicates: different numbers and links, different case.
		text := strings.ReplaceAll(spam, "%d", string(rune('a'+i%26)))
		if i%2 == 1 {
			text = strings.ToUpper(text)
		}
		r := w.Execute(e.ctx, send(guard.PluginSource("spammer"), p, text))
		if r.GetError() == nil {
			ok++
			continue
		}
		held++
		require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().Code)
		require.Contains(t, r.GetError().Message, "likely spam")
		require.Contains(t, r.GetError().Message, "limits.duplicate_text.allow")
		require.Positive(t, r.GetError().RetryAfterSeconds)
	}
	require.Equal(t, 5, ok)
	require.Equal(t, 45, held)
	sent := 0
	for _, u := range users {
		sent += len(e.history(sandbox.UserPeer(u.ID)))
	}
	require.Equal(t, 5, sent, "only the first 5 reached the server")

	// A reply is not a broadcast, and an allowed source may broadcast.
	reply := &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: peers[10], Text: "Earn 500$ a day from home! Details: https://example.com/join?id=z", ReplyToMessageId: 1}}}
	require.Nil(t, w.Execute(e.ctx, action.Call{Source: guard.PluginSource("spammer"), Action: reply}).GetError())
	for _, p := range peers[20:30] {
		require.Nil(t, w.Execute(e.ctx, send(guard.PluginSource("newsletter"), p, "Our weekly newsletter is out, read it at https://example.org")).GetError())
	}

	recs := audit(t, g, guard.AuditFilter{Plugin: "spammer", Outcome: guard.OutcomeThrottled})
	require.Len(t, recs, 45)
	require.Contains(t, recs[0].Reason, "likely spam")
}

func TestFirstContactsPerDayAndPeerFlood(t *testing.T) {
	e := newEnv(t, sandbox.Faults{PeerFloodLimit: 3}, func(c *config.Config) {
		c.Limits.FirstContacts = config.FirstContacts{PerDay: 2, PeerFloodPause: time.Hour}
	})
	var notified []string
	var mu sync.Mutex
	g := e.guard(guard.Options{}, func(d *guard.Deps) {
		d.Notify = func(ctx context.Context, text string) {
			mu.Lock()
			notified = append(notified, text)
			mu.Unlock()
		}
	})
	w := g.Wrap(e.wire)
	src := guard.PluginSource("outreach")
	var strangers []*pb.Peer
	for i := 0; i < 4; i++ {
		_, p := e.user("stranger")
		strangers = append(strangers, p)
	}
	friend, friendPeer := e.user("friend")
	e.wroteFirst(friend)

	require.Nil(t, w.Execute(e.ctx, send(src, strangers[0], "hello one")).GetError())
	require.Nil(t, w.Execute(e.ctx, send(src, strangers[1], "hello two")).GetError())
	// Writing again to someone already contacted is not a new conversation.
	require.Nil(t, w.Execute(e.ctx, send(src, strangers[0], "hello again")).GetError())
	r := w.Execute(e.ctx, send(src, strangers[2], "hello three"))
	require.NotNil(t, r.GetError(), "the third stranger today is refused")
	require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().Code)
	require.Contains(t, r.GetError().Message, "limits.first_contacts.per_day")
	// People who wrote first are not limited.
	require.Nil(t, w.Execute(e.ctx, send(src, friendPeer, "hi friend")).GetError())

	// A fresh day's budget, but the sandbox only tolerates 3 strangers: the
	// 4th answers PEER_FLOOD and first contacts pause.
	g2 := e.guard(guard.Options{}, func(d *guard.Deps) {
		d.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		d.Notify = func(ctx context.Context, text string) {
			mu.Lock()
			notified = append(notified, text)
			mu.Unlock()
		}
	})
	w2 := g2.Wrap(e.wire)
	require.Nil(t, w2.Execute(e.ctx, send(src, strangers[2], "hello three")).GetError())
	r = w2.Execute(e.ctx, send(src, strangers[3], "hello four"))
	require.NotNil(t, r.GetError())
	require.Equal(t, "PEER_FLOOD", r.GetError().RpcError)
	require.False(t, g2.FirstContactsPausedUntil(e.ctx).IsZero(), "first contacts are paused")
	_, p5 := e.user("stranger")
	r = w2.Execute(e.ctx, send(src, p5, "hello five"))
	require.NotNil(t, r.GetError())
	require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().Code)
	require.Contains(t, r.GetError().Message, "PEER_FLOOD")
	require.Positive(t, r.GetError().RetryAfterSeconds)
	// Others are still fine.
	require.Nil(t, w2.Execute(e.ctx, send(src, friendPeer, "still here")).GetError())
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notified) == 1 && strings.Contains(notified[0], "PEER_FLOOD")
	}, 5*time.Second, 5*time.Millisecond, "the user is told")
	require.Positive(t, e.logs.FilterMessage("PEER_FLOOD: first contacts paused").Len(), "logged at WARN")

	recs := audit(t, g2, guard.AuditFilter{})
	var pause, throttled int
	for _, r := range recs {
		if r.Kind == "first_contacts_pause" {
			pause++
		}
		if r.Outcome == guard.OutcomeThrottled {
			throttled++
		}
	}
	require.Equal(t, 1, pause)
	require.Equal(t, 2, throttled, "one per-day refusal (first guard) and one PEER_FLOOD refusal")
}

// encode serializes a TL request as raw_invoke carries it.
func encode(t testing.TB, req bin.Encoder) []byte {
	t.Helper()
	var b bin.Buffer
	require.NoError(t, req.Encode(&b))
	return b.Buf
}

func forbiddenRequests(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"messages.getMessagesViews":      encode(t, &tg.MessagesGetMessagesViewsRequest{Peer: &tg.InputPeerSelf{}, ID: []int{1}, Increment: true}),
		"account.deleteAccount":          encode(t, &tg.AccountDeleteAccountRequest{Reason: "bye"}),
		"account.updatePasswordSettings": encode(t, &tg.AccountUpdatePasswordSettingsRequest{Password: &tg.InputCheckPasswordEmpty{}}),
		"account.changePhone":            encode(t, &tg.AccountChangePhoneRequest{PhoneNumber: "1", PhoneCodeHash: "h", PhoneCode: "1"}),
		"account.sendChangePhoneCode":    encode(t, &tg.AccountSendChangePhoneCodeRequest{PhoneNumber: "1"}),
		"auth.exportAuthorization":       encode(t, &tg.AuthExportAuthorizationRequest{DCID: 1}),
		"auth.resetAuthorizations":       encode(t, &tg.AuthResetAuthorizationsRequest{}),
		"account.resetAuthorization":     encode(t, &tg.AccountResetAuthorizationRequest{Hash: 1}),
		"auth.logOut":                    encode(t, &tg.AuthLogOutRequest{}),
		"auth.acceptLoginToken":          encode(t, &tg.AuthAcceptLoginTokenRequest{Token: []byte("t")}),
		"invokeWithLayer":                encode(t, &tg.InvokeWithLayerRequest{Layer: 1, Query: &tg.AuthLogOutRequest{}}),
	}
}

func TestForbiddenMethodsRefused(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, nil)
	g := e.guard(guard.Options{})
	// Count what reaches the executor; for the owner, answer without
	// touching the sandbox account.
	var reached []string
	var mu sync.Mutex
	next := guard.ExecutorFunc(func(ctx context.Context, call action.Call) *pb.ActionResult {
		mu.Lock()
		reached = append(reached, call.Source+" "+guard.MethodName(call.Action.GetRawInvoke().GetRequestTl()))
		mu.Unlock()
		if call.Source == guard.SourceOwner {
			return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}
		}
		return e.wire.Execute(ctx, call)
	})
	w := g.Wrap(next)
	raw := func(source string, req []byte) *pb.ActionResult {
		return w.Execute(e.ctx, action.Call{Source: source, Action: &pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: req}}}})
	}
	reqs := forbiddenRequests(t)
	for name, req := range reqs {
		got, forbidden := guard.ForbiddenMethod(req)
		require.True(t, forbidden, name)
		require.Equal(t, name, got)
		for _, src := range []string{guard.PluginSource("evil"), guard.RuleSource("r"), guard.SourceRunner} {
			r := raw(src, req)
			require.NotNil(t, r.GetError(), "%s from %s", name, src)
			require.Equal(t, pb.ErrorCode_ERROR_CODE_FORBIDDEN, r.GetError().Code, "%s from %s", name, src)
			require.Contains(t, r.GetError().Message, "never allowed")
		}
	}
	require.Empty(t, reached, "nothing forbidden reached the executor")

	// Reading view counts without increment is fine, and reaches the server.
	views := encode(t, &tg.MessagesGetMessagesViewsRequest{Peer: &tg.InputPeerSelf{}, ID: []int{1}})
	_, forbidden := guard.ForbiddenMethod(views)
	require.False(t, forbidden)
	r := raw(guard.PluginSource("evil"), views)
	if r.GetError() != nil {
		require.NotEqual(t, pb.ErrorCode_ERROR_CODE_FORBIDDEN, r.GetError().Code, r.GetError().Message)
	}
	require.Len(t, reached, 1)

	// The owner is exempt.
	for name, req := range reqs {
		if name == "invokeWithLayer" {
			continue
		}
		require.Nil(t, raw(guard.SourceOwner, req).GetError(), name)
	}
	require.Len(t, reached, 1+len(reqs)-1)

	denied := audit(t, g, guard.AuditFilter{Outcome: guard.OutcomeDenied})
	require.Len(t, denied, 3*len(reqs))
	methods := map[string]bool{}
	for _, r := range denied {
		require.Equal(t, "raw_invoke", r.Kind)
		require.Equal(t, "FORBIDDEN", r.Code)
		methods[r.Method] = true
	}
	require.Len(t, methods, len(reqs))
}

func TestDryRunSendsNothing(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) { c.Limits.DryRun = true })
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	dave, peer := e.user("dave")
	e.wroteFirst(dave)
	for _, text := range numbered("dry", 3) {
		r := w.Execute(e.ctx, send(guard.SourceOwner, peer, text))
		require.Nil(t, r.GetError())
		require.Zero(t, r.GetMessage().GetId(), "a dry-run message has id 0")
		require.Equal(t, text, r.GetMessage().GetText())
	}
	// Reads still pass.
	r := w.Execute(e.ctx, action.Call{Source: guard.SourceOwner, Action: &pb.Action{Kind: &pb.Action_GetMe{GetMe: &pb.GetMe{}}}})
	require.Nil(t, r.GetError())
	require.Empty(t, e.history(sandbox.UserPeer(dave.ID)))
	for _, c := range e.wire.snapshot() {
		require.NotEqual(t, "send", c.kind, "no send reached the executor")
	}
	recs := audit(t, g, guard.AuditFilter{Outcome: guard.OutcomeDryRun})
	require.Len(t, recs, 3)

	g.SetDryRun(false)
	require.NotZero(t, w.Execute(e.ctx, send(guard.SourceOwner, peer, "for real")).GetMessage().GetId())
	require.Equal(t, []string{"for real"}, e.history(sandbox.UserPeer(dave.ID)))
}

func TestPauseStopsEverythingAndResumeLosesNothing(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) { c.Limits.PersistWaiting = false })
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	erin, p1 := e.user("erin")
	frank, p2 := e.user("frank")
	e.wroteFirst(erin)
	e.wroteFirst(frank)

	g.Pause("test pause")
	texts := numbered("paused", 10)
	var chans []<-chan *pb.ActionResult
	for i, text := range texts {
		to := p1
		if i%2 == 1 {
			to = p2
		}
		chans = append(chans, w.Submit(e.ctx, send(guard.PluginSource("p"), to, text)))
	}
	require.Eventually(t, func() bool { return g.Snapshot(e.ctx).Waiting == 10 }, 5*time.Second, time.Millisecond)
	snap := g.Snapshot(e.ctx)
	require.True(t, snap.Paused)
	require.Equal(t, "test pause", snap.PauseReason)
	// Reads pass while paused.
	require.Nil(t, w.Execute(e.ctx, action.Call{Source: guard.PluginSource("p"), Action: &pb.Action{Kind: &pb.Action_GetMe{GetMe: &pb.GetMe{}}}}).GetError())
	require.Never(t, func() bool {
		return len(e.history(sandbox.UserPeer(erin.ID)))+len(e.history(sandbox.UserPeer(frank.ID))) > 0
	}, 300*time.Millisecond, 10*time.Millisecond, "nothing is sent while paused")

	g.Resume()
	for i, ch := range chans {
		r := <-ch
		require.Nil(t, r.GetError(), "message %d", i)
	}
	var want1, want2 []string
	for i, text := range texts {
		if i%2 == 0 {
			want1 = append(want1, text)
		} else {
			want2 = append(want2, text)
		}
	}
	require.Equal(t, want1, e.history(sandbox.UserPeer(erin.ID)))
	require.Equal(t, want2, e.history(sandbox.UserPeer(frank.ID)))

	recs := audit(t, g, guard.AuditFilter{})
	kinds := map[string]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	require.Equal(t, 1, kinds["pause"])
	require.Equal(t, 1, kinds["resume"])
	require.Equal(t, 10, kinds["send"])
}

func TestPauseFile(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, nil)
	file := t.TempDir() + "/PAUSED"
	require.NoError(t, writeFile(file))
	g := e.guard(guard.Options{PauseFile: file, PauseFilePoll: 10 * time.Millisecond})
	w := g.Wrap(e.wire)
	gina, peer := e.user("gina")
	e.wroteFirst(gina)
	ch := w.Submit(e.ctx, send(guard.SourceOwner, peer, "after the file is gone"))
	require.Eventually(t, func() bool { return g.Snapshot(e.ctx).Waiting == 1 }, 5*time.Second, time.Millisecond)
	require.Contains(t, g.Snapshot(e.ctx).PauseReason, "pause file")
	require.NoError(t, removeFile(file))
	require.Nil(t, (<-ch).GetError())
	require.Equal(t, []string{"after the file is gone"}, e.history(sandbox.UserPeer(gina.ID)))
}

func TestWaitingActionsSurviveARestart(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) { c.Limits.PersistWaiting = true })
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	hank, peer := e.user("hank")
	e.wroteFirst(hank)
	require.Nil(t, w.Execute(e.ctx, send(guard.PluginSource("p"), peer, "before")).GetError())

	g.Pause("maintenance")
	texts := numbered("kept", 5)
	var chans []<-chan *pb.ActionResult
	for _, text := range texts {
		call := send(guard.PluginSource("p"), peer, text)
		call.Label = "kept-label"
		chans = append(chans, w.Submit(e.ctx, call))
	}
	require.Eventually(t, func() bool {
		list, err := e.st.Outbox().List(e.ctx)
		return err == nil && len(list) == 5
	}, 5*time.Second, time.Millisecond, "all five are in the durable queue")
	// The runner stops: the guard closes with the actions still waiting.
	require.NoError(t, g.Close(e.ctx))
	for _, ch := range chans {
		r := <-ch
		require.NotNil(t, r.GetError())
		require.Equal(t, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, r.GetError().Code)
		require.Contains(t, r.GetError().Message, "stays queued")
	}
	require.Equal(t, []string{"before"}, e.history(sandbox.UserPeer(hank.ID)))

	// A new guard (a restarted runner) takes them back, still paused: the
	// owner's pause outlives the restart. Resumed, they go in order.
	g2 := e.guard(guard.Options{})
	n, err := g2.Recover(e.ctx, e.wire)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	snap := g2.Snapshot(e.ctx)
	require.True(t, snap.Paused, "the pause survived the restart")
	require.Equal(t, "maintenance", snap.PauseReason)
	require.Never(t, func() bool { return len(e.history(sandbox.UserPeer(hank.ID))) > 1 }, 500*time.Millisecond, 20*time.Millisecond,
		"nothing leaves while the restored pause holds")
	g2.Resume()
	require.Eventually(t, func() bool { return len(e.history(sandbox.UserPeer(hank.ID))) == 6 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, append([]string{"before"}, texts...), e.history(sandbox.UserPeer(hank.ID)))
	require.Eventually(t, func() bool {
		list, err := e.st.Outbox().List(e.ctx)
		return err == nil && len(list) == 0
	}, 5*time.Second, time.Millisecond, "done actions leave the durable queue")

	recs := audit(t, g2, guard.AuditFilter{Plugin: "p"})
	c := countOutcomes(recs)
	require.Equal(t, 6, c[guard.OutcomeOK])
	require.Equal(t, 5, c[guard.OutcomeQueued], "the first guard recorded them as kept")
	ids := map[string]bool{}
	for _, r := range recs {
		if r.ID != "" {
			ids[r.ID] = true
			require.Equal(t, "kept-label", r.Label, "the label survives the durable queue: %+v", r)
		}
	}
	require.Len(t, ids, 5)
}

func TestSlowModeAnswerHoldsTheChat(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) {
		c.Limits.FloodWait = config.FloodWait{MaxWait: time.Second, MaxRetries: 5, OnExceed: config.OnExceedRetryLater}
	})
	other, err := e.sb.CreateUser(e.ctx, sandbox.UserSpec{Phone: newPhone(), FirstName: "Admin", Username: "slowadmin"})
	require.NoError(t, err)
	id, err := e.sb.CreateChannel(e.ctx, other.ID, sandbox.ChannelSpec{Title: "Slow", Username: "slowgroup", Megagroup: true, SlowModeSeconds: 2})
	require.NoError(t, err)
	require.NoError(t, e.sb.As(e.owner.ID).Join(e.ctx, sandbox.ChannelPeer(id)))
	res := e.exec.Execute(e.ctx, action.Call{Source: guard.SourceRunner, Action: &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: "slowgroup"}}}}})
	require.Nil(t, res.GetError())
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	peer := &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: id}
	texts := numbered("slow", 3)
	start := time.Now()
	for i, r := range submitAll(t, e.ctx, w, guard.PluginSource("p"), peer, texts) {
		require.Nil(t, r.GetError(), "message %d", i)
	}
	require.GreaterOrEqual(t, time.Since(start), 4*time.Second-100*time.Millisecond, "two slow-mode intervals")
	require.Equal(t, texts, e.history(sandbox.ChannelPeer(id)))
	var slow int
	for _, r := range audit(t, g, guard.AuditFilter{Outcome: guard.OutcomeQueued}) {
		if r.RPCError == "SLOWMODE_WAIT" {
			slow++
		}
	}
	require.Positive(t, slow)
}

func TestDailyJoinsCounted(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) { c.Limits.Daily.Joins = 2 })
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	admin, err := e.sb.CreateUser(e.ctx, sandbox.UserSpec{Phone: newPhone(), FirstName: "Admin", Username: "joinadmin"})
	require.NoError(t, err)
	var outcomes []bool
	for i := 0; i < 3; i++ {
		name := "joinme" + string(rune('a'+i))
		_, err := e.sb.CreateChannel(e.ctx, admin.ID, sandbox.ChannelSpec{Title: name, Username: name, Megagroup: true})
		require.NoError(t, err)
		res := e.exec.Execute(e.ctx, action.Call{Source: guard.SourceRunner, Action: &pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: name}}}}})
		require.NotNil(t, res.GetChat().GetPeer(), "resolve %s: %v", name, res.GetError())
		join := &pb.Action{Kind: &pb.Action_Join{Join: &pb.JoinChat{Target: &pb.JoinChat_Chat{Chat: res.GetChat().GetPeer()}}}}
		r := w.Execute(e.ctx, action.Call{Source: guard.PluginSource("joiner"), Action: join})
		outcomes = append(outcomes, r.GetError() == nil)
		if i == 2 {
			require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().GetCode())
			require.Contains(t, r.GetError().GetMessage(), "limits.daily.joins")
		}
	}
	require.Equal(t, []bool{true, true, false}, outcomes)
	// The count survives a restart of the guard.
	g2 := e.guard(guard.Options{})
	require.Equal(t, 2, g2.Snapshot(e.ctx).Today["joins"])
	raw := encode(t, &tg.ChannelsJoinChannelRequest{Channel: &tg.InputChannelEmpty{}})
	r := g2.Wrap(e.wire).Execute(e.ctx, action.Call{Source: guard.PluginSource("joiner"), Action: &pb.Action{Kind: &pb.Action_RawInvoke{RawInvoke: &pb.RawInvoke{RequestTl: raw}}}})
	require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.GetError().GetCode(), "raw joins count too")
}

// A send retried after FLOOD_WAIT does not pay for its rate tokens twice:
// with a per-chat budget of one message an hour, the first message still
// goes out after the wait instead of being refused for lack of budget.
func TestFloodWaitRetryDoesNotPayTwice(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, func(c *config.Config) {
		c.Limits.FloodWait = config.FloodWait{MaxWait: time.Second, MaxRetries: 5, OnExceed: config.OnExceedRetryLater}
		c.Limits.Send.PerChat = config.RateLimit{Rate: config.Rate{Count: 1, Per: time.Hour}, Burst: 1}
	})
	g := e.guard(guard.Options{})
	w := g.Wrap(e.wire)
	carol, peer := e.user("carol")
	e.wroteFirst(carol)
	// The server refuses the first attempt with FLOOD_WAIT_2 (longer than
	// the waiter's 1 s), then accepts.
	e.sb.SetFaults(sandbox.Faults{Errors: map[string]string{"messages.sendMessage": "420:FLOOD_WAIT_2"}})
	done := make(chan []*pb.ActionResult, 1)
	go func() { done <- submitAll(t, e.ctx, w, guard.PluginSource("p"), peer, []string{"only one"}) }()
	require.Eventually(t, func() bool {
		recs := audit(t, g, guard.AuditFilter{Plugin: "p"})
		return countOutcomes(recs)[guard.OutcomeQueued] > 0
	}, 30*time.Second, 20*time.Millisecond, "the flood wait kept the action")
	e.sb.SetFaults(sandbox.Faults{})
	results := <-done
	require.Nil(t, results[0].GetError(), "sent after the wait, not refused")
	require.Equal(t, []string{"only one"}, e.history(sandbox.UserPeer(carol.ID)))
}

// A plugin's send caused by a journaled event gets a random_id derived
// from the plugin, the event and the content. Delivered again after a
// crash (a second guard, as in the restarted runner; or a new plugin
// process in the same runner) and answered the same way, it reaches the
// chat once and the second call still succeeds; the same text for another
// event, or a second identical send for the same delivery, goes out.
func TestRedeliveredEventSendsOnce(t *testing.T) {
	e := newEnv(t, sandbox.Faults{}, nil)
	ivy, peer := e.user("ivy")
	e.wroteFirst(ivy)
	answer := func(g *guard.Guard, seq uint64, delivery int) {
		t.Helper()
		call := send(guard.PluginSource("p"), peer, "pong")
		call.CauseSeq, call.Delivery = seq, delivery
		r := g.Wrap(e.wire).Execute(e.ctx, call)
		require.Nil(t, r.GetError(), "%v", r.GetError())
	}
	pongs := func(n int) []string { return slices.Repeat([]string{"pong"}, n) }
	first := e.guard(guard.Options{})
	answer(first, 42, 1)
	require.NoError(t, first.Close(e.ctx))

	again := e.guard(guard.Options{})
	answer(again, 42, 1)
	require.Equal(t, pongs(1), e.history(sandbox.UserPeer(ivy.ID)), "the redelivered event's answer is not sent twice")
	answer(again, 43, 1)
	require.Equal(t, pongs(2), e.history(sandbox.UserPeer(ivy.ID)), "another event's answer goes out")
	answer(again, 43, 1)
	require.Equal(t, pongs(3), e.history(sandbox.UserPeer(ivy.ID)), "a second identical send for one event goes out")
	// The plugin crashed; its next process gets event 43 again and
	// answers it the same way, twice.
	answer(again, 43, 2)
	answer(again, 43, 2)
	require.Equal(t, pongs(3), e.history(sandbox.UserPeer(ivy.ID)), "a new process answering the event again sends nothing new")
}
