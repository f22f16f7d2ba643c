package store

import (
	"context"
	"time"

	"github.com/gotd/td/telegram/updates"
)

// Bolt returns s as a Backend. The journal, consumer and transaction types
// are wrapped because Go interfaces cannot return the concrete *Consumer
// or *KVTx; everything else is s's own value.
func Bolt(s *Store) Backend { return boltBackend{s} }

type boltBackend struct{ s *Store }

var (
	_ Backend         = boltBackend{}
	_ UpdatesJournal  = boltJournal{}
	_ JournalConsumer = boltConsumer{}
	_ Txn             = boltTxn{}
	_ Exporter        = (*Store)(nil)
	_ Importer        = (*Store)(nil)
)

func (b boltBackend) Session() SessionStore             { return b.s.Session() }
func (b boltBackend) UpdateState() updates.StateStorage { return b.s.UpdateState() }
func (b boltBackend) AccessHashes() AccessHasher        { return b.s.AccessHashes() }
func (b boltBackend) Peers() Peers                      { return b.s.Peers() }
func (b boltBackend) Journal() UpdatesJournal           { return boltJournal{b.s.Journal()} }
func (b boltBackend) PluginKV(plugin string) KV         { return b.s.PluginKV(plugin) }
func (b boltBackend) Audit() AuditStore                 { return b.s.Audit() }
func (b boltBackend) Outbox() ActionQueue               { return b.s.Outbox() }
func (b boltBackend) Describe() string                  { return "bbolt " + b.s.Dir() }
func (b boltBackend) Close() error                      { return b.s.Close() }
func (b boltBackend) Update(ctx context.Context, fn func(tx Txn) error) error {
	return b.s.Update(ctx, func(tx *Tx) error { return fn(boltTxn{tx}) })
}

// Store returns the underlying store of a Backend made by Bolt, for the
// bbolt-only features (Dir, Backup, Check).
func BoltStore(b Backend) (*Store, bool) {
	bb, ok := b.(boltBackend)
	return bb.s, ok
}

type boltJournal struct{ *Journal }

func (j boltJournal) Consumer(ctx context.Context, name string, opts ConsumerOptions) (JournalConsumer, error) {
	c, err := j.Journal.Consumer(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	return boltConsumer{c}, nil
}

type boltConsumer struct{ *Consumer }

func (c boltConsumer) AckWith(ctx context.Context, fn func(tx Txn) error, seqs ...uint64) error {
	return c.AckTx(ctx, func(tx *Tx) error {
		if fn == nil {
			return nil
		}
		return fn(boltTxn{tx})
	}, seqs...)
}

type boltTxn struct{ *Tx }

func (t boltTxn) KV(plugin string) TxKV { return t.Tx.KV(plugin) }
func (t boltTxn) AppendAudit(at time.Time, data []byte) error {
	return t.Tx.AppendAudit(at, data)
}
