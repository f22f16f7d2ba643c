package sdk_test

import (
	"context"
	"github.com/hashicorp/go-hclog"
	"io"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// These tests play the runner message by message over the real stream.

func event(seq uint64, text string) *pluginv1.HostMessage {
	ev := sdktest.PrivateText(text)
	ev.Seq, ev.Account = seq, "main"
	ev.GetNewMessage().Id = int64(seq)
	return &pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Event{Event: ev}}
}

func openSession(t testing.TB, client pluginv1.PluginClient) (pluginv1.Plugin_SessionClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := client.Info(ctx, &pluginv1.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Configure(ctx, &pluginv1.ConfigureRequest{Instance: "x"}); err != nil {
		t.Fatal(err)
	}
	s, err := client.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, cancel
}

func TestAcksAreBatchedAndComplete(t *testing.T) {
	p := sdk.New("fast", "0", sdk.WithLogger(hclog.NewNullLogger()))
	p.Command("x", nop)
	client := sdktest.Dial(t, p)
	s, cancel := openSession(t, client)
	defer cancel()
	const n = 2000
	go func() {
		for i := uint64(1); i <= n; i++ {
			if err := s.Send(event(i, ".x")); err != nil {
				return
			}
		}
		_ = s.Send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Shutdown{Shutdown: &pluginv1.Shutdown{}}})
	}()
	var acked []uint64
	acks := 0
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if a := m.GetAck(); a != nil {
			if a.GetError() != "" {
				t.Fatalf("ack error %q", a.GetError())
			}
			acks++
			acked = append(acked, a.GetSeqs()...)
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i] < acked[j] })
	if len(acked) != n || acked[0] != 1 || acked[n-1] != n || len(slices.Compact(acked)) != n {
		t.Fatalf("acked %d seqs (%d distinct), want each of 1..%d once", len(acked), len(slices.Compact(acked)), n)
	}
	t.Logf("%d events acked in %d Ack messages", n, acks)
}

func TestLostStreamThenRedelivery(t *testing.T) {
	p := sdk.New("resilient", "0", sdk.WithLogger(hclog.NewNullLogger()))
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	runs := 0
	p.Command("slow", func(c *sdk.Context) error {
		runs++
		started <- struct{}{}
		<-release
		return nil
	})
	client := sdktest.Dial(t, p)

	// The runner delivers an event, then its stream breaks mid-handling.
	s1, cancel1 := openSession(t, client)
	if err := s1.Send(event(7, ".slow")); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel1()

	// A new session opens (the plugin accepts it once the old one ended:
	// probe with an event no handler wants, in another chat so that it does
	// not queue behind the event in flight).
	var s2 pluginv1.Plugin_SessionClient
	deadline := time.Now().Add(5 * time.Second)
	for s2 == nil {
		s, cancel := openSession(t, client)
		defer cancel()
		probe := event(100, "probe")
		probe.GetEvent().GetNewMessage().Chat = sdktest.GroupChat()
		if err := s.Send(probe); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(); err == nil {
			if !slices.Equal(m.GetAck().GetSeqs(), []uint64{100}) {
				t.Fatalf("probe answered with %v", m)
			}
			s2 = s
		} else if time.Now().After(deadline) {
			t.Fatalf("no new session: %v", err)
		}
	}
	// It redelivers the unacked event while the old one is still handling
	// it: the plugin must not run it again, and must ack it on the new
	// session when it is done.
	if err := s2.Send(event(7, ".slow")); err != nil {
		t.Fatal(err)
	}
	// The plugin reads in order: once this later probe is acked, it has
	// seen the redelivery.
	probe := event(101, "probe")
	probe.GetEvent().GetNewMessage().Chat = sdktest.GroupChat()
	if err := s2.Send(probe); err != nil {
		t.Fatal(err)
	}
	if m, err := s2.Recv(); err != nil || !slices.Equal(m.GetAck().GetSeqs(), []uint64{101}) {
		t.Fatalf("second probe: %v, %v", m, err)
	}
	close(release)
	m, err := s2.Recv()
	if err != nil || !slices.Equal(m.GetAck().GetSeqs(), []uint64{7}) {
		t.Fatalf("after release: %v, %v", m, err)
	}
	if runs != 1 {
		t.Fatalf("the event ran %d times", runs)
	}
	_ = s2.CloseSend()
	if m, err := s2.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend the plugin should end the session: %v, %v", m, err)
	}
}

func TestSecondConcurrentSessionIsRefused(t *testing.T) {
	p := sdk.New("single", "0", sdk.WithLogger(hclog.NewNullLogger()))
	client := sdktest.Dial(t, p)
	s1, cancel1 := openSession(t, client)
	defer cancel1()
	// Make sure the first session is established before opening another.
	if err := s1.Send(event(1, "x")); err != nil {
		t.Fatal(err)
	}
	if m, err := s1.Recv(); err != nil || m.GetAck() == nil {
		t.Fatalf("%v %v", m, err)
	}
	s2, cancel2 := openSession(t, client)
	defer cancel2()
	if _, err := s2.Recv(); err == nil || err == io.EOF {
		t.Fatalf("a second session was accepted: %v", err)
	}
}
