package pluginhost

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// acker coalesces acks for one instance's feed: a durable Feed.Ack may cost
// a disk sync, so acks that arrive while one is running are written
// together by the next.
type acker struct {
	feed Feed
	log  *zap.Logger

	mu      sync.Mutex
	pending []uint64
	wake    chan struct{}

	ackMu sync.Mutex // serializes Feed.Ack calls
}

func newAcker(feed Feed, log *zap.Logger) *acker {
	return &acker{feed: feed, log: log, wake: make(chan struct{}, 1)}
}

func (a *acker) add(seqs ...uint64) {
	if len(seqs) == 0 {
		return
	}
	a.mu.Lock()
	a.pending = append(a.pending, seqs...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run writes pending acks until ctx ends.
func (a *acker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		if err := a.flush(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("ack events in the feed; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			select {
			case a.wake <- struct{}{}:
			default:
			}
		}
	}
}

// flush writes everything pending now. On error the acks stay pending.
func (a *acker) flush(ctx context.Context) error {
	a.ackMu.Lock()
	defer a.ackMu.Unlock()
	a.mu.Lock()
	seqs := a.pending
	a.pending = nil
	a.mu.Unlock()
	if len(seqs) == 0 {
		return nil
	}
	if err := a.feed.Ack(ctx, seqs...); err != nil {
		a.mu.Lock()
		a.pending = append(seqs, a.pending...)
		a.mu.Unlock()
		return err
	}
	return nil
}
