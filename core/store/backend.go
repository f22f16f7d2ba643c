package store

import (
	"context"
	"time"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram/updates"
)

// The interfaces below are what a storage backend provides for one account,
// so the runner can run on the embedded bbolt store (this package) or on
// Redis (core/store/redisstore) without knowing which. They keep the bbolt
// semantics: typed errors (ErrNotFound, ErrJournalFailed, *LimitError), the
// journal's dedup and ack guarantees, and the fail-stop updates state.

// SessionStore keeps the MTProto session.
type SessionStore interface {
	session.Storage
	// DeleteSession wipes the session (logout); a missing one is not an error.
	DeleteSession(ctx context.Context) error
}

// AccessHasher persists the access hashes the updates manager learns.
type AccessHasher interface {
	updates.ChannelAccessHasher
	updates.UserAccessHasher
}

// Peers is the peer store: access hashes and basic info by reference, id,
// username and phone. Put never loses knowledge (see PeerStore.Put).
type Peers interface {
	Put(ctx context.Context, peers ...Peer) error
	Get(ctx context.Context, ref PeerRef) (Peer, error)
	ByID(ctx context.Context, id int64) ([]Peer, error)
	ByUsername(ctx context.Context, username string) (Peer, error)
	ByPhone(ctx context.Context, phone string) (Peer, error)
	MarkWroteFirst(ctx context.Context, ref PeerRef) error
	Delete(ctx context.Context, ref PeerRef) error
}

// KV is one plugin's namespaced key-value storage.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, limit int) ([]KVPair, error)
	Usage(ctx context.Context) (int64, error)
}

// AuditStore is the append-only audit log ordered by time.
type AuditStore interface {
	Append(ctx context.Context, at time.Time, data []byte) error
	Range(ctx context.Context, from, to time.Time, limit int) ([]AuditRecord, error)
	Prune(ctx context.Context, before time.Time) (int, error)
}

// ActionQueue is the durable queue of outgoing actions.
type ActionQueue interface {
	Put(ctx context.Context, id string, data []byte) error
	Get(ctx context.Context, id string) (QueuedAction, error)
	List(ctx context.Context) ([]QueuedAction, error)
	Delete(ctx context.Context, id string) error
}

// TxKV is a plugin's key-value storage inside a transaction. Reads see the
// transaction's own writes.
type TxKV interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte) error
	Delete(key string) error
}

// Txn is a read-write transaction over the generic data: plugin KV, audit
// and outbox. Everything written through it commits together or not at all.
// A backend may run fn more than once (Redis retries when a key it read
// changed), so fn must not have side effects outside the Txn.
type Txn interface {
	KV(plugin string) TxKV
	AppendAudit(at time.Time, data []byte) error
	PutAction(id string, data []byte) error
	DeleteAction(id string) error
}

// JournalConsumer is a named, durably registered reader of the journal.
type JournalConsumer interface {
	Name() string
	// Read returns up to max unacknowledged entries with Seq > after, in order.
	Read(ctx context.Context, after uint64, max int) ([]Entry, error)
	// Next is Read that blocks until at least one entry is there or ctx ends.
	Next(ctx context.Context, after uint64, max int) ([]Entry, error)
	// Ack acknowledges seqs in any order: at-least-once delivery.
	Ack(ctx context.Context, seqs ...uint64) error
	// AckWith runs fn and acknowledges seqs atomically: the effects written
	// through the Txn and the ack commit together (exactly-once).
	AckWith(ctx context.Context, fn func(tx Txn) error, seqs ...uint64) error
	Position(ctx context.Context) (ConsumerPosition, error)
	Lag(ctx context.Context) (uint64, error)
}

// UpdatesJournal is the durable, deduplicating log of updates.
type UpdatesJournal interface {
	Append(ctx context.Context, entries []Entry) ([]Entry, error)
	Consumer(ctx context.Context, name string, opts ConsumerOptions) (JournalConsumer, error)
	Consumers(ctx context.Context) ([]string, error)
	Unregister(ctx context.Context, name string) error
	Fail(err error)
	Failed() error
	LastSeq() uint64
	Depth(ctx context.Context) (uint64, error)
	DedupKeys(ctx context.Context) (uint64, error)
	Compact(ctx context.Context) (CompactResult, error)
}

// Backend is everything durable for one account.
type Backend interface {
	Session() SessionStore
	// UpdateState refuses to advance once Journal().Failed() is set.
	UpdateState() updates.StateStorage
	AccessHashes() AccessHasher
	Peers() Peers
	Journal() UpdatesJournal
	PluginKV(plugin string) KV
	Audit() AuditStore
	Outbox() ActionQueue
	// Update runs fn in one transaction (see Txn for retries).
	Update(ctx context.Context, fn func(tx Txn) error) error
	// Describe names the backend for logs and errors, without secrets.
	Describe() string
	Close() error
}

// Migration: `runner storage migrate` copies a backend with Export into an
// empty one through Importer.

// DedupRecord is one key of the journal's dedup index.
type DedupRecord struct {
	Key string
	Seq uint64
	At  time.Time // when it was recorded; retention counts from here
}

// Importer receives a backend's whole content. Seqs, times and consumer
// positions are kept as they are, so consumers resume where they were.
type Importer interface {
	// Empty reports whether the target holds nothing yet; migration refuses
	// to merge into existing data.
	Empty(ctx context.Context) (bool, error)
	ImportSession(ctx context.Context, data []byte) error
	ImportState(ctx context.Context, userID int64, st updates.State) error
	ImportChannelPts(ctx context.Context, userID, channelID int64, pts int) error
	// ImportAccessHash takes kind PeerUser or PeerChannel.
	ImportAccessHash(ctx context.Context, kind PeerKind, userID, targetID, hash int64) error
	ImportPeer(ctx context.Context, p Peer) error // keeps UpdatedAt
	ImportKV(ctx context.Context, plugin, key string, value []byte) error
	ImportAudit(ctx context.Context, r AuditRecord) error
	ImportAction(ctx context.Context, a QueuedAction) error // keeps Created
	// ImportJournal: lastSeq first, then entries in ascending seq order in
	// chunks, then the dedup index and the consumers' positions.
	ImportJournalLastSeq(ctx context.Context, lastSeq uint64) error
	ImportJournalEntries(ctx context.Context, entries []Entry) error
	ImportDedup(ctx context.Context, keys []DedupRecord) error
	ImportConsumer(ctx context.Context, name string, pos ConsumerPosition) error
}

// Exporter writes a backend's whole content into an Importer, journal last.
type Exporter interface {
	Export(ctx context.Context, to Importer) error
}

// Compile-time checks: the bbolt types are the reference implementation.
var (
	_ SessionStore         = (*SessionStorage)(nil)
	_ updates.StateStorage = (*StateStorage)(nil)
	_ AccessHasher         = (*AccessHashes)(nil)
	_ Peers                = (*PeerStore)(nil)
	_ KV                   = (*PluginKV)(nil)
	_ AuditStore           = (*AuditLog)(nil)
	_ ActionQueue          = (*Outbox)(nil)
	_ TxKV                 = (*KVTx)(nil)
)
