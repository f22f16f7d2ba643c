package pluginhost_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/pluginhost/hosttest"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// e2e records, per feed, when each seq was published and how long it took
// until the host acked it in the feed (after the plugin acked it).
type e2e struct {
	mu        sync.Mutex
	published map[uint64]time.Time
	lat       []time.Duration
}

func track(f *hosttest.Feed) *e2e {
	r := &e2e{published: map[uint64]time.Time{}}
	f.OnAck = func(seqs []uint64) {
		now := time.Now()
		r.mu.Lock()
		for _, s := range seqs {
			if t, ok := r.published[s]; ok {
				r.lat = append(r.lat, now.Sub(t))
				delete(r.published, s)
			}
		}
		r.mu.Unlock()
	}
	return r
}

func (r *e2e) publish(f *hosttest.Feed, ev *pluginv1.Event) {
	r.mu.Lock()
	seq := f.Publish(ev)
	r.published[seq] = time.Now()
	r.mu.Unlock()
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)*99/100, len(s)-1)]
}

func benchSpec(b *testing.B, name string, window int) pluginhost.Spec {
	s := spec(b, name, "probe")
	s.Window = window
	s.Queue.Size = 1024
	s.EventDeadline = time.Minute
	s.HealthInterval = 0 // no pings in the measurement
	return s
}

// sampleEvent is a typical incoming message, about 150 bytes on the wire.
func sampleEvent(i int) *pluginv1.Event {
	return &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE, Account: "main", Date: 1764000000,
		Payload: &pluginv1.Event_NewMessage{NewMessage: &pluginv1.Message{
			Id: int64(i), Date: 1764000000, Text: "hello there, this is message " + strconv.Itoa(i),
			Chat:   &pluginv1.Chat{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHAT, Id: 42}, Type: pluginv1.ChatType_CHAT_TYPE_GROUP, Title: "Friends"},
			Sender: &pluginv1.User{Id: 7, FirstName: "Alice", Username: "alice"},
			From:   &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 7},
		}}}
}

// BenchmarkDispatch saturates N plugins with the same events (each has its
// own feed, as each has its own cursor) and reports the total events per
// second delivered and acked, with the latency from publish to ack in the
// feed. Under saturation that latency is mostly queueing.
func BenchmarkDispatch(b *testing.B) {
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("plugins=%d", n), func(b *testing.B) { benchDispatch(b, n, pluginhost.DefaultWindow) })
	}
}

// BenchmarkWindow compares windows of unacked events in flight to one
// plugin. window=1 is stop-and-wait: one round trip per event, what a unary
// call per event costs at best.
func BenchmarkWindow(b *testing.B) {
	for _, w := range []int{1, 4, 16, 32, 64, 256, 1024} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) { benchDispatch(b, 1, w) })
	}
}

func benchDispatch(b *testing.B, n, window int) {
	var specs []pluginhost.Spec
	for i := range n {
		specs = append(specs, benchSpec(b, fmt.Sprintf("p%d", i), window))
	}
	e := start(b, pluginhost.Options{}, specs...)
	trackers := make([]*e2e, n)
	for i := range n {
		e.waitState(b, specs[i].Name, pluginhost.StateRunning)
		trackers[i] = track(e.feeds.Get(specs[i].Name))
	}
	b.ResetTimer()
	began := time.Now()
	for j := range b.N {
		ev := sampleEvent(j)
		for i := range n {
			trackers[i].publish(e.feeds.Get(specs[i].Name), ev)
		}
	}
	for i := range n {
		e.waitAllAcked(b, specs[i].Name)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	var all []time.Duration
	for _, t := range trackers {
		all = append(all, t.lat...)
	}
	_ = all
	// Publish-to-ack latency is all queueing here (everything is published
	// at once); the host's own sent-to-ack latency is the useful figure.
	var hp50, hp99 time.Duration
	for _, s := range specs {
		st := e.status(b, s.Name)
		hp50, hp99 = max(hp50, st.LatencyP50), max(hp99, st.LatencyP99)
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(hp50.Microseconds()), "sent-ack-p50-µs")
	b.ReportMetric(float64(hp99.Microseconds()), "sent-ack-p99-µs")
}

// BenchmarkLatencyAtRate publishes 1,000 events a second, each to 4
// plugins, and reports publish-to-ack latency.
func BenchmarkLatencyAtRate(b *testing.B) {
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("plugins=%d/rate=1000", n), func(b *testing.B) { benchAtRate(b, n, time.Millisecond) })
	}
}

func benchAtRate(b *testing.B, n int, every time.Duration) {
	var specs []pluginhost.Spec
	for i := range n {
		specs = append(specs, benchSpec(b, fmt.Sprintf("r%d", i), pluginhost.DefaultWindow))
	}
	e := start(b, pluginhost.Options{}, specs...)
	trackers := make([]*e2e, n)
	for i := range n {
		e.waitState(b, specs[i].Name, pluginhost.StateRunning)
		// Warm up connections, buffers and goroutine stacks first.
		for j := range 200 {
			e.feeds.Get(specs[i].Name).Publish(sampleEvent(j))
		}
		e.waitAllAcked(b, specs[i].Name)
		trackers[i] = track(e.feeds.Get(specs[i].Name))
	}
	b.ResetTimer()
	next := time.Now()
	for j := range b.N {
		next = next.Add(every)
		time.Sleep(time.Until(next))
		ev := sampleEvent(j)
		for i := range n {
			trackers[i].publish(e.feeds.Get(specs[i].Name), ev)
		}
	}
	for i := range n {
		e.waitAllAcked(b, specs[i].Name)
	}
	b.StopTimer()
	var all []time.Duration
	for _, t := range trackers {
		all = append(all, t.lat...)
	}
	p50, p99 := percentiles(all)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// BenchmarkActionRoundTrip: the plugin calls send b.N times in a row and
// measures each round trip (plugin → host permission check → executor →
// plugin).
func BenchmarkActionRoundTrip(b *testing.B) {
	s := benchSpec(b, "actor", pluginhost.DefaultWindow)
	s.Grants = pluginhost.Grants{Actions: []string{"send"}, Chats: []pluginhost.ChatRef{mustChat(b, "user:100")}}
	e := start(b, pluginhost.Options{}, s)
	e.waitState(b, "actor", pluginhost.StateRunning)
	b.ResetTimer()
	e.feeds.Get("actor").Publish(text(fmt.Sprintf("rtt %d", b.N)))
	raw := e.report(b, "actor", "rtt")
	b.StopTimer()
	var ds []time.Duration
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Duration(n))
	}
	p50, p99 := percentiles(ds)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// BenchmarkColdStart measures Start to the first event acked: exec, sha256
// check, AutoMTLS handshake, Info, Configure, Session, one event.
func BenchmarkColdStart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s := benchSpec(b, "cold", pluginhost.DefaultWindow)
		feeds := &hosttest.Feeds{}
		feeds.Get("cold").Publish(text("first"))
		h, err := pluginhost.New(pluginhost.Options{Feeds: feeds.Source, Executor: &hosttest.Executor{}}, s)
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := feeds.Get("cold").WaitAllAcked(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.ReportMetric(float64(time.Since(began).Microseconds())/1000, "ms-to-first-event")
		b.StopTimer()
		if err := h.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkIdleRSS reports the resident memory of an idle plugin that has
// handled 1,000 events, and of the host process.
func BenchmarkIdleRSS(b *testing.B) {
	e := start(b, pluginhost.Options{}, benchSpec(b, "idle", pluginhost.DefaultWindow))
	st := e.waitState(b, "idle", pluginhost.StateRunning)
	for i := range 1000 {
		e.feeds.Get("idle").Publish(sampleEvent(i))
	}
	e.waitAllAcked(b, "idle")
	for range b.N {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(vmRSS(b, st.PID), "plugin-RSS-MB")
	b.ReportMetric(vmRSS(b, os.Getpid()), "host-RSS-MB")
}

func vmRSS(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkInProcessFloor runs the same workload through the same host
// pipeline to an in-process handler (no process boundary, no gRPC), and
// through a bare loop (feed read, direct call, ack): the floors the
// out-of-process figures compare with.
func BenchmarkInProcessFloor(b *testing.B) {
	b.Run("pipeline", func(b *testing.B) {
		feed := hosttest.NewFeed()
		var handled int
		stop, err := pluginhost.RunInProcess(feed, pluginhost.Spec{Name: "floor", Queue: pluginhost.QueuePolicy{Size: 1024}},
			func(*pluginv1.Event) { handled++ })
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
		b.ResetTimer()
		began := time.Now()
		for j := range b.N {
			feed.Publish(sampleEvent(j))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := feed.WaitAllAcked(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "events/s")
	})
	b.Run("direct-call", func(b *testing.B) {
		feed := hosttest.NewFeed()
		var handler func(*pluginv1.Event)
		var handled int
		handler = func(*pluginv1.Event) { handled++ }
		b.ResetTimer()
		began := time.Now()
		for j := range b.N {
			feed.Publish(sampleEvent(j))
		}
		ctx := context.Background()
		var after uint64
		for after < uint64(b.N) {
			evs, err := feed.Read(ctx, after, 256)
			if err != nil {
				b.Fatal(err)
			}
			seqs := make([]uint64, 0, len(evs))
			for _, ev := range evs {
				handler(ev)
				seqs = append(seqs, ev.Seq)
				after = ev.Seq
			}
			if err := feed.Ack(ctx, seqs...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "events/s")
	})
	b.Run("pipeline/rate=1000", func(b *testing.B) {
		feed := hosttest.NewFeed()
		tr := track(feed)
		stop, err := pluginhost.RunInProcess(feed, pluginhost.Spec{Name: "floor"}, func(*pluginv1.Event) {})
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
		b.ResetTimer()
		next := time.Now()
		for j := range b.N {
			next = next.Add(time.Millisecond)
			time.Sleep(time.Until(next))
			tr.publish(feed, sampleEvent(j))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := feed.WaitAllAcked(ctx); err != nil {
			b.Fatal(err)
		}
		tr.mu.Lock()
		p50, p99 := percentiles(tr.lat)
		tr.mu.Unlock()
		b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	})
}
