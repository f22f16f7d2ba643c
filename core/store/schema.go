package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket names. Changing any of them needs a migration.
var (
	bucketMeta          = []byte("meta")
	bucketSession       = []byte("session")
	bucketState         = []byte("updates_state")
	bucketChannelPts    = []byte("channel_pts")
	bucketAccessChannel = []byte("access_channel")
	bucketAccessUser    = []byte("access_user")
	bucketPeers         = []byte("peers")
	bucketPeersByName   = []byte("peers_by_username")
	bucketPeersByPhone  = []byte("peers_by_phone")
	bucketJournal       = []byte("journal")
	bucketJournalMeta   = []byte("journal_meta")
	bucketDedup         = []byte("journal_dedup")
	bucketDedupOrder    = []byte("journal_dedup_order")
	bucketConsumers     = []byte("journal_consumers")
	bucketKV            = []byte("plugin_kv")
	bucketKVUsage       = []byte("plugin_kv_usage")
	bucketAudit         = []byte("audit")
	bucketOutbox        = []byte("outbox")

	keySchemaVersion = []byte("schema_version")
)

// SchemaVersion is the schema this build writes.
const SchemaVersion = 2

// migration moves the database from Version-1 to Version. Each runs in its
// own transaction together with the version bump, so a crash mid-migration
// leaves the old version intact.
type migration struct {
	Version int
	Name    string
	Apply   func(tx *bolt.Tx) error
}

var schemaMigrations = []migration{
	{Version: 1, Name: "initial buckets", Apply: func(tx *bolt.Tx) error {
		for _, b := range [][]byte{
			bucketSession, bucketState, bucketChannelPts, bucketAccessChannel, bucketAccessUser,
			bucketPeers, bucketPeersByName, bucketPeersByPhone,
			bucketJournal, bucketJournalMeta, bucketDedup, bucketDedupOrder, bucketConsumers,
			bucketKV, bucketKVUsage, bucketAudit, bucketOutbox,
		} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	}},
	{Version: 2, Name: "checksummed peer records", Apply: func(tx *bolt.Tx) error {
		// Schema 1 stored peers as bare JSON; a damaged record could not be
		// told from a valid one.
		b := tx.Bucket(bucketPeers)
		var keys, vals [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if json.Valid(v) {
				keys = append(keys, append([]byte(nil), k...))
				vals = append(vals, sealed(v))
			}
			return nil
		}); err != nil {
			return err
		}
		for i, k := range keys {
			if err := b.Put(k, vals[i]); err != nil {
				return fmt.Errorf("rewrite peer %x: %w", k, err)
			}
		}
		return nil
	}},
}

func migrate(ctx context.Context, db *bolt.DB, path string, migrations []migration) error {
	latest := 0
	for i, m := range migrations {
		if m.Version != i+1 {
			return fmt.Errorf("storage migrations: step %d has version %d", i, m.Version)
		}
		latest = m.Version
	}
	current, err := readSchemaVersion(db, path)
	if err != nil {
		return err
	}
	if current > latest {
		return &SchemaError{Path: path, Found: current, Supported: latest}
	}
	for _, m := range migrations[current:] {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("migrate storage %s: %w", path, err)
		}
		err := db.Update(func(tx *bolt.Tx) error {
			if err := m.Apply(tx); err != nil {
				return err
			}
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			return meta.Put(keySchemaVersion, u64(uint64(m.Version)))
		})
		if err != nil {
			return fmt.Errorf("migrate storage %s to schema %d (%s): %w", path, m.Version, m.Name, err)
		}
	}
	return nil
}

func readSchemaVersion(db *bolt.DB, path string) (int, error) {
	version := 0
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A database with buckets but no meta was not written by us.
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return &CorruptError{Path: path, Where: "meta", Err: fmt.Errorf("no schema version but the database is not empty")}
			}
			return nil
		}
		v := meta.Get(keySchemaVersion)
		if len(v) != 8 {
			return &CorruptError{Path: path, Where: "meta/schema_version", Err: fmt.Errorf("bad length %d", len(v))}
		}
		version = int(binary.BigEndian.Uint64(v))
		return nil
	})
	return version, err
}
