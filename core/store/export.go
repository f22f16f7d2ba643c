package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/gotd/td/telegram/updates"
	bolt "go.etcd.io/bbolt"
)

// exportChunk bounds the entries and dedup keys handed over per call.
const exportChunk = 1000

// Export writes the whole store into to (see Importer), reading one
// consistent snapshot. Run it with the runner stopped: entries appended
// meanwhile are not copied.
func (s *Store) Export(ctx context.Context, to Importer) error {
	tx, err := s.db.Begin(false)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	if v := tx.Bucket(bucketSession).Get(keySession); v != nil {
		payload, err := unseal(v)
		if err != nil {
			return s.corrupt("session", err)
		}
		if err := to.ImportSession(ctx, bytes.Clone(payload)); err != nil {
			return fmt.Errorf("export session: %w", err)
		}
	}
	err = tx.Bucket(bucketState).ForEach(func(k, v []byte) error {
		st, err := decodeState(v)
		if err != nil {
			return s.corrupt(fmt.Sprintf("updates_state/%d", int64(beU64(k))), err)
		}
		return to.ImportState(ctx, int64(beU64(k)), st)
	})
	if err != nil {
		return fmt.Errorf("export updates state: %w", err)
	}
	err = tx.Bucket(bucketChannelPts).ForEach(func(k, v []byte) error {
		if len(k) != 16 || len(v) != 8 {
			return s.corrupt("channel_pts", fmt.Errorf("bad record"))
		}
		return to.ImportChannelPts(ctx, int64(beU64(k)), int64(beU64(k[8:])), int(int64(beU64(v))))
	})
	if err != nil {
		return fmt.Errorf("export channel pts: %w", err)
	}
	for _, ah := range []struct {
		bucket []byte
		kind   PeerKind
	}{{bucketAccessChannel, PeerChannel}, {bucketAccessUser, PeerUser}} {
		err = tx.Bucket(ah.bucket).ForEach(func(k, v []byte) error {
			if len(k) != 16 || len(v) != 8 {
				return s.corrupt(string(ah.bucket), fmt.Errorf("bad record"))
			}
			return to.ImportAccessHash(ctx, ah.kind, int64(beU64(k)), int64(beU64(k[8:])), int64(beU64(v)))
		})
		if err != nil {
			return fmt.Errorf("export %s: %w", ah.bucket, err)
		}
	}
	err = tx.Bucket(bucketPeers).ForEach(func(k, v []byte) error {
		p, err := decodePeer(v)
		if err != nil {
			return s.corrupt("peers", err)
		}
		return to.ImportPeer(ctx, p)
	})
	if err != nil {
		return fmt.Errorf("export peers: %w", err)
	}
	err = tx.Bucket(bucketKV).ForEachBucket(func(plugin []byte) error {
		return tx.Bucket(bucketKV).Bucket(plugin).ForEach(func(k, v []byte) error {
			return to.ImportKV(ctx, string(plugin), string(k), bytes.Clone(v))
		})
	})
	if err != nil {
		return fmt.Errorf("export plugin storage: %w", err)
	}
	err = tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
		return to.ImportAudit(ctx, AuditRecord{Time: time.Unix(0, int64(beU64(k))), Data: bytes.Clone(v)})
	})
	if err != nil {
		return fmt.Errorf("export audit: %w", err)
	}
	err = tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		if len(v) < 8 {
			return s.corrupt("outbox/"+string(k), fmt.Errorf("record of %d bytes", len(v)))
		}
		return to.ImportAction(ctx, QueuedAction{ID: string(k), Created: time.Unix(0, int64(beU64(v))), Data: bytes.Clone(v[8:])})
	})
	if err != nil {
		return fmt.Errorf("export outbox: %w", err)
	}
	return s.exportJournal(ctx, tx, to)
}

func (s *Store) exportJournal(ctx context.Context, tx *bolt.Tx, to Importer) error {
	var last uint64
	if v := tx.Bucket(bucketJournalMeta).Get(keyLastSeq); v != nil {
		last = beU64(v)
	}
	if err := to.ImportJournalLastSeq(ctx, last); err != nil {
		return fmt.Errorf("export journal: %w", err)
	}
	var chunk []Entry
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := to.ImportJournalEntries(ctx, chunk)
		chunk = chunk[:0]
		return err
	}
	err := tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error {
		e, err := decodeEntry(beU64(k), v)
		if err != nil {
			return s.corrupt(fmt.Sprintf("journal/%d", beU64(k)), err)
		}
		chunk = append(chunk, e)
		if len(chunk) >= exportChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("export journal entries: %w", err)
	}
	var keys []DedupRecord
	err = tx.Bucket(bucketDedupOrder).ForEach(func(k, v []byte) error {
		if len(v) < 8 {
			return s.corrupt("journal_dedup_order", fmt.Errorf("bad record"))
		}
		key := string(v[8:])
		// Only keys that still point at this seq are live.
		if cur := tx.Bucket(bucketDedup).Get([]byte(key)); len(cur) < 8 || beU64(cur) != beU64(k) {
			return nil
		}
		keys = append(keys, DedupRecord{Key: key, Seq: beU64(k), At: time.Unix(0, int64(beU64(v)))})
		if len(keys) >= exportChunk {
			err := to.ImportDedup(ctx, keys)
			keys = keys[:0]
			return err
		}
		return nil
	})
	if err == nil && len(keys) > 0 {
		err = to.ImportDedup(ctx, keys)
	}
	if err != nil {
		return fmt.Errorf("export journal dedup index: %w", err)
	}
	all := tx.Bucket(bucketConsumers)
	return all.ForEachBucket(func(name []byte) error {
		cb := all.Bucket(name)
		pos := ConsumerPosition{Low: beU64(cb.Get(keyLow))}
		_ = cb.Bucket(keyAbove).ForEach(func(k, _ []byte) error {
			pos.Above = append(pos.Above, beU64(k))
			return nil
		})
		if err := to.ImportConsumer(ctx, string(name), pos); err != nil {
			return fmt.Errorf("export journal consumer %q: %w", name, err)
		}
		return nil
	})
}

// Empty reports whether the store holds no session, state, peers, plugin
// data, audit, outbox or journal.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{
			bucketSession, bucketState, bucketChannelPts, bucketAccessChannel, bucketAccessUser,
			bucketPeers, bucketJournal, bucketConsumers, bucketKV, bucketAudit, bucketOutbox,
		} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				empty = false
				return nil
			}
		}
		if v := tx.Bucket(bucketJournalMeta).Get(keyLastSeq); v != nil && beU64(v) > 0 {
			empty = false
		}
		return nil
	})
	return empty, err
}

func (s *Store) importUpdate(what string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("import %s: %w", what, err)
	}
	return nil
}

// ImportSession implements Importer.
func (s *Store) ImportSession(ctx context.Context, data []byte) error {
	return s.Session().StoreSession(ctx, data)
}

// ImportState implements Importer.
func (s *Store) ImportState(ctx context.Context, userID int64, st updates.State) error {
	return s.importUpdate("updates state", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Put(i64key(userID), encodeState(st))
	})
}

// ImportChannelPts implements Importer.
func (s *Store) ImportChannelPts(ctx context.Context, userID, channelID int64, pts int) error {
	return s.importUpdate("channel pts", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketChannelPts).Put(pairKey(userID, channelID), u64(uint64(int64(pts))))
	})
}

// ImportAccessHash implements Importer.
func (s *Store) ImportAccessHash(ctx context.Context, kind PeerKind, userID, targetID, hash int64) error {
	bucket := bucketAccessUser
	switch kind {
	case PeerUser:
	case PeerChannel:
		bucket = bucketAccessChannel
	default:
		return fmt.Errorf("import access hash: kind %v has none", kind)
	}
	return s.importUpdate("access hash", func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put(pairKey(userID, targetID), u64(uint64(hash)))
	})
}

// ImportPeer implements Importer.
func (s *Store) ImportPeer(ctx context.Context, p Peer) error {
	if !p.Ref.Valid() {
		return fmt.Errorf("import peer %v: invalid reference", p.Ref)
	}
	return s.importUpdate("peer", func(tx *bolt.Tx) error { return putPeer(tx, p, p.UpdatedAt) })
}

// ImportKV implements Importer.
func (s *Store) ImportKV(ctx context.Context, plugin, key string, value []byte) error {
	return s.PluginKV(plugin).Set(ctx, key, value)
}

// ImportAudit implements Importer.
func (s *Store) ImportAudit(ctx context.Context, r AuditRecord) error {
	return s.Audit().Append(ctx, r.Time, r.Data)
}

// ImportAction implements Importer.
func (s *Store) ImportAction(ctx context.Context, a QueuedAction) error {
	if a.ID == "" {
		return fmt.Errorf("import outbox: empty action id")
	}
	return s.importUpdate("outbox", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).Put([]byte(a.ID), append(u64(uint64(a.Created.UnixNano())), a.Data...))
	})
}

// ImportJournalLastSeq implements Importer.
func (s *Store) ImportJournalLastSeq(ctx context.Context, lastSeq uint64) error {
	err := s.importUpdate("journal", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournalMeta).Put(keyLastSeq, u64(lastSeq))
	})
	if err == nil {
		s.journal.mu.Lock()
		s.journal.last = lastSeq
		s.journal.mu.Unlock()
	}
	return err
}

// ImportJournalEntries implements Importer.
func (s *Store) ImportJournalEntries(ctx context.Context, entries []Entry) error {
	return s.importUpdate("journal entries", func(tx *bolt.Tx) error {
		for _, e := range entries {
			if e.Seq == 0 {
				return fmt.Errorf("entry without seq")
			}
			if err := tx.Bucket(bucketJournal).Put(u64(e.Seq), encodeEntry(e)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ImportDedup implements Importer.
func (s *Store) ImportDedup(ctx context.Context, keys []DedupRecord) error {
	return s.importUpdate("journal dedup index", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketJournalMeta)
		var count uint64
		if v := meta.Get(keyDedupCount); v != nil {
			count = beU64(v)
		}
		for _, k := range keys {
			if k.Key == "" || k.Seq == 0 {
				return fmt.Errorf("dedup record %q without key or seq", k.Key)
			}
			var v encoder
			v.u64(k.Seq)
			if err := tx.Bucket(bucketDedup).Put([]byte(k.Key), v.b); err != nil {
				return err
			}
			var o encoder
			o.u64(uint64(k.At.UnixNano()))
			o.b = append(o.b, k.Key...)
			if err := tx.Bucket(bucketDedupOrder).Put(u64(k.Seq), o.b); err != nil {
				return err
			}
			count++
		}
		return meta.Put(keyDedupCount, u64(count))
	})
}

// ImportConsumer implements Importer.
func (s *Store) ImportConsumer(ctx context.Context, name string, pos ConsumerPosition) error {
	if name == "" {
		return fmt.Errorf("import journal consumer: empty name")
	}
	return s.importUpdate("journal consumer "+name, func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketConsumers)
		if all.Bucket([]byte(name)) != nil {
			if err := all.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		cb, err := all.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		above, err := cb.CreateBucket(keyAbove)
		if err != nil {
			return err
		}
		for _, seq := range pos.Above {
			if err := above.Put(u64(seq), ackMark); err != nil {
				return err
			}
		}
		if err := cb.Put(keyRegistered, u64(uint64(s.opts.Now().UnixNano()))); err != nil {
			return err
		}
		return cb.Put(keyLow, u64(pos.Low))
	})
}
