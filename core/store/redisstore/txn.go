package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/store"
)

// txn implements store.Txn: reads go to Redis under WATCH, writes are
// buffered in the batch, and an overlay lets reads see the txn's own writes.
type txn struct {
	ctx   context.Context
	s     *Store
	tx    *redis.Tx
	b     *batch
	vals  map[string]map[string]*[]byte // plugin -> key -> value (nil: deleted)
	usage map[string]int64
	seen  map[string]bool // watched keys
	err   error           // first failed read; the commit is refused
}

func newTxn(ctx context.Context, s *Store, tx *redis.Tx, b *batch) *txn {
	return &txn{ctx: ctx, s: s, tx: tx, b: b, vals: map[string]map[string]*[]byte{}, usage: map[string]int64{}, seen: map[string]bool{}}
}

func (s *Store) kvKey(plugin string) string      { return s.p + "kv:" + plugin }
func (s *Store) kvIndexKey(plugin string) string { return s.p + "kvidx:" + plugin }
func (s *Store) kvUsageKey(plugin string) string { return s.p + "kvusage:" + plugin }
func (s *Store) kvPluginsKey() string            { return s.p + "kv:plugins" }

// watch adds keys to the transaction's read set.
func (t *txn) watch(keys ...string) error {
	if t.tx == nil {
		return errors.New("read outside a transaction")
	}
	var add []string
	for _, k := range keys {
		if !t.seen[k] {
			add = append(add, k)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := t.tx.Watch(t.ctx, add...).Err(); err != nil {
		return err
	}
	for _, k := range add {
		t.seen[k] = true
	}
	return nil
}

type txKV struct {
	t      *txn
	plugin string
}

func (t *txn) KV(plugin string) store.TxKV { return &txKV{t: t, plugin: plugin} }

// get returns the value (nil, false when missing), overlay first.
func (k *txKV) get(key string) ([]byte, bool, error) {
	if m := k.t.vals[k.plugin]; m != nil {
		if v, ok := m[key]; ok {
			if v == nil {
				return nil, false, nil
			}
			return *v, true, nil
		}
	}
	hk := k.t.s.kvKey(k.plugin)
	if err := k.t.watch(hk); err != nil {
		return nil, false, err
	}
	v, err := k.t.tx.HGet(k.t.ctx, hk, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func (k *txKV) Get(key string) ([]byte, error) {
	v, ok, err := k.get(key)
	if err != nil {
		k.t.fail(err)
		return nil, fmt.Errorf("plugin %q storage key %q: %w", k.plugin, key, err)
	}
	if !ok {
		return nil, fmt.Errorf("plugin %q storage key %q: %w", k.plugin, key, store.ErrNotFound)
	}
	return append([]byte{}, v...), nil
}

func (t *txn) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (k *txKV) currentUsage() (int64, error) {
	if u, ok := k.t.usage[k.plugin]; ok {
		return u, nil
	}
	uk := k.t.s.kvUsageKey(k.plugin)
	if err := k.t.watch(uk); err != nil {
		return 0, err
	}
	n, err := k.t.tx.Get(k.t.ctx, uk).Int64()
	if errors.Is(err, redis.Nil) {
		n, err = 0, nil
	}
	if err != nil {
		return 0, err
	}
	k.t.usage[k.plugin] = n
	return n, nil
}

func (k *txKV) remember(key string, v *[]byte) {
	m := k.t.vals[k.plugin]
	if m == nil {
		m = map[string]*[]byte{}
		k.t.vals[k.plugin] = m
	}
	m[key] = v
}

func (k *txKV) Set(key string, value []byte) error {
	lim := k.t.s.opts.KV
	switch {
	case k.plugin == "":
		return errors.New("plugin storage: empty plugin name")
	case key == "":
		return fmt.Errorf("plugin %q storage: empty key", k.plugin)
	case len(key) > lim.MaxKeyBytes:
		return &store.LimitError{Plugin: k.plugin, Limit: "key size", Size: int64(len(key)), Max: int64(lim.MaxKeyBytes)}
	case len(value) > lim.MaxValueBytes:
		return &store.LimitError{Plugin: k.plugin, Limit: "value size", Size: int64(len(value)), Max: int64(lim.MaxValueBytes)}
	}
	usage, err := k.currentUsage()
	if err != nil {
		k.t.fail(err)
		return err
	}
	old, had, err := k.get(key)
	if err != nil {
		k.t.fail(err)
		return err
	}
	if had {
		usage -= int64(len(key) + len(old))
	}
	usage += int64(len(key) + len(value))
	if usage > lim.MaxPluginBytes {
		return &store.LimitError{Plugin: k.plugin, Limit: "plugin total", Size: usage, Max: lim.MaxPluginBytes}
	}
	v := append([]byte{}, value...)
	k.remember(key, &v)
	k.t.usage[k.plugin] = usage
	s := k.t.s
	k.t.b.call("HSET", s.kvKey(k.plugin), key, v)
	k.t.b.call("ZADD", s.kvIndexKey(k.plugin), 0, key)
	k.t.b.call("SET", s.kvUsageKey(k.plugin), usage)
	k.t.b.call("SADD", s.kvPluginsKey(), k.plugin)
	return nil
}

func (k *txKV) Delete(key string) error {
	old, had, err := k.get(key)
	if err != nil {
		k.t.fail(err)
		return err
	}
	if !had {
		return nil
	}
	usage, err := k.currentUsage()
	if err != nil {
		k.t.fail(err)
		return err
	}
	usage -= int64(len(key) + len(old))
	k.remember(key, nil)
	k.t.usage[k.plugin] = usage
	s := k.t.s
	k.t.b.call("HDEL", s.kvKey(k.plugin), key)
	k.t.b.call("ZREM", s.kvIndexKey(k.plugin), key)
	k.t.b.call("SET", s.kvUsageKey(k.plugin), usage)
	return nil
}

func (s *Store) auditKey() string    { return s.p + "audit" }
func (s *Store) auditSeqKey() string { return s.p + "audit:seq" }
func (s *Store) outboxKey() string   { return s.p + "outbox" }

// auditMember orders equal scores (milliseconds) by exact time, then by
// append order: 20 digits of nanoseconds, 16 of sequence (added by the
// script), then the data.
func auditPrefix(at time.Time) string {
	ns := at.UnixNano()
	if ns < 0 {
		ns = 0
	}
	return fmt.Sprintf("%020d", ns)
}

func auditScore(at time.Time) int64 {
	ms := at.UnixMilli()
	if ms < 0 {
		return 0
	}
	return ms
}

func (t *txn) AppendAudit(at time.Time, data []byte) error {
	if at.IsZero() {
		at = t.s.opts.Now()
	}
	s := t.s
	t.b.op(modeZAddWithSeq, 2, s.auditKey(), "ZADD", auditScore(at), t.b.key(s.auditSeqKey()), auditPrefix(at), append([]byte{}, data...))
	return nil
}

func (t *txn) PutAction(id string, data []byte) error {
	if id == "" {
		return fmt.Errorf("outbox: empty action id")
	}
	created := t.s.opts.Now()
	if err := t.watch(t.s.outboxKey()); err != nil {
		t.fail(err)
		return err
	}
	old, err := t.tx.HGet(t.ctx, t.s.outboxKey(), id).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		t.fail(err)
		return err
	case len(old) >= 8:
		created = time.Unix(0, int64(binary.BigEndian.Uint64(old)))
	}
	t.b.call("HSET", t.s.outboxKey(), id, encodeAction(created, data))
	return nil
}

func encodeAction(created time.Time, data []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(created.UnixNano())), data...)
}

func (t *txn) DeleteAction(id string) error {
	t.b.call("HDEL", t.s.outboxKey(), id)
	return nil
}

// errTxnRead wraps a read that failed inside a transaction.
func (t *txn) check() error {
	if t.err != nil {
		return fmt.Errorf("read in transaction: %w", t.err)
	}
	return nil
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
