package sdk_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func TestEventsOfOneChatRunInOrder(t *testing.T) {
	p := sdk.New("order", "0", sdk.WithConcurrency(8))
	var mu sync.Mutex
	got := map[string][]string{}
	p.Handle(sdk.Any, func(c *sdk.Context) error {
		mu.Lock()
		defer mu.Unlock()
		key := sdk.PeerString(c.ChatPeer())
		got[key] = append(got[key], c.Text())
		return nil
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	var seqs []uint64
	var wantPrivate, wantGroup []string
	for i := range 200 {
		s := fmt.Sprint(i)
		if i%3 == 0 {
			seqs = append(seqs, h.Feed(sdktest.GroupText(s))...)
			wantGroup = append(wantGroup, s)
		} else {
			seqs = append(seqs, h.Feed(sdktest.PrivateText(s))...)
			wantPrivate = append(wantPrivate, s)
		}
	}
	for _, seq := range seqs {
		h.WaitAck(seq)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got["user:2001"], wantPrivate) || !slices.Equal(got["chat:3001"], wantGroup) {
		t.Fatalf("out of order:\nprivate %v\ngroup %v", got["user:2001"], got["chat:3001"])
	}
}

func TestChatsRunConcurrently(t *testing.T) {
	// The private chat's handler waits for the group's: with chats handled
	// one at a time this would deadlock, and the harness would time out.
	p := sdk.New("concurrent", "0", sdk.WithConcurrency(2))
	groupDone := make(chan struct{})
	p.Handle(sdk.Private, func(c *sdk.Context) error {
		select {
		case <-groupDone:
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("the group's event never ran while this one was busy")
		}
	})
	p.Handle(sdk.Group, func(c *sdk.Context) error { close(groupDone); return nil })
	h := sdktest.New(t, p, sdktest.Quiet())
	seqs := h.Feed(sdktest.PrivateText("first"), sdktest.GroupText("second"))
	if out := h.WaitAck(seqs[0]); out.Err != "" {
		t.Fatal(out.Err)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	const limit = 3
	p := sdk.New("bounded", "0", sdk.WithConcurrency(limit))
	var running, peak atomic.Int32
	release := make(chan struct{})
	p.Handle(sdk.Any, func(c *sdk.Context) error {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return nil
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	var seqs []uint64
	for i := range 10 {
		chat := &pluginv1.Chat{Peer: sdk.UserPeer(int64(5000 + i)), Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE}
		seqs = append(seqs, h.Feed(sdktest.PrivateText("x", sdktest.In(chat)))...)
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for _, s := range seqs {
		h.WaitAck(s)
	}
	if got := peak.Load(); got != limit {
		t.Fatalf("peak concurrency %d, want %d", got, limit)
	}
}

func TestRedeliveredEventIsNotHandledTwice(t *testing.T) {
	p := sdk.New("dedupe", "0")
	var runs atomic.Int32
	p.Command("once", func(c *sdk.Context) error {
		runs.Add(1)
		_, err := c.Reply("done")
		return err
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	ev := sdktest.PrivateText(".once")
	first := h.Handle(ev)
	h.Redeliver(ev)
	second := h.WaitAck(first.Seq)
	if second.Err != "" {
		t.Fatalf("redelivery acked with error %q", second.Err)
	}
	if runs.Load() != 1 || len(h.Calls("send")) != 1 {
		t.Fatalf("handled %d times, %d sends", runs.Load(), len(h.Calls("send")))
	}
	// The same seq of another account is another event.
	other := sdktest.PrivateText(".once")
	other.Seq, other.Account = first.Seq, "second-account"
	h.Handle(other)
	if runs.Load() != 2 {
		t.Fatalf("an event of another account with the same seq was skipped")
	}
}

func TestShutdownFinishesInFlightWork(t *testing.T) {
	p := sdk.New("drain", "0")
	started := make(chan struct{})
	release := make(chan struct{})
	p.Command("slow", func(c *sdk.Context) error {
		close(started)
		<-release
		// Actions still work while shutting down.
		_, err := c.Reply("finished")
		return err
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	seq := h.Feed(sdktest.PrivateText(".slow"))[0]
	<-started
	done := make(chan error, 1)
	go func() { done <- h.Shutdown() }()
	select {
	case err := <-done:
		t.Fatalf("the session ended before the in-flight event was handled: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if un := h.Unacked(); len(un) != 0 {
		t.Fatalf("unacked after shutdown: %v (seq %d)", un, seq)
	}
	if sends := h.Calls("send"); len(sends) != 1 || sends[0].Text() != "finished" || sends[0].Err() != nil {
		t.Fatalf("sends %v", sends)
	}
}

func TestShutdownGraceCancelsStuckHandlers(t *testing.T) {
	p := sdk.New("stuck", "0", sdk.WithShutdownGrace(50*time.Millisecond))
	started := make(chan struct{})
	p.Command("stuck", func(c *sdk.Context) error {
		close(started)
		<-c.Done()
		return c.Err()
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	h.Feed(sdktest.PrivateText(".stuck"))
	<-started
	if err := h.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if un := h.Unacked(); len(un) != 0 {
		t.Fatalf("unacked: %v", un)
	}
}

func TestActionsWithoutSessionAreUnavailable(t *testing.T) {
	p := sdk.New("nosession", "0")
	c := sdk.NewTestContext(p)
	_, err := c.Send(sdk.UserPeer(1), "x")
	if err == nil || !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("send without a session: %v", err)
	}
}
