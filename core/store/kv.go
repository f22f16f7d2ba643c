package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// KVLimits bounds each plugin's key-value storage. Zero values take the defaults.
type KVLimits struct {
	MaxKeyBytes    int   // default 512
	MaxValueBytes  int   // default 1 MiB
	MaxPluginBytes int64 // keys plus values per plugin; default 64 MiB
}

func (l *KVLimits) setDefaults() {
	if l.MaxKeyBytes <= 0 {
		l.MaxKeyBytes = 512
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = 1 << 20
	}
	if l.MaxPluginBytes <= 0 {
		l.MaxPluginBytes = 64 << 20
	}
}

// ErrNotFound is returned for missing keys and records.
var ErrNotFound = errors.New("not found")

// LimitError reports a write that exceeds a KV limit.
type LimitError struct {
	Plugin string
	Limit  string // "key size", "value size" or "plugin total"
	Size   int64
	Max    int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("plugin %q storage: %s %d exceeds the limit of %d bytes", e.Plugin, e.Limit, e.Size, e.Max)
}

// KVPair is one stored key and value.
type KVPair struct {
	Key   string
	Value []byte
}

// PluginKV is one plugin's namespaced key-value storage.
type PluginKV struct {
	s      *Store
	plugin string
}

// PluginKV returns the storage of plugin.
func (s *Store) PluginKV(plugin string) *PluginKV { return &PluginKV{s: s, plugin: plugin} }

// Get returns the value of key or ErrNotFound.
func (p *PluginKV) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := p.s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = (&Tx{s: p.s, tx: tx}).KV(p.plugin).Get(key)
		return err
	})
	return out, err
}

// Set stores value under key.
func (p *PluginKV) Set(ctx context.Context, key string, value []byte) error {
	return p.s.Update(ctx, func(tx *Tx) error { return tx.KV(p.plugin).Set(key, value) })
}

// Delete removes key; a missing key is not an error.
func (p *PluginKV) Delete(ctx context.Context, key string) error {
	return p.s.Update(ctx, func(tx *Tx) error { return tx.KV(p.plugin).Delete(key) })
}

// List returns pairs whose key starts with prefix, in key order; limit <= 0 means all.
func (p *PluginKV) List(ctx context.Context, prefix string, limit int) ([]KVPair, error) {
	var out []KVPair
	err := p.s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket([]byte(p.plugin))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			out = append(out, KVPair{Key: string(k), Value: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("plugin %q storage list: %w", p.plugin, err)
	}
	return out, nil
}

// Usage is the bytes (keys plus values) the plugin stores.
func (p *PluginKV) Usage(ctx context.Context) (int64, error) {
	var n int64
	err := p.s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketKVUsage).Get([]byte(p.plugin)); v != nil {
			n = int64(beU64(v))
		}
		return nil
	})
	return n, err
}

// KVTx is a plugin's key-value storage inside a transaction.
type KVTx struct {
	tx     *Tx
	plugin string
}

// KV returns plugin's storage within the transaction.
func (t *Tx) KV(plugin string) *KVTx { return &KVTx{tx: t, plugin: plugin} }

// Get returns a copy of the value of key or ErrNotFound.
func (k *KVTx) Get(key string) ([]byte, error) {
	b := k.tx.tx.Bucket(bucketKV).Bucket([]byte(k.plugin))
	if b == nil {
		return nil, fmt.Errorf("plugin %q storage key %q: %w", k.plugin, key, ErrNotFound)
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, fmt.Errorf("plugin %q storage key %q: %w", k.plugin, key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

// Set stores value under key, enforcing the limits.
func (k *KVTx) Set(key string, value []byte) error {
	lim := k.tx.s.opts.KV
	if k.plugin == "" {
		return errors.New("plugin storage: empty plugin name")
	}
	if key == "" {
		return fmt.Errorf("plugin %q storage: empty key", k.plugin)
	}
	if len(key) > lim.MaxKeyBytes {
		return &LimitError{Plugin: k.plugin, Limit: "key size", Size: int64(len(key)), Max: int64(lim.MaxKeyBytes)}
	}
	if len(value) > lim.MaxValueBytes {
		return &LimitError{Plugin: k.plugin, Limit: "value size", Size: int64(len(value)), Max: int64(lim.MaxValueBytes)}
	}
	if !k.tx.tx.Writable() {
		return errors.New("plugin storage: read-only transaction")
	}
	b, err := k.tx.tx.Bucket(bucketKV).CreateBucketIfNotExists([]byte(k.plugin))
	if err != nil {
		return err
	}
	usage := k.usage()
	if old := b.Get([]byte(key)); old != nil {
		usage -= int64(len(key) + len(old))
	}
	usage += int64(len(key) + len(value))
	if usage > lim.MaxPluginBytes {
		return &LimitError{Plugin: k.plugin, Limit: "plugin total", Size: usage, Max: lim.MaxPluginBytes}
	}
	if value == nil {
		value = []byte{}
	}
	if err := b.Put([]byte(key), value); err != nil {
		return err
	}
	return k.setUsage(usage)
}

// Delete removes key; a missing key is not an error.
func (k *KVTx) Delete(key string) error {
	b := k.tx.tx.Bucket(bucketKV).Bucket([]byte(k.plugin))
	if b == nil {
		return nil
	}
	old := b.Get([]byte(key))
	if old == nil {
		return nil
	}
	usage := k.usage() - int64(len(key)+len(old))
	if err := b.Delete([]byte(key)); err != nil {
		return err
	}
	return k.setUsage(usage)
}

func (k *KVTx) usage() int64 {
	if v := k.tx.tx.Bucket(bucketKVUsage).Get([]byte(k.plugin)); v != nil {
		return int64(beU64(v))
	}
	return 0
}

func (k *KVTx) setUsage(n int64) error {
	return k.tx.tx.Bucket(bucketKVUsage).Put([]byte(k.plugin), u64(uint64(n)))
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
