package sandbox

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gotd/td/tg"
)

// BenchmarkMessageThroughput measures messages per second through the
// sandbox: one real client sends private messages (many in flight, like a
// busy runner), another real client receives every push through
// updates.Manager.
func BenchmarkMessageThroughput(b *testing.B) {
	s := startServer(b, Options{})
	ctx := testCtx(b, 10*time.Minute)
	alice, err := s.CreateUser(ctx, UserSpec{Phone: "9996610001", FirstName: "Alice"})
	if err != nil {
		b.Fatal(err)
	}
	bob, err := s.CreateUser(ctx, UserSpec{Phone: "9996620002", FirstName: "Bob", Username: "bob"})
	if err != nil {
		b.Fatal(err)
	}
	var received atomic.Int64
	done := make(chan struct{})
	var target atomic.Int64
	connect(b, s, clientConfig{phone: bob.Phone, setup: func(d *tg.UpdateDispatcher) {
		d.OnNewMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewMessage) error {
			if received.Add(1) == target.Load() {
				close(done)
			}
			return nil
		})
	}})
	sender := connect(b, s, clientConfig{phone: alice.Phone, noManager: true})
	peer := sender.InputUser(sender.resolveUser(ctx, "bob"))

	target.Store(int64(b.N))
	const inFlight = 64
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < inFlight; w++ {
		g.Go(func() error {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return nil
				}
				if _, err := sender.API.MessagesSendMessage(gctx, &tg.MessagesSendMessageRequest{
					Peer: peer, Message: "bench", RandomID: i,
				}); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("received %d of %d", received.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}
