// Package redisstore owns everything durable for one account on Redis: the
// MTProto session, the updates state, access hashes, peers, the updates
// journal (a Redis Stream with one consumer group per journal consumer),
// plugin key-value data, the audit log and the outbox. It implements
// store.Backend with the same guarantees as the bbolt store.
//
// Every key of account A starts with "tgr:{A}:"; the hash tag keeps an
// account in one Redis Cluster slot, so its Lua scripts and transactions
// stay atomic. Every write is a Lua script that first checks the account's
// lease key (core/lease) still holds this writer's fencing token: a runner
// that lost its lease writes nothing more (ErrFenced).
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
)

// ErrFenced is wrapped by writes refused because this writer no longer
// holds the account's lease (another runner took it, or it expired).
var ErrFenced = errors.New("account lease not held: write refused (fencing)")

// Fence identifies the lease whose token every write must carry;
// *lease.Lease implements it.
type Fence interface {
	FenceKey() string
	FenceValue() string
}

// Options tunes Open. Zero values take the defaults.
type Options struct {
	// Prefix of every key; default "tgr".
	Prefix string
	// Journal tunes the journal like the bbolt store's (DedupRetention,
	// DedupMaxKeys, EntryRetention, CompactInterval). AckBatchMax is unused.
	Journal store.JournalOptions
	// KV sets the plugin storage limits.
	KV store.KVLimits
	// WaitReplicas > 0 makes Append, Ack and AckWith wait (WAIT) until that
	// many replicas have the write, and fail otherwise: a failover then
	// cannot lose an update the journal acknowledged. WaitTimeout bounds the
	// wait (default 1s).
	WaitReplicas int
	WaitTimeout  time.Duration
	// PollInterval bounds how long Next sleeps before looking again when no
	// Append of this process woke it. Default 1s.
	PollInterval time.Duration
	// StateFlushInterval bounds how long an updates-state write waits for
	// a journal Append to carry it before it is written on its own.
	// Default 1s.
	StateFlushInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = lease.DefaultPrefix
	}
	if o.Journal.DedupRetention <= 0 {
		o.Journal.DedupRetention = 7 * 24 * time.Hour
	}
	if o.Journal.DedupMaxKeys <= 0 {
		o.Journal.DedupMaxKeys = 1_000_000
	}
	if o.Journal.CompactInterval == 0 {
		o.Journal.CompactInterval = time.Minute
	}
	if o.KV.MaxKeyBytes <= 0 {
		o.KV.MaxKeyBytes = 512
	}
	if o.KV.MaxValueBytes <= 0 {
		o.KV.MaxValueBytes = 1 << 20
	}
	if o.KV.MaxPluginBytes <= 0 {
		o.KV.MaxPluginBytes = 64 << 20
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.StateFlushInterval <= 0 {
		o.StateFlushInterval = defaultStateFlushInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is one account's storage on Redis. Safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	account string
	p       string // key prefix "tgr:{account}:"
	fence   Fence
	opts    Options
	journal *Journal
	// state holds updates-state writes not yet in Redis; see StateStorage.
	state     stateOverlay
	stopFlush context.CancelFunc
	flushDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

var _ store.Backend = (*Store)(nil)

// Open opens account's storage on rdb. Writes carry fence (the account's
// lease); with a nil fence the store is read-only and every write fails
// with ErrFenced. Open does not close rdb on Close: one client serves
// many accounts.
func Open(ctx context.Context, rdb redis.UniversalClient, account string, fence Fence, opts Options) (*Store, error) {
	opts.setDefaults()
	if err := lease.ValidAccount(account); err != nil {
		return nil, fmt.Errorf("open redis storage: %w", err)
	}
	s := &Store{rdb: rdb, account: account, p: lease.KeyPrefix(opts.Prefix, account), fence: fence, opts: opts}
	if fence != nil && fence.FenceKey() != s.leaseKey() {
		return nil, fmt.Errorf("open redis storage of account %s: the lease is for key %s, want %s", account, fence.FenceKey(), s.leaseKey())
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("open redis storage of account %s: %w", account, err)
	}
	j, err := newJournal(ctx, s)
	if err != nil {
		return nil, err
	}
	s.journal = j
	s.flushDone = make(chan struct{})
	if fence == nil {
		close(s.flushDone) // read-only: no state to write
		s.stopFlush = func() {}
	} else {
		var flushCtx context.Context
		flushCtx, s.stopFlush = context.WithCancel(context.Background())
		go s.flushStateLoop(flushCtx)
	}
	return s, nil
}

// Account is the account this store belongs to.
func (s *Store) Account() string { return s.account }

// Describe implements store.Backend.
func (s *Store) Describe() string {
	return fmt.Sprintf("redis %s account %s", describeClient(s.rdb), s.account)
}

func describeClient(rdb redis.UniversalClient) string {
	if c, ok := rdb.(*redis.Client); ok {
		o := c.Options()
		return fmt.Sprintf("%s/%d", o.Addr, o.DB)
	}
	return "cluster"
}

// Close writes the pending updates state and stops background work. It
// does not close the Redis client.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopFlush()
		<-s.flushDone
		s.closeErr = s.flushState(context.Background())
		s.journal.close()
	})
	return s.closeErr
}

func (s *Store) leaseKey() string { return s.p + "lease" }

func (s *Store) fenceValue() string {
	if s.fence == nil {
		return "\x00none"
	}
	return s.fence.FenceValue()
}

// mapErr turns script errors into typed errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "TGRFENCED"):
		return ErrFenced
	}
	return err
}

var errNoState = errors.New("updates state not found")

// batch collects writes for the commit script. KEYS[1] is the lease key.
type batch struct {
	keys  []string
	index map[string]int
	ops   []any
	nops  int
	ack   *ackSpec
}

type ackSpec struct {
	group string
	seqs  []uint64
}

const (
	modeCall       = 0 // redis.call
	modeIgnoreBusy = 1 // redis.pcall, ignoring BUSYGROUP
	// 2 is retired (it served state writes before they rode with Append).
	modeZAddWithSeq = 3 // ZADD key score prefix..%016d(INCR seqkey)..suffix
)

func (s *Store) newBatch() *batch {
	b := &batch{index: map[string]int{}}
	b.key(s.leaseKey())
	return b
}

func (b *batch) key(k string) int {
	if i, ok := b.index[k]; ok {
		return i
	}
	b.keys = append(b.keys, k)
	b.index[k] = len(b.keys)
	return len(b.keys)
}

// op adds a command; key is inserted as argument number keypos (1 = the
// command name).
func (b *batch) op(mode, keypos int, key string, args ...any) {
	b.ops = append(b.ops, mode, len(args), keypos, b.key(key))
	b.ops = append(b.ops, args...)
	b.nops++
}

func (b *batch) call(cmd, key string, args ...any) {
	b.op(modeCall, 2, key, append([]any{cmd}, args...)...)
}

func (b *batch) empty() bool { return b.nops == 0 && b.ack == nil }

// commitScript: fence check, ack validation, the ops, then the acks.
var commitScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('TGRFENCED account lease not held by this writer')
end
local i = 2
local group = ARGV[i]
i = i + 1
local streamKey, acks, delivered
if group ~= '' then
  streamKey = KEYS[tonumber(ARGV[i])]
  local last = tonumber(redis.call('GET', KEYS[tonumber(ARGV[i + 1])]) or '0')
  local n = tonumber(ARGV[i + 2])
  i = i + 3
  acks = {}
  for j = 1, n do
    local s = tonumber(ARGV[i])
    if s > last then
      return redis.error_reply('TGRUNKNOWNSEQ ack of unknown seq ' .. ARGV[i] .. ' (last is ' .. last .. ')')
    end
    acks[j] = s
    i = i + 1
  end
  local groups = redis.pcall('XINFO', 'GROUPS', streamKey)
  if type(groups) == 'table' and groups.err then groups = {} end
  for _, g in ipairs(groups) do
    local name, ld
    for k = 1, #g, 2 do
      if g[k] == 'name' then name = g[k + 1] end
      if g[k] == 'last-delivered-id' then ld = g[k + 1] end
    end
    if name == group then delivered = tonumber(string.match(ld, '^(%d+)')) end
  end
  if delivered == nil then
    return redis.error_reply('TGRNOGROUP journal consumer ' .. group .. ' is not registered')
  end
end
local nops = tonumber(ARGV[i])
i = i + 1
for _ = 1, nops do
  local mode, argc, keypos = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local key = KEYS[tonumber(ARGV[i + 3])]
  i = i + 4
  local args = {}
  for j = 1, argc do args[j] = ARGV[i + j - 1] end
  i = i + argc
  table.insert(args, keypos, key)
  if mode == 0 then
    redis.call(unpack(args))
  elseif mode == 1 then
    local r = redis.pcall(unpack(args))
    if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then return r end
  elseif mode == 3 then
    local n = redis.call('INCR', KEYS[tonumber(args[4])])
    redis.call('ZADD', key, args[3], args[5] .. string.format('%016d', n) .. args[6])
  end
end
if acks then
  for _, s in ipairs(acks) do
    if redis.call('XACK', streamKey, group, s .. '-0') == 0 and s > delivered then
      -- Acked before it was read: deliver up to it, then ack.
      local r = redis.call('XREADGROUP', 'GROUP', group, 'owner', 'COUNT', s - delivered, 'STREAMS', streamKey, '>')
      if r then
        local entries = r[1][2]
        delivered = tonumber(string.match(entries[#entries][1], '^(%d+)'))
      end
      redis.call('XACK', streamKey, group, s .. '-0')
    end
  end
end
return nops
`)

func (s *Store) commitArgs(b *batch) []any {
	args := make([]any, 0, 8+len(b.ops))
	args = append(args, s.fenceValue())
	if b.ack != nil {
		args = append(args, b.ack.group, b.key(s.journal.streamKey()), b.key(s.journal.seqKey()), len(b.ack.seqs))
		for _, q := range b.ack.seqs {
			args = append(args, q)
		}
	} else {
		args = append(args, "")
	}
	args = append(args, b.nops)
	return append(args, b.ops...)
}

// commit runs b's writes atomically, fenced. Without a transaction.
func (s *Store) commit(ctx context.Context, b *batch) error {
	if b.empty() {
		return nil
	}
	args := s.commitArgs(b)
	if s.opts.WaitReplicas <= 0 {
		return mapErr(commitScript.Run(ctx, s.rdb, b.keys, args...).Err())
	}
	// WAIT counts the writes of its own connection: pipeline both.
	pipe := s.rdb.Pipeline()
	ev := commitScript.Eval(ctx, pipe, b.keys, args...)
	w := pipe.Do(ctx, "wait", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
	_, _ = pipe.Exec(ctx)
	if err := ev.Err(); err != nil {
		return mapErr(err)
	}
	return s.checkWait(w.Int64())
}

// errRetry asks update to run the transaction again.
var errRetry = errors.New("watched key changed")

// update runs fn in an optimistic transaction: fn reads through tx (after
// tx.Watch of each key it reads) and fills b; the commit aborts and fn runs
// again when a watched key changed meanwhile.
func (s *Store) update(ctx context.Context, fn func(tx *redis.Tx, b *batch) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b := s.newBatch()
			if err := fn(tx, b); err != nil {
				return err
			}
			if b.empty() {
				return nil
			}
			args := s.commitArgs(b)
			_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				// EVAL, not EVALSHA: a NOSCRIPT inside EXEC cannot fall back.
				commitScript.Eval(ctx, pipe, b.keys, args...)
				return nil
			})
			if errors.Is(err, redis.TxFailedErr) {
				return errRetry
			}
			if err != nil {
				return mapErr(err)
			}
			if s.opts.WaitReplicas > 0 {
				return s.checkWait(tx.Wait(ctx, s.opts.WaitReplicas, s.opts.WaitTimeout).Result())
			}
			return nil
		})
		if errors.Is(err, errRetry) {
			if attempt >= 1000 {
				return fmt.Errorf("redis transaction: gave up after %d conflicts", attempt)
			}
			// Brief backoff so contending writers interleave.
			time.Sleep(time.Duration(attempt%10) * 100 * time.Microsecond)
			continue
		}
		return err
	}
}

// checkWait reports a WAIT that fewer than WaitReplicas acknowledged.
func (s *Store) checkWait(n int64, err error) error {
	if err != nil {
		return fmt.Errorf("wait for replicas: %w", err)
	}
	if int(n) < s.opts.WaitReplicas {
		return fmt.Errorf("wait for replicas: %d of %d acknowledged within %v", n, s.opts.WaitReplicas, s.opts.WaitTimeout)
	}
	return nil
}

// Update implements store.Backend.
func (s *Store) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	err := s.update(ctx, func(rtx *redis.Tx, b *batch) error {
		t := newTxn(ctx, s, rtx, b)
		if err := fn(t); err != nil {
			return err
		}
		return t.check()
	})
	if err != nil {
		return fmt.Errorf("storage update: %w", err)
	}
	return nil
}
