// Package hosttest holds in-memory stand-ins for the runner's side of the
// plugin host (feed, executor, auditor, key-value store, chat resolver), for
// tests and benchmarks of core/pluginhost. The plugins driven through them
// are real processes; only the runner's pieces are replaced.
package hosttest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Feed is an in-memory journal cursor with the semantics of the durable
// one: Read skips acked events, Position is the highest seq up to which
// everything is acked, and unacked events are returned again after a
// re-read from Position.
type Feed struct {
	mu       sync.Mutex
	base     uint64 // events[i] has seq base+i+1
	events   []*pluginv1.Event
	acked    map[uint64]bool // acked seqs above position
	position uint64
	last     uint64
	notify   chan struct{} // closed and replaced on Publish
	dupAcks  int
	badAcks  []uint64
	// OnAck, when set, is called after each Ack with the seqs newly acked.
	OnAck func(seqs []uint64)
}

var _ pluginhost.Feed = (*Feed)(nil)

// NewFeed returns an empty feed.
func NewFeed() *Feed {
	return &Feed{acked: map[uint64]bool{}, notify: make(chan struct{})}
}

// Publish appends events, numbering them in order, and returns the last
// seq.
func (f *Feed) Publish(evs ...*pluginv1.Event) uint64 {
	f.mu.Lock()
	for _, ev := range evs {
		f.last++
		ev.Seq = f.last
		f.events = append(f.events, ev)
	}
	last := f.last
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
	return last
}

// Read implements pluginhost.Feed.
func (f *Feed) Read(ctx context.Context, after uint64, max int) ([]*pluginv1.Event, error) {
	for {
		f.mu.Lock()
		var out []*pluginv1.Event
		start := int(0)
		if after > f.base {
			start = int(after - f.base)
		}
		for i := start; i < len(f.events) && len(out) < max; i++ {
			ev := f.events[i]
			if ev.Seq > after && ev.Seq > f.position && !f.acked[ev.Seq] {
				out = append(out, ev)
			}
		}
		wait := f.notify
		f.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
	}
}

// Ack implements pluginhost.Feed.
func (f *Feed) Ack(_ context.Context, seqs ...uint64) error {
	f.mu.Lock()
	var fresh []uint64
	for _, s := range seqs {
		switch {
		case s == 0 || s > f.last:
			f.badAcks = append(f.badAcks, s)
		case s <= f.position || f.acked[s]:
			f.dupAcks++
		default:
			f.acked[s] = true
			fresh = append(fresh, s)
		}
	}
	for f.acked[f.position+1] {
		delete(f.acked, f.position+1)
		f.position++
	}
	// Forget events everyone is done with, so long benchmarks stay small.
	if done := int(f.position - f.base); done > 4096 && done > len(f.events)/2 {
		f.events = append([]*pluginv1.Event(nil), f.events[done:]...)
		f.base = f.position
	}
	hook := f.OnAck
	f.mu.Unlock()
	if hook != nil && len(fresh) > 0 {
		hook(fresh)
	}
	return nil
}

// Position implements pluginhost.Feed.
func (f *Feed) Position(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.position, nil
}

// Stats reports the feed's bookkeeping: the position, the last published
// seq, acks of seqs already acked, and acks of seqs never published.
func (f *Feed) Stats() (position, last uint64, duplicateAcks int, badAcks []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.position, f.last, f.dupAcks, append([]uint64(nil), f.badAcks...)
}

// WaitAllAcked waits until every published event is acked.
func (f *Feed) WaitAllAcked(ctx context.Context) error {
	for {
		pos, last, _, _ := f.Stats()
		if pos == last {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("acked up to %d of %d: %w", pos, last, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Feeds hands out one Feed per instance, created on first use.
type Feeds struct {
	mu    sync.Mutex
	feeds map[string]*Feed
}

// Source implements pluginhost.FeedSource.
func (fs *Feeds) Source(_ context.Context, instance string) (pluginhost.Feed, error) {
	return fs.Get(instance), nil
}

// Get returns the instance's feed.
func (fs *Feeds) Get(instance string) *Feed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.feeds == nil {
		fs.feeds = map[string]*Feed{}
	}
	f, ok := fs.feeds[instance]
	if !ok {
		f = NewFeed()
		fs.feeds[instance] = f
	}
	return f
}

// Executor records the calls it gets and answers them with Result (Ok when
// nil).
type Executor struct {
	mu    sync.Mutex
	calls []pluginhost.Call
	// Result, when set, computes the answer.
	Result func(pluginhost.Call) *pluginv1.ActionResult
}

// Execute implements pluginhost.Executor.
func (e *Executor) Execute(_ context.Context, c pluginhost.Call) *pluginv1.ActionResult {
	e.mu.Lock()
	e.calls = append(e.calls, c)
	fn := e.Result
	e.mu.Unlock()
	if fn != nil {
		return fn(c)
	}
	return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Ok{Ok: &pluginv1.Ok{}}}
}

// Calls returns the calls so far.
func (e *Executor) Calls() []pluginhost.Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]pluginhost.Call(nil), e.calls...)
}

// Auditor records audit entries.
type Auditor struct {
	mu      sync.Mutex
	entries []pluginhost.AuditEntry
}

// Record implements pluginhost.Auditor.
func (a *Auditor) Record(_ context.Context, e pluginhost.AuditEntry) {
	a.mu.Lock()
	a.entries = append(a.entries, e)
	a.mu.Unlock()
}

// Entries returns the entries so far.
func (a *Auditor) Entries() []pluginhost.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]pluginhost.AuditEntry(nil), a.entries...)
}

// KV is an in-memory pluginhost.KV.
type KV struct {
	mu sync.Mutex
	m  map[string][]byte // plugin + "\x00" + key
}

func kvKey(plugin, key string) string { return plugin + "\x00" + key }

// Get implements pluginhost.KV.
func (kv *KV) Get(_ context.Context, plugin, key string) ([]byte, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[kvKey(plugin, key)]
	return v, ok, nil
}

// Set implements pluginhost.KV.
func (kv *KV) Set(_ context.Context, plugin, key string, value []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.m == nil {
		kv.m = map[string][]byte{}
	}
	kv.m[kvKey(plugin, key)] = append([]byte(nil), value...)
	return nil
}

// Delete implements pluginhost.KV.
func (kv *KV) Delete(_ context.Context, plugin, key string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.m, kvKey(plugin, key))
	return nil
}

// List implements pluginhost.KV.
func (kv *KV) List(_ context.Context, plugin, prefix string) ([]string, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var keys []string
	for k := range kv.m {
		if rest, ok := strings.CutPrefix(k, plugin+"\x00"); ok && strings.HasPrefix(rest, prefix) {
			keys = append(keys, rest)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Resolver answers from a fixed set of chats, keyed by "user:123" form.
type Resolver map[string]*pluginv1.Chat

// Chat implements pluginhost.ChatResolver.
func (r Resolver) Chat(_ context.Context, p *pluginv1.Peer) (*pluginv1.Chat, error) {
	if c, ok := r[pluginhost.PeerString(p)]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%s: %w", pluginhost.PeerString(p), pluginhost.ErrUnknownChat)
}
