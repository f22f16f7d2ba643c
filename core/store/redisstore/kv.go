package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/store"
)

// PluginKV is one plugin's key-value storage: a hash of values, a sorted
// set of keys for ordered prefix listing, and a usage counter.
type PluginKV struct {
	s      *Store
	plugin string
}

// PluginKV implements store.Backend.
func (s *Store) PluginKV(plugin string) store.KV { return &PluginKV{s: s, plugin: plugin} }

// Get returns the value of key or store.ErrNotFound.
func (p *PluginKV) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := p.s.rdb.HGet(ctx, p.s.kvKey(p.plugin), key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("plugin %q storage key %q: %w", p.plugin, key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin %q storage key %q: %w", p.plugin, key, err)
	}
	return v, nil
}

// Set stores value under key.
func (p *PluginKV) Set(ctx context.Context, key string, value []byte) error {
	return p.s.Update(ctx, func(tx store.Txn) error { return tx.KV(p.plugin).Set(key, value) })
}

// Delete removes key; a missing key is not an error.
func (p *PluginKV) Delete(ctx context.Context, key string) error {
	return p.s.Update(ctx, func(tx store.Txn) error { return tx.KV(p.plugin).Delete(key) })
}

// List returns pairs whose key starts with prefix, in key order; limit <= 0 means all.
func (p *PluginKV) List(ctx context.Context, prefix string, limit int) ([]store.KVPair, error) {
	min, max := "-", "+"
	if prefix != "" {
		min, max = "["+prefix, "["+prefix+"\xff\xff\xff\xff"
	}
	var out []store.KVPair
	cursor := min
	for {
		page := int64(500)
		if limit > 0 && int64(limit-len(out)) < page {
			page = int64(limit - len(out))
		}
		keys, err := p.s.rdb.ZRangeByLex(ctx, p.s.kvIndexKey(p.plugin), &redis.ZRangeBy{Min: cursor, Max: max, Count: page}).Result()
		if err != nil {
			return nil, fmt.Errorf("plugin %q storage list: %w", p.plugin, err)
		}
		if len(keys) == 0 {
			return out, nil
		}
		vals, err := p.s.rdb.HMGet(ctx, p.s.kvKey(p.plugin), keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("plugin %q storage list: %w", p.plugin, err)
		}
		for i, k := range keys {
			// \xff\xff\xff\xff bounds the range; check the prefix exactly.
			if len(k) < len(prefix) || k[:len(prefix)] != prefix {
				return out, nil
			}
			v, ok := vals[i].(string)
			if !ok {
				continue // deleted between the two reads
			}
			out = append(out, store.KVPair{Key: k, Value: []byte(v)})
		}
		if (limit > 0 && len(out) >= limit) || int64(len(keys)) < page {
			return out, nil
		}
		cursor = "(" + keys[len(keys)-1]
	}
}

// Usage is the bytes (keys plus values) the plugin stores.
func (p *PluginKV) Usage(ctx context.Context) (int64, error) {
	n, err := p.s.rdb.Get(ctx, p.s.kvUsageKey(p.plugin)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// AuditLog is the audit log: a sorted set scored by milliseconds whose
// members start with the exact time, so equal times keep append order.
type AuditLog struct{ s *Store }

// Audit implements store.Backend.
func (s *Store) Audit() store.AuditStore { return &AuditLog{s: s} }

// Append records data at time at (now when zero).
func (a *AuditLog) Append(ctx context.Context, at time.Time, data []byte) error {
	return a.s.Update(ctx, func(tx store.Txn) error { return tx.AppendAudit(at, data) })
}

const auditHead = 20 + 16 // nanoseconds, sequence

func decodeAudit(m string) (store.AuditRecord, error) {
	if len(m) < auditHead {
		return store.AuditRecord{}, fmt.Errorf("audit record of %d bytes", len(m))
	}
	ns, err := strconv.ParseInt(m[:20], 10, 64)
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("audit record time: %w", err)
	}
	return store.AuditRecord{Time: time.Unix(0, ns), Data: []byte(m[auditHead:])}, nil
}

// Range returns entries with from <= Time < to, oldest first; limit <= 0 means all.
func (a *AuditLog) Range(ctx context.Context, from, to time.Time, limit int) ([]store.AuditRecord, error) {
	var out []store.AuditRecord
	minScore := strconv.FormatInt(auditScore(from), 10)
	maxScore := strconv.FormatInt(auditScore(to), 10) // inclusive: filter exactly below
	var offset int64
	for {
		ms, err := a.s.rdb.ZRangeByScore(ctx, a.s.auditKey(), &redis.ZRangeBy{Min: minScore, Max: maxScore, Offset: offset, Count: 1000}).Result()
		if err != nil {
			return nil, fmt.Errorf("audit range: %w", err)
		}
		for _, m := range ms {
			r, err := decodeAudit(m)
			if err != nil {
				return nil, fmt.Errorf("audit range: %w", err)
			}
			if r.Time.Before(from) {
				continue
			}
			if !r.Time.Before(to) {
				return out, nil
			}
			out = append(out, r)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		if len(ms) < 1000 {
			return out, nil
		}
		offset += int64(len(ms))
	}
}

// Prune deletes entries older than before and returns how many it deleted.
func (a *AuditLog) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		// Whole milliseconds first, then the exact boundary millisecond.
		ms, err := a.s.rdb.ZRangeByScore(ctx, a.s.auditKey(), &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(auditScore(before), 10), Count: 1000,
		}).Result()
		if err != nil {
			return total, fmt.Errorf("audit prune: %w", err)
		}
		var victims []any
		for _, m := range ms {
			r, err := decodeAudit(m)
			if err != nil || r.Time.Before(before) {
				victims = append(victims, m)
			}
		}
		if len(victims) > 0 {
			b := a.s.newBatch()
			b.call("ZREM", a.s.auditKey(), victims...)
			if err := a.s.commit(ctx, b); err != nil {
				return total, fmt.Errorf("audit prune: %w", err)
			}
			total += len(victims)
		}
		if len(victims) < 1000 {
			return total, nil
		}
	}
}

// Outbox is the outgoing action queue: a hash of id to creation time and data.
type Outbox struct{ s *Store }

// Outbox implements store.Backend.
func (s *Store) Outbox() store.ActionQueue { return &Outbox{s: s} }

// Put stores (or replaces, keeping its creation time) the action with this id.
func (o *Outbox) Put(ctx context.Context, id string, data []byte) error {
	return o.s.Update(ctx, func(tx store.Txn) error { return tx.PutAction(id, data) })
}

// Delete removes an action; a missing id is not an error.
func (o *Outbox) Delete(ctx context.Context, id string) error {
	return o.s.Update(ctx, func(tx store.Txn) error { return tx.DeleteAction(id) })
}

func decodeAction(id string, v []byte) (store.QueuedAction, error) {
	if len(v) < 8 {
		return store.QueuedAction{}, fmt.Errorf("outbox action %q: record of %d bytes", id, len(v))
	}
	return store.QueuedAction{ID: id, Created: time.Unix(0, int64(binary.BigEndian.Uint64(v))), Data: append([]byte{}, v[8:]...)}, nil
}

// Get returns the action or an error wrapping store.ErrNotFound.
func (o *Outbox) Get(ctx context.Context, id string) (store.QueuedAction, error) {
	v, err := o.s.rdb.HGet(ctx, o.s.outboxKey(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.QueuedAction{}, fmt.Errorf("outbox action %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.QueuedAction{}, fmt.Errorf("outbox action %q: %w", id, err)
	}
	return decodeAction(id, v)
}

// List returns all queued actions, oldest first.
func (o *Outbox) List(ctx context.Context) ([]store.QueuedAction, error) {
	all, err := o.s.rdb.HGetAll(ctx, o.s.outboxKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("outbox list: %w", err)
	}
	out := make([]store.QueuedAction, 0, len(all))
	for id, v := range all {
		a, err := decodeAction(id, []byte(v))
		if err != nil {
			return nil, fmt.Errorf("outbox list: %w", err)
		}
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(a, b store.QueuedAction) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out, nil
}
