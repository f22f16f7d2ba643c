package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Tx is a read-write transaction over the store's generic buckets. A
// consumer passes its effects to Consumer.AckTx through it so they commit
// together with the ack.
type Tx struct {
	s  *Store
	tx *bolt.Tx
}

// Update runs fn in one read-write transaction.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{s: s, tx: btx}) }); err != nil {
		return fmt.Errorf("storage update: %w", err)
	}
	return nil
}
