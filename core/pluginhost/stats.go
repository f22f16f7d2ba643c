package pluginhost

import (
	"slices"
	"sync"
	"time"
)

// latencies keeps the most recent handler latencies (event sent to ack
// received) for percentiles in Status.
type latencies struct {
	mu   sync.Mutex
	ring [1024]time.Duration
	n    int // total recorded
}

func (l *latencies) add(ds ...time.Duration) {
	l.mu.Lock()
	for _, d := range ds {
		l.ring[l.n%len(l.ring)] = d
		l.n++
	}
	l.mu.Unlock()
}

func (l *latencies) percentiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	n := min(l.n, len(l.ring))
	s := slices.Clone(l.ring[:n])
	l.mu.Unlock()
	if n == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[n*50/100], s[min(n*99/100, n-1)]
}
