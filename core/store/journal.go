package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrJournalFailed is wrapped by every error returned after the journal was
// marked failed. Restart the runner: getDifference replays what was lost.
var ErrJournalFailed = errors.New("updates journal failed")

// ErrClosed is returned by calls on a closed store.
var ErrClosed = errors.New("storage is closed")

// JournalOptions tunes the journal. Zero values take the defaults.
//
// The dedup index recognises updates that getDifference replays after a
// crash. It only helps if it still holds the keys of every update that can be
// replayed: DedupRetention and DedupMaxKeys must both exceed the longest
// replay. A replay covers the updates journaled after the last persisted pts,
// which is usually a handful, but while the journal is failed the state does
// not move, so the replay covers the whole failed period. The defaults
// (7 days, 1,000,000 keys, about 100 MB of index at worst) favour safety
// over disk space.
type JournalOptions struct {
	DedupRetention time.Duration // default 7 days
	DedupMaxKeys   int           // default 1,000,000
	// EntryRetention keeps entries acknowledged by every consumer at least
	// this long before compaction deletes them. Default 0: delete at once.
	EntryRetention time.Duration
	// CompactInterval runs Compact in the background. Default 1 minute;
	// negative disables it.
	CompactInterval time.Duration
	// AckBatchMax caps the acknowledgements committed in one transaction.
	AckBatchMax int // default 65,536
}

func (o *JournalOptions) setDefaults() {
	if o.DedupRetention <= 0 {
		o.DedupRetention = 7 * 24 * time.Hour
	}
	if o.DedupMaxKeys <= 0 {
		o.DedupMaxKeys = 1_000_000
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = time.Minute
	}
	if o.AckBatchMax <= 0 {
		o.AckBatchMax = 65536
	}
}

// Entry is one journaled update.
type Entry struct {
	// Seq is assigned by Append: gap-free and increasing.
	Seq uint64
	// DedupKey identifies the update, e.g. "msg:channel:678:1234:new".
	// An entry whose key is already in the dedup index is dropped. Empty
	// means no deduplication.
	DedupKey string
	// ChatKey groups entries that must be handled in order (one chat).
	ChatKey string
	Kind    string
	Data    []byte // opaque to the store
	Time    time.Time
}

func encodeEntry(e Entry) []byte {
	var enc encoder
	enc.b = append(enc.b, 1) // record version
	enc.u64(uint64(e.Time.UnixNano()))
	enc.str(e.Kind)
	enc.str(e.ChatKey)
	enc.str(e.DedupKey)
	enc.bytes(e.Data)
	return sealed(enc.b)
}

func decodeEntry(seq uint64, v []byte) (Entry, error) {
	payload, err := unseal(v)
	if err != nil {
		return Entry{}, err
	}
	if len(payload) < 1 || payload[0] != 1 {
		return Entry{}, fmt.Errorf("unknown entry version")
	}
	d := decoder{b: payload[1:]}
	e := Entry{Seq: seq}
	e.Time = time.Unix(0, int64(d.u64()))
	e.Kind = d.str()
	e.ChatKey = d.str()
	e.DedupKey = d.str()
	e.Data = d.bytes()
	return e, d.err
}

// entryTime reads only the timestamp, for compaction.
func entryTime(v []byte) (time.Time, bool) {
	if len(v) < 9 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(beU64(v[1:9]))), true
}

var (
	keyLastSeq    = []byte("last_seq")
	keyDedupCount = []byte("dedup_count")
	keyLow        = []byte("low")
	keyAbove      = []byte("above")
	keyRegistered = []byte("registered")
	ackMark       = []byte{1}
)

// Journal is the durable, append-only log of updates with named consumers.
//
// Guarantees: Append returns after an fsync'd commit. A consumer that acks
// with Ack gets at-least-once delivery: after a crash it is redelivered
// exactly the entries whose Ack had not returned (and possibly those whose
// Ack was in flight); Seq lets it recognise them. A consumer that commits its
// effects with AckTx gets exactly-once, because effect and ack share a
// transaction.
type Journal struct {
	s    *Store
	opts JournalOptions

	mu     sync.Mutex
	last   uint64        // last committed seq
	notify chan struct{} // closed and replaced on every commit
	failed error

	acks      chan ackReq
	stop      chan struct{}
	committed chan struct{} // closed when the ack committer exits
	wg        sync.WaitGroup
}

type ackReq struct {
	consumer string
	seqs     []uint64
	done     chan error
}

func newJournal(s *Store) (*Journal, error) {
	j := &Journal{
		s:         s,
		opts:      s.opts.Journal,
		notify:    make(chan struct{}),
		acks:      make(chan ackReq, 4096),
		stop:      make(chan struct{}),
		committed: make(chan struct{}),
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketJournalMeta).Get(keyLastSeq); v != nil {
			j.last = beU64(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.wg.Add(1)
	go j.ackCommitter()
	if j.opts.CompactInterval > 0 {
		j.wg.Add(1)
		go j.compactLoop()
	}
	return j, nil
}

func (j *Journal) close() {
	close(j.stop)
	j.wg.Wait()
}

// Journal returns the updates journal.
func (s *Store) Journal() *Journal { return s.journal }

// Fail marks the journal failed: Append and every updates-state setter
// refuse to proceed until the store is reopened. The first cause is kept.
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

// Failed returns nil, or an error wrapping ErrJournalFailed and the cause.
func (j *Journal) Failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrJournalFailed, j.failed)
}

// LastSeq is the seq of the last committed entry (0 when none).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

// Append durably journals entries in one transaction and returns those that
// were new, with Seq set. Entries whose DedupKey is already journaled (also
// earlier in the same call) are dropped. Any error marks the journal failed,
// because the caller cannot know which updates are missing.
func (j *Journal) Append(ctx context.Context, entries []Entry) ([]Entry, error) {
	if err := j.Failed(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		j.Fail(fmt.Errorf("append interrupted: %w", err))
		return nil, fmt.Errorf("journal append: %w", err)
	}
	now := j.s.opts.Now()
	var added []Entry
	var last uint64
	err := j.s.db.Update(func(tx *bolt.Tx) error {
		added = added[:0]
		// The pending updates state rides along: it only covers updates
		// journaled before, so it is never ahead of the journal on disk.
		if err := j.s.flushStateTx(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketJournalMeta)
		journal := tx.Bucket(bucketJournal)
		dedup := tx.Bucket(bucketDedup)
		order := tx.Bucket(bucketDedupOrder)
		last = 0
		if v := meta.Get(keyLastSeq); v != nil {
			last = beU64(v)
		}
		var dedupCount uint64
		if v := meta.Get(keyDedupCount); v != nil {
			dedupCount = beU64(v)
		}
		for _, e := range entries {
			if e.DedupKey != "" && dedup.Get([]byte(e.DedupKey)) != nil {
				continue
			}
			if e.Time.IsZero() {
				e.Time = now
			}
			last++
			e.Seq = last
			if err := journal.Put(u64(last), encodeEntry(e)); err != nil {
				return err
			}
			if e.DedupKey != "" {
				var v encoder
				v.u64(last)
				if err := dedup.Put([]byte(e.DedupKey), v.b); err != nil {
					return err
				}
				var o encoder
				o.u64(uint64(now.UnixNano()))
				o.b = append(o.b, e.DedupKey...)
				if err := order.Put(u64(last), o.b); err != nil {
					return err
				}
				dedupCount++
			}
			added = append(added, e)
		}
		if len(added) == 0 {
			return nil
		}
		if over := int64(dedupCount) - int64(j.opts.DedupMaxKeys); over > 0 {
			n, err := pruneDedup(tx, int(over), time.Time{})
			if err != nil {
				return err
			}
			dedupCount -= uint64(n)
		}
		if err := meta.Put(keyDedupCount, u64(dedupCount)); err != nil {
			return err
		}
		return meta.Put(keyLastSeq, u64(last))
	})
	if err != nil {
		j.Fail(err)
		return nil, fmt.Errorf("journal append: %w", err)
	}
	if len(added) > 0 {
		j.mu.Lock()
		j.last = last
		close(j.notify)
		j.notify = make(chan struct{})
		j.mu.Unlock()
	}
	return added, nil
}

// pruneDedup deletes the oldest dedup keys: at most max of them (max <= 0:
// no count limit) and, when olderThan is set, only those recorded before it.
func pruneDedup(tx *bolt.Tx, max int, olderThan time.Time) (int, error) {
	dedup := tx.Bucket(bucketDedup)
	order := tx.Bucket(bucketDedupOrder)
	var victims [][]byte
	c := order.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if max > 0 && len(victims) >= max {
			break
		}
		if len(v) < 8 {
			return 0, fmt.Errorf("journal dedup order %d: bad record", beU64(k))
		}
		if !olderThan.IsZero() && !time.Unix(0, int64(beU64(v))).Before(olderThan) {
			break
		}
		victims = append(victims, k)
		// Only drop the key if it still points at this seq.
		key := v[8:]
		if cur := dedup.Get(key); len(cur) >= 8 && beU64(cur) == beU64(k) {
			if err := dedup.Delete(key); err != nil {
				return 0, err
			}
		}
	}
	for _, k := range victims {
		if err := order.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(victims), nil
}

// ConsumerOptions tunes a consumer's registration.
type ConsumerOptions struct {
	// FromEnd starts a newly registered consumer after the last entry
	// instead of at the oldest retained one. Ignored when already registered.
	FromEnd bool
}

// Consumer is a named, durably registered reader of the journal.
type Consumer struct {
	j    *Journal
	name string
}

// Consumer registers name (if new) and returns it.
func (j *Journal) Consumer(ctx context.Context, name string, opts ConsumerOptions) (*Consumer, error) {
	if name == "" {
		return nil, errors.New("journal consumer: empty name")
	}
	err := j.s.db.Update(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketConsumers)
		if all.Bucket([]byte(name)) != nil {
			return nil
		}
		cb, err := all.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		if _, err := cb.CreateBucket(keyAbove); err != nil {
			return err
		}
		var low uint64
		if v := tx.Bucket(bucketJournalMeta).Get(keyLastSeq); v != nil {
			low = beU64(v)
		}
		if !opts.FromEnd {
			// Everything still retained; entries are gap-free.
			if k, _ := tx.Bucket(bucketJournal).Cursor().First(); k != nil {
				low = beU64(k) - 1
			}
		}
		if err := cb.Put(keyRegistered, u64(uint64(j.s.opts.Now().UnixNano()))); err != nil {
			return err
		}
		return cb.Put(keyLow, u64(low))
	})
	if err != nil {
		return nil, fmt.Errorf("register journal consumer %q: %w", name, err)
	}
	return &Consumer{j: j, name: name}, nil
}

// Consumers lists registered consumer names.
func (j *Journal) Consumers(ctx context.Context) ([]string, error) {
	var names []string
	err := j.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConsumers).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	return names, err
}

// Unregister deletes a consumer and its position; compaction no longer waits for it.
func (j *Journal) Unregister(ctx context.Context, name string) error {
	err := j.s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketConsumers).DeleteBucket([]byte(name))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("unregister journal consumer %q: %w", name, err)
	}
	return nil
}

// Name is the consumer's registered name.
func (c *Consumer) Name() string { return c.name }

func (c *Consumer) bucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	cb := tx.Bucket(bucketConsumers).Bucket([]byte(c.name))
	if cb == nil {
		return nil, fmt.Errorf("journal consumer %q is not registered", c.name)
	}
	return cb, nil
}

// Read returns up to max unacknowledged entries with Seq > after, in order.
// Read(ctx, 0, n) after a restart yields exactly the unacknowledged entries.
func (c *Consumer) Read(ctx context.Context, after uint64, max int) ([]Entry, error) {
	if max <= 0 {
		max = 1000
	}
	var out []Entry
	err := c.j.s.db.View(func(tx *bolt.Tx) error {
		cb, err := c.bucket(tx)
		if err != nil {
			return err
		}
		low := beU64(cb.Get(keyLow))
		above := cb.Bucket(keyAbove)
		from := max64(after, low) + 1
		cur := tx.Bucket(bucketJournal).Cursor()
		for k, v := cur.Seek(u64(from)); k != nil && len(out) < max; k, v = cur.Next() {
			if above.Get(k) != nil {
				continue
			}
			e, err := decodeEntry(beU64(k), v)
			if err != nil {
				return c.j.s.corrupt(fmt.Sprintf("journal/%d", beU64(k)), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("journal consumer %q read: %w", c.name, err)
	}
	return out, nil
}

// Next is Read that blocks until at least one entry is available or ctx ends.
// Append wakes it; there is no polling.
func (c *Consumer) Next(ctx context.Context, after uint64, max int) ([]Entry, error) {
	for {
		select {
		case <-c.j.stop:
			return nil, ErrClosed
		default:
		}
		c.j.mu.Lock()
		last, wake := c.j.last, c.j.notify
		c.j.mu.Unlock()
		entries, err := c.Read(ctx, after, max)
		if err != nil || len(entries) > 0 {
			return entries, err
		}
		// Everything up to last is acked or at most after: wait for more.
		after = max64(after, last)
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.j.stop:
			return nil, ErrClosed
		}
	}
}

// Ack durably acknowledges seqs, in any order. Concurrent calls share a
// transaction (group commit), so many workers acking at once cost one fsync.
// Acks of already acknowledged seqs are ignored.
func (c *Consumer) Ack(ctx context.Context, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := c.validate(seqs); err != nil {
		return err
	}
	req := ackReq{consumer: c.name, seqs: slices.Clone(seqs), done: make(chan error, 1)}
	select {
	case c.j.acks <- req:
	case <-c.j.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the ack is committed even if ctx ends; we just stop waiting.
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.j.committed:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// AckTx runs fn and acknowledges seqs in one transaction: the consumer's
// effects and its ack commit together or not at all (exactly-once).
func (c *Consumer) AckTx(ctx context.Context, fn func(tx *Tx) error, seqs ...uint64) error {
	if err := c.validate(seqs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := c.j.s.db.Update(func(btx *bolt.Tx) error {
		if fn != nil {
			if err := fn(&Tx{s: c.j.s, tx: btx}); err != nil {
				return err
			}
		}
		cb, err := c.bucket(btx)
		if err != nil {
			return err
		}
		if err := checkAckable(btx, c.name, seqs); err != nil {
			return err
		}
		return applyAcks(cb, seqs)
	})
	if err != nil {
		return fmt.Errorf("journal consumer %q ack: %w", c.name, err)
	}
	return nil
}

func (c *Consumer) validate(seqs []uint64) error {
	for _, s := range seqs {
		if s == 0 {
			return fmt.Errorf("journal consumer %q: ack of seq 0", c.name)
		}
	}
	return nil
}

// checkAckable rejects seqs that were never journaled. It reads the
// committed last seq in the ack's own transaction: a reader can see an entry
// before Append has published its seq in memory.
func checkAckable(tx *bolt.Tx, consumer string, seqs []uint64) error {
	var last uint64
	if v := tx.Bucket(bucketJournalMeta).Get(keyLastSeq); v != nil {
		last = beU64(v)
	}
	for _, s := range seqs {
		if s > last {
			return fmt.Errorf("journal consumer %q: ack of unknown seq %d (last is %d)", consumer, s, last)
		}
	}
	return nil
}

// applyAcks records seqs above the low-water mark and advances it over every
// contiguous acknowledged seq.
func applyAcks(cb *bolt.Bucket, seqs []uint64) error {
	low := beU64(cb.Get(keyLow))
	above := cb.Bucket(keyAbove)
	for _, s := range seqs {
		if s <= low {
			continue
		}
		if err := above.Put(u64(s), ackMark); err != nil {
			return err
		}
	}
	start := low
	for above.Get(u64(low+1)) != nil {
		if err := above.Delete(u64(low + 1)); err != nil {
			return err
		}
		low++
	}
	if low == start {
		return nil
	}
	return cb.Put(keyLow, u64(low))
}

func (j *Journal) ackCommitter() {
	defer j.wg.Done()
	defer close(j.committed)
	for {
		var first ackReq
		select {
		case first = <-j.acks:
		case <-j.stop:
			// Commit what is already queued before the database closes.
			select {
			case first = <-j.acks:
			default:
				return
			}
		}
		batch := []ackReq{first}
		n := len(first.seqs)
	drain:
		for n < j.opts.AckBatchMax {
			select {
			case r := <-j.acks:
				batch = append(batch, r)
				n += len(r.seqs)
			default:
				break drain
			}
		}
		perReq := make([]error, len(batch))
		err := j.s.db.Update(func(tx *bolt.Tx) error {
			all := tx.Bucket(bucketConsumers)
			for i, r := range batch {
				perReq[i] = nil
				cb := all.Bucket([]byte(r.consumer))
				if cb == nil {
					perReq[i] = fmt.Errorf("journal consumer %q is not registered", r.consumer)
					continue
				}
				if err := checkAckable(tx, r.consumer, r.seqs); err != nil {
					perReq[i] = err
					continue
				}
				if err := applyAcks(cb, r.seqs); err != nil {
					return err
				}
			}
			return nil
		})
		for i, r := range batch {
			switch {
			case err != nil:
				r.done <- fmt.Errorf("journal consumer %q ack: %w", r.consumer, err)
			default:
				r.done <- perReq[i]
			}
		}
	}
}

// ConsumerPosition is a consumer's durable acknowledgement state.
type ConsumerPosition struct {
	Low   uint64   // every seq <= Low is acknowledged
	Above []uint64 // acknowledged seqs above Low, ascending
}

// Position returns the consumer's acknowledgement state.
func (c *Consumer) Position(ctx context.Context) (ConsumerPosition, error) {
	var p ConsumerPosition
	err := c.j.s.db.View(func(tx *bolt.Tx) error {
		cb, err := c.bucket(tx)
		if err != nil {
			return err
		}
		p.Low = beU64(cb.Get(keyLow))
		return cb.Bucket(keyAbove).ForEach(func(k, _ []byte) error {
			p.Above = append(p.Above, beU64(k))
			return nil
		})
	})
	return p, err
}

// Lag is the number of entries this consumer has not acknowledged.
func (c *Consumer) Lag(ctx context.Context) (uint64, error) {
	p, err := c.Position(ctx)
	if err != nil {
		return 0, err
	}
	last := c.j.LastSeq()
	acked := p.Low + uint64(len(p.Above))
	if acked >= last {
		return 0, nil
	}
	return last - acked, nil
}

// Depth is the number of entries currently kept in the journal.
func (j *Journal) Depth(ctx context.Context) (uint64, error) {
	var depth uint64
	err := j.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		first, _ := c.First()
		lastK, _ := c.Last()
		if first != nil {
			depth = beU64(lastK) - beU64(first) + 1
		}
		return nil
	})
	return depth, err
}

// DedupKeys is the number of keys in the dedup index.
func (j *Journal) DedupKeys(ctx context.Context) (uint64, error) {
	var n uint64
	err := j.s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketJournalMeta).Get(keyDedupCount); v != nil {
			n = beU64(v)
		}
		return nil
	})
	return n, err
}

// CompactResult reports what Compact removed.
type CompactResult struct {
	Entries   int
	DedupKeys int
}

// Compact deletes entries acknowledged by every registered consumer (and
// older than EntryRetention), and dedup keys older than DedupRetention.
// With no consumer registered nothing is deleted.
func (j *Journal) Compact(ctx context.Context) (CompactResult, error) {
	var res CompactResult
	now := j.s.opts.Now()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := 0
		err := j.s.db.Update(func(tx *bolt.Tx) error {
			n = 0
			var minLow uint64
			any := false
			err := tx.Bucket(bucketConsumers).ForEachBucket(func(k []byte) error {
				low := beU64(tx.Bucket(bucketConsumers).Bucket(k).Get(keyLow))
				if !any || low < minLow {
					minLow = low
				}
				any = true
				return nil
			})
			if err != nil || !any {
				return err
			}
			var victims [][]byte
			c := tx.Bucket(bucketJournal).Cursor()
			for k, v := c.First(); k != nil && beU64(k) <= minLow && len(victims) < 10000; k, v = c.Next() {
				if j.opts.EntryRetention > 0 {
					if t, ok := entryTime(v); ok && now.Sub(t) < j.opts.EntryRetention {
						break
					}
				}
				victims = append(victims, k)
			}
			for _, k := range victims {
				if err := tx.Bucket(bucketJournal).Delete(k); err != nil {
					return err
				}
			}
			n = len(victims)
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("compact journal: %w", err)
		}
		res.Entries += n
		if n < 10000 {
			break
		}
	}
	err := j.s.db.Update(func(tx *bolt.Tx) error {
		n, err := pruneDedup(tx, 0, now.Add(-j.opts.DedupRetention))
		if err != nil || n == 0 {
			return err
		}
		res.DedupKeys = n
		meta := tx.Bucket(bucketJournalMeta)
		count := beU64(meta.Get(keyDedupCount)) - uint64(n)
		return meta.Put(keyDedupCount, u64(count))
	})
	if err != nil {
		return res, fmt.Errorf("compact journal dedup index: %w", err)
	}
	return res, nil
}

func (j *Journal) compactLoop() {
	defer j.wg.Done()
	t := time.NewTicker(j.opts.CompactInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-j.stop; cancel() }()
	for {
		select {
		case <-t.C:
			// Errors resurface on the next Append or Read; compaction just retries.
			_, _ = j.Compact(ctx)
		case <-j.stop:
			return
		}
	}
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
