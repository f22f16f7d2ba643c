package main

import (
	"context"
	"os/exec"
	"sort"
	"testing"
	"time"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// BenchmarkProcess measures the built plugin as the runner runs it: a
// separate process under go-plugin (TCP, AutoMTLS), with 64 events in
// flight, over 16 chats. "dispatch" sends text no handler wants (stream,
// router, acks); "ping" sends .ping, so each event also makes one send
// action round trip.
func BenchmarkProcess(b *testing.B) {
	bin := buildPingB(b)
	for _, tc := range []struct{ name, text string }{{"dispatch", "hello"}, {"ping", ".ping"}} {
		b.Run(tc.name, func(b *testing.B) {
			api, err := sdktest.DialProcess(b, exec.Command(bin), true)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := api.Configure(ctx, &pluginv1.ConfigureRequest{Granted: &pluginv1.Permissions{Actions: []string{"send"}}}); err != nil {
				b.Fatal(err)
			}
			s, err := api.Session(ctx)
			if err != nil {
				b.Fatal(err)
			}
			runWindow(b, s, tc.text, 64)
		})
	}
}

func runWindow(b *testing.B, s pluginv1.Plugin_SessionClient, text string, window int) {
	const chats = 16
	var msgs [chats]*pluginv1.HostMessage
	for i := range msgs {
		ev := sdktest.PrivateText(text, sdktest.In(&pluginv1.Chat{Peer: sdk.UserPeer(int64(100 + i)), Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE}))
		ev.Account = "main"
		ev.GetNewMessage().Id = 1
		msgs[i] = &pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Event{Event: ev}}
	}
	sentAt := make([]time.Time, b.N+1)
	lat := make([]time.Duration, 0, b.N)
	sent, acked := 0, 0
	send := func() {
		sent++
		msg := msgs[sent%chats]
		msg.GetEvent().Seq = uint64(sent)
		sentAt[sent] = time.Now()
		if err := s.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	ok := &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Message{Message: &pluginv1.Message{Id: 2}}}
	b.ResetTimer()
	for sent < b.N && sent < window {
		send()
	}
	for acked < b.N {
		m, err := s.Recv()
		if err != nil {
			b.Fatal(err)
		}
		switch x := m.GetMsg().(type) {
		case *pluginv1.PluginMessage_Ack:
			now := time.Now()
			for _, seq := range x.Ack.GetSeqs() {
				acked++
				lat = append(lat, now.Sub(sentAt[seq]))
				if sent < b.N {
					send()
				}
			}
		case *pluginv1.PluginMessage_Action:
			if err := s.Send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_ActionResponse{ActionResponse: &pluginv1.ActionResponse{Id: x.Action.GetId(), Result: ok}}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	_ = s.Send(&pluginv1.HostMessage{Msg: &pluginv1.HostMessage_Shutdown{Shutdown: &pluginv1.Shutdown{}}})
	for {
		if _, err := s.Recv(); err != nil {
			break
		}
	}
}

func buildPingB(b *testing.B) string {
	b.Helper()
	bin := b.TempDir() + "/ping"
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}
