package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram/updates"
	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/store"
)

var (
	_ store.Exporter = (*Store)(nil)
	_ store.Importer = (*Store)(nil)
)

// MigrateStats counts what Migrate copied.
type MigrateStats struct {
	Session        bool
	States         int
	ChannelPts     int
	AccessHashes   int
	Peers          int
	KV             int
	Audit          int
	Actions        int
	JournalEntries int
	LastSeq        uint64
	DedupKeys      int
	Consumers      int
}

func (m MigrateStats) String() string {
	return fmt.Sprintf("session %t, %d updates states, %d channel pts, %d access hashes, %d peers, %d plugin keys, %d audit records, %d queued actions, %d journal entries (last seq %d), %d dedup keys, %d consumers",
		m.Session, m.States, m.ChannelPts, m.AccessHashes, m.Peers, m.KV, m.Audit, m.Actions, m.JournalEntries, m.LastSeq, m.DedupKeys, m.Consumers)
}

// ErrNotEmpty is returned by Migrate when the target already holds data.
var ErrNotEmpty = errors.New("migration target is not empty")

// Migrate copies everything from one backend into another, empty one
// (bbolt to Redis or back): session, updates state, access hashes, peers,
// plugin data, audit, outbox, and the journal with its seqs, dedup index
// and consumer positions, so consumers resume exactly where they were. Run
// it with the account's runners stopped; a Redis target must be opened with
// the account's lease.
func Migrate(ctx context.Context, from store.Exporter, to store.Importer) (MigrateStats, error) {
	empty, err := to.Empty(ctx)
	if err != nil {
		return MigrateStats{}, fmt.Errorf("migrate: check target: %w", err)
	}
	if !empty {
		return MigrateStats{}, fmt.Errorf("migrate: %w", ErrNotEmpty)
	}
	c := &counting{Importer: to}
	if err := from.Export(ctx, c); err != nil {
		return c.stats, fmt.Errorf("migrate: %w", err)
	}
	return c.stats, nil
}

type counting struct {
	store.Importer
	stats MigrateStats
}

func (c *counting) ImportSession(ctx context.Context, data []byte) error {
	c.stats.Session = true
	return c.Importer.ImportSession(ctx, data)
}
func (c *counting) ImportState(ctx context.Context, userID int64, st updates.State) error {
	c.stats.States++
	return c.Importer.ImportState(ctx, userID, st)
}
func (c *counting) ImportChannelPts(ctx context.Context, userID, channelID int64, pts int) error {
	c.stats.ChannelPts++
	return c.Importer.ImportChannelPts(ctx, userID, channelID, pts)
}
func (c *counting) ImportAccessHash(ctx context.Context, kind store.PeerKind, userID, targetID, hash int64) error {
	c.stats.AccessHashes++
	return c.Importer.ImportAccessHash(ctx, kind, userID, targetID, hash)
}
func (c *counting) ImportPeer(ctx context.Context, p store.Peer) error {
	c.stats.Peers++
	return c.Importer.ImportPeer(ctx, p)
}
func (c *counting) ImportKV(ctx context.Context, plugin, key string, value []byte) error {
	c.stats.KV++
	return c.Importer.ImportKV(ctx, plugin, key, value)
}
func (c *counting) ImportAudit(ctx context.Context, r store.AuditRecord) error {
	c.stats.Audit++
	return c.Importer.ImportAudit(ctx, r)
}
func (c *counting) ImportAction(ctx context.Context, a store.QueuedAction) error {
	c.stats.Actions++
	return c.Importer.ImportAction(ctx, a)
}
func (c *counting) ImportJournalLastSeq(ctx context.Context, last uint64) error {
	c.stats.LastSeq = last
	return c.Importer.ImportJournalLastSeq(ctx, last)
}
func (c *counting) ImportJournalEntries(ctx context.Context, entries []store.Entry) error {
	c.stats.JournalEntries += len(entries)
	return c.Importer.ImportJournalEntries(ctx, entries)
}
func (c *counting) ImportDedup(ctx context.Context, keys []store.DedupRecord) error {
	c.stats.DedupKeys += len(keys)
	return c.Importer.ImportDedup(ctx, keys)
}
func (c *counting) ImportConsumer(ctx context.Context, name string, pos store.ConsumerPosition) error {
	c.stats.Consumers++
	return c.Importer.ImportConsumer(ctx, name, pos)
}

// Export implements store.Exporter. Run it with the account's runner
// stopped (hold the lease): it reads without a snapshot.
func (s *Store) Export(ctx context.Context, to store.Importer) error {
	// This store's own pending state first, so the users set lists it.
	if err := s.flushState(ctx); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	sess, err := s.Session().LoadSession(ctx)
	switch {
	case errors.Is(err, session.ErrNotFound):
	case err != nil:
		return fmt.Errorf("export: %w", err)
	default:
		if err := to.ImportSession(ctx, sess); err != nil {
			return fmt.Errorf("export session: %w", err)
		}
	}
	users, err := s.rdb.SMembers(ctx, s.usersKey()).Result()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, u := range users {
		uid, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return fmt.Errorf("export: bad user id %q", u)
		}
		if st, found, err := s.UpdateState().GetState(ctx, uid); err != nil {
			return fmt.Errorf("export: %w", err)
		} else if found {
			if err := to.ImportState(ctx, uid, st); err != nil {
				return fmt.Errorf("export updates state: %w", err)
			}
		}
		err = s.UpdateState().ForEachChannels(ctx, uid, func(ctx context.Context, channelID int64, pts int) error {
			return to.ImportChannelPts(ctx, uid, channelID, pts)
		})
		if err != nil {
			return fmt.Errorf("export channel pts: %w", err)
		}
		for _, ah := range []struct {
			key  string
			kind store.PeerKind
		}{{s.ahChannelKey(uid), store.PeerChannel}, {s.ahUserKey(uid), store.PeerUser}} {
			all, err := s.rdb.HGetAll(ctx, ah.key).Result()
			if err != nil {
				return fmt.Errorf("export access hashes: %w", err)
			}
			for k, v := range all {
				target, err1 := strconv.ParseInt(k, 10, 64)
				hash, err2 := strconv.ParseInt(v, 10, 64)
				if err1 != nil || err2 != nil {
					return fmt.Errorf("export access hashes: bad record %q=%q", k, v)
				}
				if err := to.ImportAccessHash(ctx, ah.kind, uid, target, hash); err != nil {
					return fmt.Errorf("export access hashes: %w", err)
				}
			}
		}
	}
	peers, err := s.rdb.HKeys(ctx, s.peersKey()).Result()
	if err != nil {
		return fmt.Errorf("export peers: %w", err)
	}
	for _, ref := range peers {
		r, err := store.ParsePeerRef(ref)
		if err != nil {
			return fmt.Errorf("export peers: %w", err)
		}
		p, err := s.Peers().Get(ctx, r)
		if err != nil {
			return fmt.Errorf("export peers: %w", err)
		}
		if err := to.ImportPeer(ctx, p); err != nil {
			return fmt.Errorf("export peers: %w", err)
		}
	}
	plugins, err := s.rdb.SMembers(ctx, s.kvPluginsKey()).Result()
	if err != nil {
		return fmt.Errorf("export plugin storage: %w", err)
	}
	for _, plugin := range plugins {
		pairs, err := s.PluginKV(plugin).List(ctx, "", 0)
		if err != nil {
			return fmt.Errorf("export plugin storage: %w", err)
		}
		for _, kv := range pairs {
			if err := to.ImportKV(ctx, plugin, kv.Key, kv.Value); err != nil {
				return fmt.Errorf("export plugin storage: %w", err)
			}
		}
	}
	audit, err := s.Audit().Range(ctx, time.Unix(0, 0), time.Unix(1<<40, 0), 0)
	if err != nil {
		return fmt.Errorf("export audit: %w", err)
	}
	for _, r := range audit {
		if err := to.ImportAudit(ctx, r); err != nil {
			return fmt.Errorf("export audit: %w", err)
		}
	}
	actions, err := s.Outbox().List(ctx)
	if err != nil {
		return fmt.Errorf("export outbox: %w", err)
	}
	for _, a := range actions {
		if err := to.ImportAction(ctx, a); err != nil {
			return fmt.Errorf("export outbox: %w", err)
		}
	}
	return s.exportJournal(ctx, to)
}

func (s *Store) exportJournal(ctx context.Context, to store.Importer) error {
	j := s.journal
	last, err := s.rdb.Get(ctx, j.seqKey()).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("export journal: %w", err)
	}
	if err := to.ImportJournalLastSeq(ctx, last); err != nil {
		return fmt.Errorf("export journal: %w", err)
	}
	start := "-"
	for {
		ms, err := s.rdb.XRangeN(ctx, j.streamKey(), start, "+", 1000).Result()
		if err != nil {
			return fmt.Errorf("export journal entries: %w", err)
		}
		if len(ms) == 0 {
			break
		}
		entries := make([]store.Entry, 0, len(ms))
		for _, m := range ms {
			e, err := decodeMessage(m)
			if err != nil {
				return fmt.Errorf("export journal entries: %w", err)
			}
			entries = append(entries, e)
		}
		if err := to.ImportJournalEntries(ctx, entries); err != nil {
			return fmt.Errorf("export journal entries: %w", err)
		}
		start = "(" + ms[len(ms)-1].ID
	}
	var offset int64
	for {
		zs, err := s.rdb.ZRangeByScoreWithScores(ctx, j.dedupOrdKey(), &redis.ZRangeBy{Min: "-inf", Max: "+inf", Offset: offset, Count: 1000}).Result()
		if err != nil {
			return fmt.Errorf("export journal dedup index: %w", err)
		}
		if len(zs) == 0 {
			break
		}
		keys := make([]string, len(zs))
		for i, z := range zs {
			keys[i], _ = z.Member.(string)
		}
		seqs, err := s.rdb.HMGet(ctx, j.dedupKey(), keys...).Result()
		if err != nil {
			return fmt.Errorf("export journal dedup index: %w", err)
		}
		recs := make([]store.DedupRecord, 0, len(zs))
		for i, z := range zs {
			str, _ := seqs[i].(string)
			seq, err := strconv.ParseUint(str, 10, 64)
			if err != nil || seq == 0 {
				continue
			}
			recs = append(recs, store.DedupRecord{Key: keys[i], Seq: seq, At: time.UnixMilli(int64(z.Score))})
		}
		if len(recs) > 0 {
			if err := to.ImportDedup(ctx, recs); err != nil {
				return fmt.Errorf("export journal dedup index: %w", err)
			}
		}
		offset += int64(len(zs))
	}
	gs, err := j.groups(ctx)
	if err != nil {
		return fmt.Errorf("export journal consumers: %w", err)
	}
	for _, g := range gs {
		pos, err := (&Consumer{j: j, name: g.name}).Position(ctx)
		if err != nil {
			return fmt.Errorf("export journal consumers: %w", err)
		}
		if err := to.ImportConsumer(ctx, g.name, pos); err != nil {
			return fmt.Errorf("export journal consumer %q: %w", g.name, err)
		}
	}
	return nil
}

// Empty implements store.Importer: true when none of the account's data
// keys exist (the lease keys do not count).
func (s *Store) Empty(ctx context.Context) (bool, error) {
	j := s.journal
	n, err := s.rdb.Exists(ctx, s.sessionKey(), s.usersKey(), s.peersKey(), s.kvPluginsKey(),
		s.auditKey(), s.outboxKey(), j.seqKey(), j.streamKey(), j.dedupKey()).Result()
	if err != nil {
		return false, err
	}
	return n == 0, nil
}

// ImportSession implements store.Importer.
func (s *Store) ImportSession(ctx context.Context, data []byte) error {
	return s.Session().StoreSession(ctx, data)
}

// ImportState implements store.Importer. It writes at once: an import
// has no journal appends to ride with.
func (s *Store) ImportState(ctx context.Context, userID int64, st updates.State) error {
	return s.importState(ctx, "updates state", map[int64]updates.State{userID: st}, nil)
}

// ImportChannelPts implements store.Importer.
func (s *Store) ImportChannelPts(ctx context.Context, userID, channelID int64, pts int) error {
	return s.importState(ctx, "channel pts", nil, map[[2]int64]int{{userID, channelID}: pts})
}

func (s *Store) importState(ctx context.Context, what string, users map[int64]updates.State, channels map[[2]int64]int) error {
	b := s.newBatch()
	for _, op := range s.stateOps(users, channels) {
		b.call(op.cmd, op.key, op.args...)
	}
	if err := s.commit(ctx, b); err != nil {
		return fmt.Errorf("import %s: %w", what, err)
	}
	return nil
}

// ImportAccessHash implements store.Importer.
func (s *Store) ImportAccessHash(ctx context.Context, kind store.PeerKind, userID, targetID, hash int64) error {
	switch kind {
	case store.PeerUser:
		return s.AccessHashes().SetUserAccessHash(ctx, userID, targetID, hash)
	case store.PeerChannel:
		return s.AccessHashes().SetChannelAccessHash(ctx, userID, targetID, hash)
	}
	return fmt.Errorf("import access hash: kind %v has none", kind)
}

// ImportPeer implements store.Importer, keeping UpdatedAt.
func (s *Store) ImportPeer(ctx context.Context, p store.Peer) error {
	if !p.Ref.Valid() {
		return fmt.Errorf("import peer %v: invalid reference", p.Ref)
	}
	ps := &PeerStore{s: s}
	return s.update(ctx, func(tx *redis.Tx, b *batch) error {
		return ps.put(ctx, tx, b, []store.Peer{p}, p.UpdatedAt, true)
	})
}

// ImportKV implements store.Importer.
func (s *Store) ImportKV(ctx context.Context, plugin, key string, value []byte) error {
	return s.PluginKV(plugin).Set(ctx, key, value)
}

// ImportAudit implements store.Importer.
func (s *Store) ImportAudit(ctx context.Context, r store.AuditRecord) error {
	return s.Audit().Append(ctx, r.Time, r.Data)
}

// ImportAction implements store.Importer, keeping Created.
func (s *Store) ImportAction(ctx context.Context, a store.QueuedAction) error {
	if a.ID == "" {
		return fmt.Errorf("import outbox: empty action id")
	}
	b := s.newBatch()
	b.call("HSET", s.outboxKey(), a.ID, encodeAction(a.Created, a.Data))
	return s.commit(ctx, b)
}

// ImportJournalLastSeq implements store.Importer.
func (s *Store) ImportJournalLastSeq(ctx context.Context, last uint64) error {
	b := s.newBatch()
	b.call("SET", s.journal.seqKey(), last)
	if err := s.commit(ctx, b); err != nil {
		return fmt.Errorf("import journal: %w", err)
	}
	s.journal.mu.Lock()
	s.journal.last = last
	s.journal.mu.Unlock()
	return nil
}

// ImportJournalEntries implements store.Importer, keeping seqs.
func (s *Store) ImportJournalEntries(ctx context.Context, entries []store.Entry) error {
	b := s.newBatch()
	for _, e := range entries {
		if e.Seq == 0 {
			return fmt.Errorf("import journal: entry without seq")
		}
		b.call("XADD", s.journal.streamKey(), strconv.FormatUint(e.Seq, 10)+"-0",
			"s", e.Seq, "t", e.Time.UnixNano(), "k", e.Kind, "c", e.ChatKey, "d", e.DedupKey, "x", e.Data)
	}
	if err := s.commit(ctx, b); err != nil {
		return fmt.Errorf("import journal entries: %w", err)
	}
	return nil
}

// ImportDedup implements store.Importer.
func (s *Store) ImportDedup(ctx context.Context, keys []store.DedupRecord) error {
	b := s.newBatch()
	for _, k := range keys {
		if k.Key == "" || k.Seq == 0 {
			return fmt.Errorf("import dedup record %q without key or seq", k.Key)
		}
		b.call("HSET", s.journal.dedupKey(), k.Key, k.Seq)
		b.call("ZADD", s.journal.dedupOrdKey(), k.At.UnixMilli(), k.Key)
	}
	if err := s.commit(ctx, b); err != nil {
		return fmt.Errorf("import journal dedup index: %w", err)
	}
	return nil
}

// ImportConsumer implements store.Importer: the group starts at Low and the
// seqs in Above are delivered and acknowledged, so exactly the unacked
// entries stay pending.
func (s *Store) ImportConsumer(ctx context.Context, name string, pos store.ConsumerPosition) error {
	if name == "" {
		return fmt.Errorf("import journal consumer: empty name")
	}
	b := s.newBatch()
	b.op(modeCall, 3, s.journal.streamKey(), "XGROUP", "CREATE", name, strconv.FormatUint(pos.Low, 10)+"-0", "MKSTREAM")
	if err := s.commit(ctx, b); err != nil {
		return fmt.Errorf("import journal consumer %q: %w", name, err)
	}
	if len(pos.Above) == 0 {
		return nil
	}
	return (&Consumer{j: s.journal, name: name}).Ack(ctx, pos.Above...)
}
