package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/gotd/td/session"
	bolt "go.etcd.io/bbolt"
)

var keySession = []byte("data")

// SessionStorage keeps the MTProto session (auth key included) and implements
// gotd's session.Storage. Each write is one fsync'd transaction, so a crash
// leaves either the old or the new session, never a torn one.
type SessionStorage struct{ s *Store }

var _ session.Storage = (*SessionStorage)(nil)

// Session returns the session storage.
func (s *Store) Session() *SessionStorage { return &SessionStorage{s: s} }

// LoadSession returns the stored session or session.ErrNotFound.
func (ss *SessionStorage) LoadSession(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var data []byte
	err := ss.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSession).Get(keySession)
		if v == nil {
			return session.ErrNotFound
		}
		payload, err := unseal(v)
		if err != nil {
			return ss.s.corrupt("session", err)
		}
		data = append([]byte{}, payload...)
		return nil
	})
	if err != nil {
		if errors.Is(err, session.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("load session: %w", err)
	}
	return data, nil
}

// StoreSession replaces the stored session atomically.
func (ss *SessionStorage) StoreSession(ctx context.Context, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := ss.s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSession).Put(keySession, sealed(data))
	})
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

// DeleteSession wipes the session (logout). Deleting a missing session is not an error.
func (ss *SessionStorage) DeleteSession(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := ss.s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSession).Delete(keySession)
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (s *Store) corrupt(where string, err error) error {
	return &CorruptError{Path: s.dbPath(), Where: where, Err: err}
}
