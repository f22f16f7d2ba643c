package sdk_test

import (
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// benchWindow is how many events the benchmark host keeps in flight, as
// the runner does.
const benchWindow = 64

// runWindowed plays a runner that keeps benchWindow events in flight and
// answers every action call with ok, until b.N events are acked. Events
// rotate over chats chats.
func runWindowed(b *testing.B, p *sdk.Plugin, chats int) {
	client := sdktest.Dial(b, p)
	s, cancel := openSession(b, client)
	defer cancel()

	msgs := make([]*pluginv1.HostMessage, chats)
	for i := range msgs {
		msgs[i] = event(1, ".ping")
		msgs[i].GetEvent().GetNewMessage().Chat = &pluginv1.Chat{Peer: sdk.UserPeer(int64(10 + i)), Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE}
	}
	acks, batches := 0, 0
	sent := 0
	send := func() {
		m := msgs[sent%chats]
		m.GetEvent().Seq = uint64(sent + 1)
		if err := s.Send(m); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	b.ReportAllocs()
	b.ResetTimer()
	for sent < b.N && sent < benchWindow {
		send()
	}
	for acks < b.N {
		m, err := s.Recv()
		if err != nil {
			b.Fatal(err)
		}
		switch msg := m.GetMsg().(type) {
		case *pluginv1.PluginMessage_Ack:
			batches++
			for range msg.Ack.GetSeqs() {
				acks++
				if sent < b.N {
					send()
				}
			}
		case *pluginv1.PluginMessage_Action:
			if err := s.Send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_ActionResponse{ActionResponse: &pluginv1.ActionResponse{
				Id: msg.Action.GetId(), Result: &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Ok{Ok: &pluginv1.Ok{}}},
			}}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(acks)/float64(batches), "seqs/ack")
	_ = s.Send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Shutdown{Shutdown: &pluginv1.Shutdown{}}})
	for {
		if _, err := s.Recv(); err == io.EOF || err != nil {
			break
		}
	}
}

// BenchmarkDispatch: events through the stream, router and acks, with a
// command handler that does nothing (in-process gRPC, no TLS).
func BenchmarkDispatch(b *testing.B) {
	for _, chats := range []int{1, 16} {
		b.Run(map[int]string{1: "one-chat", 16: "16-chats"}[chats], func(b *testing.B) {
			p := sdk.New("bench", "0", sdk.WithLogger(hclog.NewNullLogger()))
			p.Command("ping", nop)
			runWindowed(b, p, chats)
		})
	}
}

// BenchmarkDispatchWithAction: each event makes one action call and waits
// for its answer before it is acked.
func BenchmarkDispatchWithAction(b *testing.B) {
	p := sdk.New("bench", "0", sdk.WithLogger(hclog.NewNullLogger()))
	p.Command("ping", func(c *sdk.Context) error { return c.React(c.ChatPeer(), 1, "👍") })
	runWindowed(b, p, 16)
}
