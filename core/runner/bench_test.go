package runner_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// BenchmarkIntake measures updates per second from the sandbox into the
// journal, and the latency from the server's push to the journal commit
// (the fsync'd bbolt transaction), with several senders at once.
func BenchmarkIntake(b *testing.B) {
	b.Run("burst", func(b *testing.B) { benchIntake(b, 0) })
	// At a steady rate below capacity the latency is the pipeline's, not
	// the queue's.
	b.Run("rate=1000", func(b *testing.B) { benchIntake(b, 1000) })
}

func benchIntake(b *testing.B, rate int) {
	e := newEnvTB(b)
	ctx := context.Background()
	const senders = 4
	var users []*sandbox.User
	for i := range senders {
		u, err := e.sb.CreateUser(ctx, sandbox.UserSpec{Phone: fmt.Sprintf("99966290%02d", i), FirstName: fmt.Sprintf("S%d", i)})
		require.NoError(b, err)
		users = append(users, u)
	}

	var (
		mu      sync.Mutex
		sentAt  = map[int]time.Time{}
		lat     []time.Duration
		journed int
		done    = make(chan struct{})
		target  int
	)
	observe := func(entries []store.Entry) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, en := range entries {
			ev, err := runner.DecodeEntry(en)
			if err != nil {
				continue
			}
			text := ev.GetNewMessage().GetText()
			n, err := strconv.Atoi(strings.TrimPrefix(text, "b "))
			if err != nil {
				continue
			}
			if t, ok := sentAt[n]; ok {
				lat = append(lat, now.Sub(t))
			}
			journed++
			if journed == target {
				close(done)
			}
		}
	}
	e.runTB(b, runner.Options{Observe: observe})

	mu.Lock()
	target = b.N
	mu.Unlock()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			var tick *time.Ticker
			if rate > 0 {
				tick = time.NewTicker(time.Second * senders / time.Duration(rate))
				defer tick.Stop()
			}
			for i := s; i < b.N; i += senders {
				if tick != nil {
					<-tick.C
				}
				mu.Lock()
				sentAt[i] = time.Now()
				mu.Unlock()
				if _, err := e.sb.As(users[s].ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), "b "+strconv.Itoa(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("journaled %d of %d", journed, b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "updates/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	}
}
