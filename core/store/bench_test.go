package store

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), newDir(b), testOpts())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkAppend measures fsync'd Append calls with realistic entry sizes
// (about 300 bytes of event data, a dedup key and a chat key).
func BenchmarkAppend(b *testing.B) {
	data := make([]byte, 300)
	for _, size := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			n := 0
			batch := make([]Entry, size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range batch {
					batch[k] = Entry{DedupKey: "msg:channel:678:" + strconv.Itoa(n) + ":new", ChatKey: "channel:678", Kind: "message.new", Data: data}
					n++
				}
				if _, err := s.Journal().Append(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkAck measures durable acknowledgements: one seq per call from one
// goroutine, from 64 workers at once (group commit), and 256 seqs per call.
func BenchmarkAck(b *testing.B) {
	cases := []struct {
		name    string
		workers int
		perCall int
	}{
		{"serial", 1, 1},
		{"workers=64", 64, 1},
		{"batch=256", 1, 256},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			total := b.N * tc.perCall
			entries := make([]Entry, 0, 4096)
			for done := 0; done < total; {
				entries = entries[:0]
				for k := 0; k < 4096 && done < total; k++ {
					entries = append(entries, Entry{Data: []byte("x")})
					done++
				}
				if _, err := s.Journal().Append(ctx, entries); err != nil {
					b.Fatal(err)
				}
			}
			c, err := s.Journal().Consumer(ctx, "bench", ConsumerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Uint64
			b.ResetTimer()
			if tc.workers > 1 {
				b.SetParallelism(tc.workers)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := c.Ack(ctx, next.Add(1)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				seqs := make([]uint64, tc.perCall)
				for i := 0; i < b.N; i++ {
					for k := range seqs {
						seqs[k] = next.Add(1)
					}
					if err := c.Ack(ctx, seqs...); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "acks/s")
			b.StopTimer()
			if lag, _ := c.Lag(ctx); lag != 0 {
				b.Fatalf("lag %d after acking everything", lag)
			}
		})
	}
}
