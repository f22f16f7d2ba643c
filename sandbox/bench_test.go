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
	b.Run("receiver=manager", func(b *testing.B) { benchThroughput(b, true) })
	// The receiver counts raw pushes: less client work in the same
	// process, so the figure is closer to the sandbox's own.
	b.Run("receiver=raw", func(b *testing.B) { benchThroughput(b, false) })
}

func benchThroughput(b *testing.B, manager bool) {
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
	count := func(n int64) {
		if received.Add(n) == target.Load() {
			close(done)
		}
	}
	if manager {
		connect(b, s, clientConfig{phone: bob.Phone, setup: func(d *tg.UpdateDispatcher) {
			d.OnNewMessage(func(ctx context.Context, e tg.Entities, u *tg.UpdateNewMessage) error {
				count(1)
				return nil
			})
		}})
	} else {
		connect(b, s, clientConfig{phone: bob.Phone, noManager: true, rawUpdates: func(_ context.Context, u tg.UpdatesClass) error {
			if ups, ok := u.(*tg.Updates); ok {
				n := int64(0)
				for _, up := range ups.Updates {
					if _, ok := up.(*tg.UpdateNewMessage); ok {
						n++
					}
				}
				count(n)
			}
			return nil
		}})
	}
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
