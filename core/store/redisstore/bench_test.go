package redisstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotd/td/telegram/updates"
	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// benchBackends opens one account per backend flavour: bbolt (fsync per
// commit), Redis without persistence (the test server) and Redis with
// appendfsync always (durability comparable to bbolt).
func benchBackends(b *testing.B, accounts int) map[string][]store.Backend {
	b.Helper()
	ctx := context.Background()
	out := map[string][]store.Backend{}
	for i := 0; i < accounts; i++ {
		s, err := store.Open(ctx, filepath.Join(b.TempDir(), "s"), store.Options{Journal: store.JournalOptions{CompactInterval: -1}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		out["bbolt"] = append(out["bbolt"], store.Bolt(s))
	}
	rdb := redistest.Client(b)
	out["redis"] = redisAccounts(b, rdb, accounts)
	aof, err := redistest.Start("--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(aof.Stop)
	c := aof.Client(0)
	b.Cleanup(func() { c.Close() })
	out["redis-aof-always"] = redisAccounts(b, c, accounts)
	return out
}

func redisAccounts(b *testing.B, rdb redis.UniversalClient, n int) []store.Backend {
	ctx := context.Background()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	var out []store.Backend
	for i := 0; i < n; i++ {
		acct := newAccount()
		le, err := l.Acquire(ctx, acct)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { le.Release(context.Background()) })
		s, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{Journal: store.JournalOptions{CompactInterval: -1}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

// appendAck journals one batch, reads it back as a consumer and acks it:
// the journal's work per batch of updates.
var benchKey atomic.Int64

func appendAck(ctx context.Context, j store.UpdatesJournal, c store.JournalConsumer, batch int) error {
	es := make([]store.Entry, batch)
	for i := range es {
		es[i] = store.Entry{DedupKey: fmt.Sprint("u", benchKey.Add(1)), ChatKey: "chat", Kind: "msg", Data: make([]byte, 200)}
	}
	added, err := j.Append(ctx, es)
	if err != nil {
		return err
	}
	got, err := c.Read(ctx, added[0].Seq-1, batch)
	if err != nil {
		return err
	}
	if len(got) != batch {
		return fmt.Errorf("read %d of %d", len(got), batch)
	}
	return c.Ack(ctx, seqsOf(got)...)
}

// BenchmarkAppendAck: one account, batches of 1, 16 and 256 entries.
func BenchmarkAppendAck(b *testing.B) {
	ctx := context.Background()
	backends := benchBackends(b, 1)
	for _, name := range []string{"bbolt", "redis", "redis-aof-always"} {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				be := backends[name][0]
				c, err := be.Journal().Consumer(ctx, fmt.Sprint("bench", batch), store.ConsumerOptions{FromEnd: true})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := appendAck(ctx, be.Journal(), c, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkAppendAckAccounts: 1, 5 and 20 accounts appending and acking
// in parallel (batch 16), the storage side of "updates/s per account".
func BenchmarkAppendAckAccounts(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 5, 20} {
		backends := benchBackends(b, n)
		for _, name := range []string{"bbolt", "redis", "redis-aof-always"} {
			b.Run(fmt.Sprintf("%s/accounts=%d", name, n), func(b *testing.B) {
				const batch = 16
				var wg sync.WaitGroup
				errs := make(chan error, n)
				b.ResetTimer()
				for _, be := range backends[name] {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c, err := be.Journal().Consumer(ctx, fmt.Sprint("bench", b.N), store.ConsumerOptions{FromEnd: true})
						if err != nil {
							errs <- err
							return
						}
						for i := 0; i < b.N; i++ {
							if err := appendAck(ctx, be.Journal(), c, batch); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				total := float64(b.N*batch*n) / b.Elapsed().Seconds()
				b.ReportMetric(total, "entries/s")
				b.ReportMetric(total/float64(n), "entries/s/account")
			})
		}
	}
}

// BenchmarkUpdateWithState: what the updates manager costs the storage per
// update: Append one entry, then move pts (and date/seq) past it.
func BenchmarkUpdateWithState(b *testing.B) {
	ctx := context.Background()
	backends := benchBackends(b, 1)
	for _, name := range []string{"bbolt", "redis", "redis-aof-always"} {
		b.Run(name, func(b *testing.B) {
			be := backends[name][0]
			st := be.UpdateState()
			if err := st.SetState(ctx, 1, updates.State{Pts: 1, Date: 1, Seq: 1}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := store.Entry{DedupKey: fmt.Sprint("s", benchKey.Add(1)), ChatKey: "chat", Kind: "msg", Data: make([]byte, 200)}
				if _, err := be.Journal().Append(ctx, []store.Entry{e}); err != nil {
					b.Fatal(err)
				}
				if err := st.SetPts(ctx, 1, i+2); err != nil {
					b.Fatal(err)
				}
				if err := st.SetDateSeq(ctx, 1, i+2, i+2); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
