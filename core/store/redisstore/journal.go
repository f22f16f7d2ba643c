package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gotd/td/telegram/updates"
	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/store"
)

// Journal is the updates journal on a Redis Stream.
//
// Layout: the stream "j:stream" holds entry seq N under the stream ID "N-0"
// with the seq also as field "s"; "j:seq" is the last assigned seq (INCR);
// "j:dedup" maps dedup keys to seqs and "j:dedupord" orders them by the time
// they were recorded (for retention and the key cap). Each journal consumer
// is a consumer group of the same name with one consumer, "owner": its
// pending entries list (PEL) is what was read and not acknowledged, and its
// last-delivered ID marks what was read at all.
//
// Guarantees are those of the bbolt journal: Append assigns gap-free seqs
// and drops known dedup keys atomically (one Lua script, fenced); Ack
// (XACK, fenced) gives at-least-once delivery, since a restarted consumer
// reads its PEL again from 0; AckWith commits effects and XACK in one
// script, which gives exactly-once. Durability is Redis's: see
// docs/scale-out.md (appendfsync, WaitReplicas).
type Journal struct {
	s *Store

	mu     sync.Mutex
	last   uint64
	notify chan struct{}
	failed error

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ store.UpdatesJournal = (*Journal)(nil)

func (s *Store) jKey(name string) string { return s.p + "j:" + name }

func (j *Journal) streamKey() string   { return j.s.jKey("stream") }
func (j *Journal) seqKey() string      { return j.s.jKey("seq") }
func (j *Journal) dedupKey() string    { return j.s.jKey("dedup") }
func (j *Journal) dedupOrdKey() string { return j.s.jKey("dedupord") }

func newJournal(ctx context.Context, s *Store) (*Journal, error) {
	j := &Journal{s: s, notify: make(chan struct{}), stop: make(chan struct{})}
	last, err := s.rdb.Get(ctx, j.seqKey()).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.last = last
	if s.opts.Journal.CompactInterval > 0 && s.fence != nil {
		j.wg.Add(1)
		go j.compactLoop()
	}
	return j, nil
}

func (j *Journal) closed() bool {
	select {
	case <-j.stop:
		return true
	default:
		return false
	}
}

func (j *Journal) close() {
	close(j.stop)
	j.wg.Wait()
}

// Journal implements store.Backend.
func (s *Store) Journal() store.UpdatesJournal { return s.journal }

// Fail marks the journal failed until the store is reopened.
func (j *Journal) Fail(err error) {
	if err == nil {
		err = errors.New("unknown cause")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed == nil {
		j.failed = err
	}
}

// Failed returns nil or an error wrapping store.ErrJournalFailed.
func (j *Journal) Failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", store.ErrJournalFailed, j.failed)
}

// LastSeq is the last seq this process committed or saw at open.
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

var appendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('TGRFENCED account lease not held by this writer')
end
local now, maxKeys, n = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local i = 5
for e = 1, n do
  local dk = ARGV[i]
  if dk ~= '' and redis.call('HEXISTS', KEYS[4], dk) == 1 then
    out[e] = 0
  else
    local seq = redis.call('INCR', KEYS[2])
    redis.call('XADD', KEYS[3], seq .. '-0', 's', seq, 't', ARGV[i + 1], 'k', ARGV[i + 2], 'c', ARGV[i + 3], 'd', dk, 'x', ARGV[i + 4])
    if dk ~= '' then
      redis.call('HSET', KEYS[4], dk, seq)
      redis.call('ZADD', KEYS[5], now, dk)
    end
    out[e] = seq
  end
  i = i + 5
end
local over = redis.call('ZCARD', KEYS[5]) - maxKeys
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[5], over)
  for k = 1, #old, 2 do redis.call('HDEL', KEYS[4], old[k]) end
end
-- The pending updates state: cmd, key index, argc, args.
local nstate = tonumber(ARGV[i])
i = i + 1
for _ = 1, nstate do
  local cmd, key, argc = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  i = i + 3
  redis.call(cmd, key, unpack(ARGV, i, i + argc - 1))
  i = i + argc
end
return out
`)

// Append journals entries atomically and returns those that were new, with
// Seq set. The pending updates state rides along in the same script: it
// only covers updates journaled before, so it is never ahead of the
// journal in Redis. Any error marks the journal failed.
func (j *Journal) Append(ctx context.Context, entries []store.Entry) ([]store.Entry, error) {
	if err := j.Failed(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		j.Fail(fmt.Errorf("append interrupted: %w", err))
		return nil, fmt.Errorf("journal append: %w", err)
	}
	// Only one state write at a time may be in flight, or an older snapshot
	// could land after a newer one. If another Append or the flusher is
	// writing it, this Append goes without; the state waits for the next.
	o := &j.s.state
	var (
		users    map[int64]updates.State
		channels map[[2]int64]int
	)
	if o.dirty() && o.writing.TryLock() {
		defer o.writing.Unlock()
		users, channels = o.snapshot()
	}
	stateOps := j.s.stateOps(users, channels)
	if len(entries) == 0 && len(stateOps) == 0 {
		return nil, nil
	}
	now := j.s.opts.Now()
	args := make([]any, 0, 4+5*len(entries))
	args = append(args, j.s.fenceValue(), now.UnixMilli(), j.s.opts.Journal.DedupMaxKeys, len(entries))
	for i := range entries {
		if entries[i].Time.IsZero() {
			entries[i].Time = now
		}
		e := entries[i]
		args = append(args, e.DedupKey, e.Time.UnixNano(), e.Kind, e.ChatKey, e.Data)
	}
	keys := []string{j.s.leaseKey(), j.seqKey(), j.streamKey(), j.dedupKey(), j.dedupOrdKey()}
	args = append(args, len(stateOps))
	for _, op := range stateOps {
		ki := slices.Index(keys, op.key)
		if ki < 0 {
			keys = append(keys, op.key)
			ki = len(keys) - 1
		}
		args = append(args, op.cmd, ki+1, len(op.args))
		args = append(args, op.args...)
	}
	var res []int64
	var err error
	if j.s.opts.WaitReplicas > 0 {
		pipe := j.s.rdb.Pipeline()
		ev := appendScript.Eval(ctx, pipe, keys, args...)
		w := pipe.Do(ctx, "wait", j.s.opts.WaitReplicas, j.s.opts.WaitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		res, err = ev.Int64Slice()
		if err == nil {
			err = j.s.checkWait(w.Int64())
		}
	} else {
		res, err = appendScript.Run(ctx, j.s.rdb, keys, args...).Int64Slice()
	}
	if err == nil && len(res) != len(entries) {
		err = fmt.Errorf("append script returned %d seqs for %d entries", len(res), len(entries))
	}
	if err != nil {
		err = mapErr(err)
		j.Fail(err)
		return nil, fmt.Errorf("journal append: %w", err)
	}
	o.written(users, channels)
	var added []store.Entry
	for i, seq := range res {
		if seq > 0 {
			e := entries[i]
			e.Seq = uint64(seq)
			added = append(added, e)
		}
	}
	if len(added) > 0 {
		j.mu.Lock()
		if last := added[len(added)-1].Seq; last > j.last {
			j.last = last
		}
		close(j.notify)
		j.notify = make(chan struct{})
		j.mu.Unlock()
	}
	return added, nil
}

func decodeMessage(m redis.XMessage) (store.Entry, error) {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	seq, err := strconv.ParseUint(str("s"), 10, 64)
	if err != nil {
		return store.Entry{}, fmt.Errorf("journal entry %s: bad seq %q", m.ID, str("s"))
	}
	ns, err := strconv.ParseInt(str("t"), 10, 64)
	if err != nil {
		return store.Entry{}, fmt.Errorf("journal entry %s: bad time %q", m.ID, str("t"))
	}
	return store.Entry{
		Seq: seq, Time: time.Unix(0, ns), Kind: str("k"), ChatKey: str("c"), DedupKey: str("d"), Data: []byte(str("x")),
	}, nil
}

func idSeq(id string) uint64 {
	head, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(head, 10, 64)
	return n
}

// Consumer registers name as a consumer group (if new) and returns it.
// Registration is a fenced write.
func (j *Journal) Consumer(ctx context.Context, name string, opts store.ConsumerOptions) (store.JournalConsumer, error) {
	c, err := j.consumer(ctx, name, opts)
	if err != nil {
		return nil, err // not a typed nil
	}
	return c, nil
}

func (j *Journal) consumer(ctx context.Context, name string, opts store.ConsumerOptions) (*Consumer, error) {
	if name == "" {
		return nil, errors.New("journal consumer: empty name")
	}
	// Existing consumers need no write, so a read-only store (no lease)
	// can open them, e.g. to report lag.
	gs, err := j.groups(ctx)
	if err != nil {
		return nil, fmt.Errorf("register journal consumer %q: %w", name, err)
	}
	for _, g := range gs {
		if g.name == name {
			return &Consumer{j: j, name: name}, nil
		}
	}
	start := "0"
	if opts.FromEnd {
		start = "$"
	}
	b := j.s.newBatch()
	b.op(modeIgnoreBusy, 3, j.streamKey(), "XGROUP", "CREATE", name, start, "MKSTREAM")
	if err := j.s.commit(ctx, b); err != nil {
		return nil, fmt.Errorf("register journal consumer %q: %w", name, err)
	}
	return &Consumer{j: j, name: name}, nil
}

type groupInfo struct {
	name          string
	lastDelivered uint64
	pending       int64
}

func (j *Journal) groups(ctx context.Context) ([]groupInfo, error) {
	gs, err := j.s.rdb.XInfoGroups(ctx, j.streamKey()).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil, nil
		}
		return nil, err
	}
	out := make([]groupInfo, len(gs))
	for i, g := range gs {
		out[i] = groupInfo{name: g.Name, lastDelivered: idSeq(g.LastDeliveredID), pending: g.Pending}
	}
	return out, nil
}

// Consumers lists registered consumer names.
func (j *Journal) Consumers(ctx context.Context) ([]string, error) {
	gs, err := j.groups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list journal consumers: %w", err)
	}
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.name
	}
	slices.Sort(names)
	return names, nil
}

// Unregister deletes a consumer group; compaction no longer waits for it.
func (j *Journal) Unregister(ctx context.Context, name string) error {
	b := j.s.newBatch()
	b.op(modeCall, 3, j.streamKey(), "XGROUP", "DESTROY", name)
	if err := j.s.commit(ctx, b); err != nil && !strings.Contains(err.Error(), "no such key") {
		return fmt.Errorf("unregister journal consumer %q: %w", name, err)
	}
	return nil
}

// Depth is the number of entries currently kept in the stream.
func (j *Journal) Depth(ctx context.Context) (uint64, error) {
	n, err := j.s.rdb.XLen(ctx, j.streamKey()).Result()
	return uint64(n), err
}

// DedupKeys is the number of keys in the dedup index.
func (j *Journal) DedupKeys(ctx context.Context) (uint64, error) {
	n, err := j.s.rdb.HLen(ctx, j.dedupKey()).Result()
	return uint64(n), err
}

// Consumer is one consumer group read by its single consumer "owner".
type Consumer struct {
	j    *Journal
	name string
}

const owner = "owner"

// Name is the consumer's registered name.
func (c *Consumer) Name() string { return c.name }

func (c *Consumer) readGroup(ctx context.Context, id string, count int64) ([]redis.XMessage, error) {
	res, err := c.j.s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.name, Consumer: owner, Streams: []string{c.j.streamKey(), id}, Count: count, Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "NOGROUP") {
			return nil, fmt.Errorf("journal consumer %q is not registered", c.name)
		}
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// Read returns up to max unacknowledged entries with Seq > after, in order:
// first those read before and not acknowledged (the PEL), then new ones.
func (c *Consumer) Read(ctx context.Context, after uint64, max int) ([]store.Entry, error) {
	if max <= 0 {
		max = 1000
	}
	out, err := c.read(ctx, after, max)
	if err != nil {
		return nil, fmt.Errorf("journal consumer %q read: %w", c.name, err)
	}
	return out, nil
}

func (c *Consumer) read(ctx context.Context, after uint64, max int) ([]store.Entry, error) {
	if c.j.closed() {
		return nil, store.ErrClosed
	}
	var out []store.Entry
	add := func(ms []redis.XMessage) error {
		for _, m := range ms {
			if m.Values == nil {
				continue // trimmed; cannot happen for unacked entries
			}
			e, err := decodeMessage(m)
			if err != nil {
				return err
			}
			if e.Seq > after {
				out = append(out, e)
			}
		}
		return nil
	}
	pending, err := c.readGroup(ctx, strconv.FormatUint(after, 10)+"-0", int64(max))
	if err != nil {
		return nil, err
	}
	if err := add(pending); err != nil {
		return nil, err
	}
	if len(pending) == max {
		return out, nil
	}
	for len(out) < max {
		fresh, err := c.readGroup(ctx, ">", int64(max-len(out)))
		if err != nil {
			return nil, err
		}
		if len(fresh) == 0 {
			break
		}
		if err := add(fresh); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Next is Read that waits until at least one entry is available or ctx
// ends. Appends of this process wake it at once; it also looks again every
// PollInterval (entries appended by another process).
func (c *Consumer) Next(ctx context.Context, after uint64, max int) ([]store.Entry, error) {
	for {
		select {
		case <-c.j.stop:
			return nil, store.ErrClosed
		default:
		}
		c.j.mu.Lock()
		wake := c.j.notify
		c.j.mu.Unlock()
		entries, err := c.Read(ctx, after, max)
		if err != nil || len(entries) > 0 {
			return entries, err
		}
		t := time.NewTimer(c.j.s.opts.PollInterval)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-c.j.stop:
			t.Stop()
			return nil, store.ErrClosed
		}
		t.Stop()
	}
}

func (c *Consumer) validate(seqs []uint64) error {
	if c.j.closed() {
		return store.ErrClosed
	}
	for _, s := range seqs {
		if s == 0 {
			return fmt.Errorf("journal consumer %q: ack of seq 0", c.name)
		}
	}
	return nil
}

// Ack acknowledges seqs, in any order (XACK, fenced). Acks of acknowledged
// seqs are ignored; a seq never journaled is an error.
func (c *Consumer) Ack(ctx context.Context, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return c.AckWith(ctx, nil, seqs...)
}

// AckWith runs fn and acknowledges seqs in one Lua script (after an
// optimistic WATCH of what fn read): the effects and the ack commit
// together or not at all, so a consumer that writes its effects through
// the Txn handles every entry exactly once.
func (c *Consumer) AckWith(ctx context.Context, fn func(tx store.Txn) error, seqs ...uint64) error {
	if err := c.validate(seqs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ack := &ackSpec{group: c.name, seqs: slices.Clone(seqs)}
	var err error
	if fn == nil {
		b := c.j.s.newBatch()
		b.ack = ack
		err = c.j.s.commit(ctx, b)
	} else {
		err = c.j.s.update(ctx, func(rtx *redis.Tx, b *batch) error {
			t := newTxn(ctx, c.j.s, rtx, b)
			if err := fn(t); err != nil {
				return err
			}
			b.ack = ack
			return t.check()
		})
	}
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "TGRUNKNOWNSEQ "); i >= 0 {
			return fmt.Errorf("journal consumer %q: %s", c.name, msg[i+len("TGRUNKNOWNSEQ "):])
		}
		if strings.Contains(msg, "TGRNOGROUP") {
			return fmt.Errorf("journal consumer %q is not registered", c.name)
		}
		return fmt.Errorf("journal consumer %q ack: %w", c.name, err)
	}
	return nil
}

func (c *Consumer) group(ctx context.Context) (groupInfo, error) {
	gs, err := c.j.groups(ctx)
	if err != nil {
		return groupInfo{}, err
	}
	for _, g := range gs {
		if g.name == c.name {
			return g, nil
		}
	}
	return groupInfo{}, fmt.Errorf("journal consumer %q is not registered", c.name)
}

// pendingSeqs lists the PEL, ascending.
func (c *Consumer) pendingSeqs(ctx context.Context) ([]uint64, error) {
	var out []uint64
	start := "-"
	for {
		ps, err := c.j.s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: c.j.streamKey(), Group: c.name, Start: start, End: "+", Count: 1000,
		}).Result()
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out = append(out, idSeq(p.ID))
		}
		if len(ps) < 1000 {
			return out, nil
		}
		start = "(" + ps[len(ps)-1].ID
	}
}

// Position returns the acknowledgement state: every seq <= Low is acked,
// Above lists the acked seqs above it (read entries not in the PEL).
func (c *Consumer) Position(ctx context.Context) (store.ConsumerPosition, error) {
	g, err := c.group(ctx)
	if err != nil {
		return store.ConsumerPosition{}, err
	}
	if g.pending == 0 {
		return store.ConsumerPosition{Low: g.lastDelivered}, nil
	}
	pend, err := c.pendingSeqs(ctx)
	if err != nil {
		return store.ConsumerPosition{}, fmt.Errorf("journal consumer %q position: %w", c.name, err)
	}
	if len(pend) == 0 {
		return store.ConsumerPosition{Low: g.lastDelivered}, nil
	}
	p := store.ConsumerPosition{Low: pend[0] - 1}
	i := 0
	for s := pend[0]; s <= g.lastDelivered; s++ {
		if i < len(pend) && pend[i] == s {
			i++
			continue
		}
		p.Above = append(p.Above, s)
	}
	return p, nil
}

// Lag is the number of entries this consumer has not acknowledged.
func (c *Consumer) Lag(ctx context.Context) (uint64, error) {
	g, err := c.group(ctx)
	if err != nil {
		return 0, err
	}
	last, err := c.j.s.rdb.Get(ctx, c.j.seqKey()).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	lag := uint64(g.pending)
	if last > g.lastDelivered {
		lag += last - g.lastDelivered
	}
	return lag, nil
}

// Compact trims entries acknowledged by every consumer (and older than
// EntryRetention) and dedup keys older than DedupRetention. With no
// consumer registered nothing is trimmed.
func (j *Journal) Compact(ctx context.Context) (store.CompactResult, error) {
	var res store.CompactResult
	now := j.s.opts.Now()
	gs, err := j.groups(ctx)
	if err != nil {
		return res, fmt.Errorf("compact journal: %w", err)
	}
	if len(gs) > 0 {
		var minLow uint64
		for i, g := range gs {
			p, err := (&Consumer{j: j, name: g.name}).Position(ctx)
			if err != nil {
				return res, fmt.Errorf("compact journal: %w", err)
			}
			if i == 0 || p.Low < minLow {
				minLow = p.Low
			}
		}
		cut := minLow + 1 // first seq to keep
		if ret := j.s.opts.Journal.EntryRetention; ret > 0 && minLow > 0 {
			ms, err := j.s.rdb.XRangeN(ctx, j.streamKey(), "-", strconv.FormatUint(minLow, 10)+"-0", 10000).Result()
			if err != nil {
				return res, fmt.Errorf("compact journal: %w", err)
			}
			for _, m := range ms {
				if e, err := decodeMessage(m); err == nil && now.Sub(e.Time) < ret {
					cut = e.Seq
					break
				}
			}
		}
		before, err := j.Depth(ctx)
		if err != nil {
			return res, fmt.Errorf("compact journal: %w", err)
		}
		b := j.s.newBatch()
		b.call("XTRIM", j.streamKey(), "MINID", strconv.FormatUint(cut, 10)+"-0")
		if err := j.s.commit(ctx, b); err != nil {
			return res, fmt.Errorf("compact journal: %w", err)
		}
		after, err := j.Depth(ctx)
		if err == nil && after < before {
			res.Entries = int(before - after)
		}
	}
	cutoff := now.Add(-j.s.opts.Journal.DedupRetention).UnixMilli()
	for {
		keys, err := j.s.rdb.ZRangeByScore(ctx, j.dedupOrdKey(), &redis.ZRangeBy{
			Min: "-inf", Max: "(" + strconv.FormatInt(cutoff, 10), Count: 1000,
		}).Result()
		if err != nil {
			return res, fmt.Errorf("compact journal dedup index: %w", err)
		}
		if len(keys) == 0 {
			return res, nil
		}
		args := make([]any, len(keys))
		for i, k := range keys {
			args[i] = k
		}
		b := j.s.newBatch()
		b.call("HDEL", j.dedupKey(), args...)
		b.call("ZREM", j.dedupOrdKey(), args...)
		if err := j.s.commit(ctx, b); err != nil {
			return res, fmt.Errorf("compact journal dedup index: %w", err)
		}
		res.DedupKeys += len(keys)
	}
}

func (j *Journal) compactLoop() {
	defer j.wg.Done()
	t := time.NewTicker(j.s.opts.Journal.CompactInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-j.stop; cancel() }()
	for {
		select {
		case <-t.C:
			_, _ = j.Compact(ctx)
		case <-j.stop:
			return
		}
	}
}
