package store

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditRecord is one audit log entry; Data is opaque to the store.
type AuditRecord struct {
	Time time.Time
	Data []byte
}

// AuditLog is an append-only log ordered by time.
type AuditLog struct{ s *Store }

// Audit returns the audit log.
func (s *Store) Audit() *AuditLog { return &AuditLog{s: s} }

// Append records data at time at (now when zero).
func (a *AuditLog) Append(ctx context.Context, at time.Time, data []byte) error {
	return a.s.Update(ctx, func(tx *Tx) error { return tx.AppendAudit(at, data) })
}

// AppendAudit records an audit entry within the transaction.
func (t *Tx) AppendAudit(at time.Time, data []byte) error {
	if at.IsZero() {
		at = t.s.opts.Now()
	}
	b := t.tx.Bucket(bucketAudit)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	// Time first for range scans; the sequence keeps equal times distinct and ordered.
	key := append(u64(timeKey(at)), u64(n)...)
	return b.Put(key, bytes.Clone(data))
}

// Range returns entries with from <= Time < to, oldest first; limit <= 0 means all.
func (a *AuditLog) Range(ctx context.Context, from, to time.Time, limit int) ([]AuditRecord, error) {
	var out []AuditRecord
	err := a.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		end := timeKey(to)
		for k, v := c.Seek(u64(timeKey(from))); k != nil && beU64(k) < end; k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			out = append(out, AuditRecord{Time: time.Unix(0, int64(beU64(k))), Data: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit range: %w", err)
	}
	return out, nil
}

// Prune deletes entries older than before and returns how many it deleted.
func (a *AuditLog) Prune(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := a.s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var victims [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && beU64(k) < timeKey(before); k, _ = c.Next() {
			victims = append(victims, k)
		}
		for _, k := range victims {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(victims)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("audit prune: %w", err)
	}
	return n, nil
}

// QueuedAction is an outgoing action waiting to be executed.
type QueuedAction struct {
	ID      string
	Data    []byte
	Created time.Time
}

// Outbox is the durable queue of outgoing actions, so a message the user
// asked to send survives a restart until it is sent or fails.
type Outbox struct{ s *Store }

// Outbox returns the outgoing action queue.
func (s *Store) Outbox() *Outbox { return &Outbox{s: s} }

// Put stores (or replaces) the action with this id.
func (o *Outbox) Put(ctx context.Context, id string, data []byte) error {
	return o.s.Update(ctx, func(tx *Tx) error { return tx.PutAction(id, data) })
}

// PutAction queues an action within the transaction; with Consumer.AckTx an
// event's resulting actions are queued exactly once.
func (t *Tx) PutAction(id string, data []byte) error {
	if id == "" {
		return fmt.Errorf("outbox: empty action id")
	}
	b := t.tx.Bucket(bucketOutbox)
	created := t.s.opts.Now()
	if old := b.Get([]byte(id)); len(old) >= 8 {
		created = time.Unix(0, int64(beU64(old)))
	}
	return b.Put([]byte(id), append(u64(uint64(created.UnixNano())), data...))
}

// DeleteAction removes an action within the transaction.
func (t *Tx) DeleteAction(id string) error { return t.tx.Bucket(bucketOutbox).Delete([]byte(id)) }

// Get returns the action or an error wrapping ErrNotFound.
func (o *Outbox) Get(ctx context.Context, id string) (QueuedAction, error) {
	var a QueuedAction
	err := o.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutbox).Get([]byte(id))
		if len(v) < 8 {
			return fmt.Errorf("outbox action %q: %w", id, ErrNotFound)
		}
		a = QueuedAction{ID: id, Created: time.Unix(0, int64(beU64(v))), Data: bytes.Clone(v[8:])}
		return nil
	})
	return a, err
}

// List returns all queued actions, oldest first.
func (o *Outbox) List(ctx context.Context) ([]QueuedAction, error) {
	var out []QueuedAction
	err := o.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			if len(v) < 8 {
				return o.s.corrupt("outbox/"+string(k), fmt.Errorf("record of %d bytes", len(v)))
			}
			out = append(out, QueuedAction{ID: string(k), Created: time.Unix(0, int64(beU64(v))), Data: bytes.Clone(v[8:])})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outbox list: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Delete removes an action; a missing id is not an error.
func (o *Outbox) Delete(ctx context.Context, id string) error {
	return o.s.Update(ctx, func(tx *Tx) error { return tx.DeleteAction(id) })
}

// timeKey orders times as big-endian keys; times before 1970 clamp to 0.
func timeKey(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}
