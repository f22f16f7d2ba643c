package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/store"
)

func (s *Store) peersKey() string       { return s.p + "peers" }
func (s *Store) peersByNameKey() string { return s.p + "peers:name" }
func (s *Store) peersByPhone() string   { return s.p + "peers:phone" }

// PeerStore is the peer store on Redis, with the bbolt store's semantics.
type PeerStore struct{ s *Store }

// Peers implements store.Backend.
func (s *Store) Peers() store.Peers { return &PeerStore{s: s} }

func normUsername(u string) string {
	return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(u), "@"))
}

func normPhone(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Put stores peers atomically. A zero AccessHash keeps the known hash and
// WroteFirst stays set once set.
func (ps *PeerStore) Put(ctx context.Context, peers ...store.Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, p := range peers {
		if !p.Ref.Valid() {
			return fmt.Errorf("store peers: peer %v: invalid reference", p.Ref)
		}
	}
	now := ps.s.opts.Now()
	err := ps.s.update(ctx, func(tx *redis.Tx, b *batch) error {
		return ps.put(ctx, tx, b, peers, now, false)
	})
	if err != nil {
		return fmt.Errorf("store peers: %w", err)
	}
	return nil
}

// put merges peers into the batch; keepTime keeps UpdatedAt (migration).
func (ps *PeerStore) put(ctx context.Context, tx *redis.Tx, b *batch, peers []store.Peer, now time.Time, keepTime bool) error {
	s := ps.s
	if err := tx.Watch(ctx, s.peersKey(), s.peersByNameKey(), s.peersByPhone()).Err(); err != nil {
		return err
	}
	// Later peers in the same call see earlier ones.
	pending := map[string]store.Peer{}
	names := map[string]string{}
	phones := map[string]string{}
	lookup := func(hash string, m map[string]string, k string) (string, error) {
		if v, ok := m[k]; ok {
			return v, nil
		}
		v, err := tx.HGet(ctx, hash, k).Result()
		if errors.Is(err, redis.Nil) {
			return "", nil
		}
		return v, err
	}
	for _, p := range peers {
		ref := p.Ref.String()
		old, had := pending[ref]
		if !had {
			v, err := tx.HGet(ctx, s.peersKey(), ref).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				if err := json.Unmarshal(v, &old); err != nil {
					return fmt.Errorf("peer %v: decode: %w", p.Ref, err)
				}
				had = true
			}
		}
		if had {
			if p.AccessHash == 0 {
				p.AccessHash = old.AccessHash
			}
			p.WroteFirst = p.WroteFirst || old.WroteFirst
			if u := normUsername(old.Username); u != "" {
				cur, err := lookup(s.peersByNameKey(), names, u)
				if err != nil {
					return err
				}
				if cur == ref {
					b.call("HDEL", s.peersByNameKey(), u)
					names[u] = ""
				}
			}
			if ph := normPhone(old.Phone); ph != "" {
				cur, err := lookup(s.peersByPhone(), phones, ph)
				if err != nil {
					return err
				}
				if cur == ref {
					b.call("HDEL", s.peersByPhone(), ph)
					phones[ph] = ""
				}
			}
		}
		if !keepTime {
			p.UpdatedAt = now
		}
		v, err := json.Marshal(p)
		if err != nil {
			return err
		}
		b.call("HSET", s.peersKey(), ref, v)
		pending[ref] = p
		// Usernames and phones move between accounts; the latest owner wins.
		if u := normUsername(p.Username); u != "" {
			b.call("HSET", s.peersByNameKey(), u, ref)
			names[u] = ref
		}
		if ph := normPhone(p.Phone); ph != "" {
			b.call("HSET", s.peersByPhone(), ph, ref)
			phones[ph] = ref
		}
	}
	return nil
}

// MarkWroteFirst records that the user wrote to us first.
func (ps *PeerStore) MarkWroteFirst(ctx context.Context, ref store.PeerRef) error {
	now := ps.s.opts.Now()
	err := ps.s.update(ctx, func(tx *redis.Tx, b *batch) error {
		if err := tx.Watch(ctx, ps.s.peersKey()).Err(); err != nil {
			return err
		}
		p, err := ps.get(ctx, tx, ref)
		if err != nil {
			return err
		}
		p.WroteFirst = true
		return ps.put(ctx, tx, b, []store.Peer{p}, now, false)
	})
	if err != nil {
		return fmt.Errorf("update peer %v: %w", ref, err)
	}
	return nil
}

func (ps *PeerStore) get(ctx context.Context, c redis.Cmdable, ref store.PeerRef) (store.Peer, error) {
	v, err := c.HGet(ctx, ps.s.peersKey(), ref.String()).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.Peer{}, fmt.Errorf("peer %v: %w", ref, store.ErrNotFound)
	}
	if err != nil {
		return store.Peer{}, fmt.Errorf("peer %v: %w", ref, err)
	}
	var p store.Peer
	if err := json.Unmarshal(v, &p); err != nil {
		return store.Peer{}, fmt.Errorf("peer %v: decode: %w", ref, err)
	}
	return p, nil
}

// Get returns the peer or an error wrapping store.ErrNotFound.
func (ps *PeerStore) Get(ctx context.Context, ref store.PeerRef) (store.Peer, error) {
	return ps.get(ctx, ps.s.rdb, ref)
}

// ByID returns every known peer with this id, whatever its kind.
func (ps *PeerStore) ByID(ctx context.Context, id int64) ([]store.Peer, error) {
	var out []store.Peer
	for _, k := range []store.PeerKind{store.PeerUser, store.PeerChat, store.PeerChannel} {
		p, err := ps.Get(ctx, store.PeerRef{Kind: k, ID: id})
		switch {
		case err == nil:
			out = append(out, p)
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	return out, nil
}

// ByUsername looks a peer up by username, case-insensitively, with or without "@".
func (ps *PeerStore) ByUsername(ctx context.Context, username string) (store.Peer, error) {
	return ps.byIndex(ctx, ps.s.peersByNameKey(), normUsername(username), "username "+username)
}

// ByPhone looks a peer up by phone number; only digits are compared.
func (ps *PeerStore) ByPhone(ctx context.Context, phone string) (store.Peer, error) {
	return ps.byIndex(ctx, ps.s.peersByPhone(), normPhone(phone), "phone")
}

func (ps *PeerStore) byIndex(ctx context.Context, hash, key, what string) (store.Peer, error) {
	if key == "" {
		return store.Peer{}, fmt.Errorf("peer by %s: %w", what, store.ErrNotFound)
	}
	v, err := ps.s.rdb.HGet(ctx, hash, key).Result()
	if errors.Is(err, redis.Nil) {
		return store.Peer{}, fmt.Errorf("peer by %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.Peer{}, fmt.Errorf("peer by %s: %w", what, err)
	}
	ref, err := store.ParsePeerRef(v)
	if err != nil {
		return store.Peer{}, fmt.Errorf("peer by %s: %w", what, err)
	}
	return ps.Get(ctx, ref)
}

// Delete forgets a peer.
func (ps *PeerStore) Delete(ctx context.Context, ref store.PeerRef) error {
	s := ps.s
	err := s.update(ctx, func(tx *redis.Tx, b *batch) error {
		if err := tx.Watch(ctx, s.peersKey(), s.peersByNameKey(), s.peersByPhone()).Err(); err != nil {
			return err
		}
		p, err := ps.get(ctx, tx, ref)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		key := ref.String()
		if u := normUsername(p.Username); u != "" {
			if cur, _ := tx.HGet(ctx, s.peersByNameKey(), u).Result(); cur == key {
				b.call("HDEL", s.peersByNameKey(), u)
			}
		}
		if ph := normPhone(p.Phone); ph != "" {
			if cur, _ := tx.HGet(ctx, s.peersByPhone(), ph).Result(); cur == key {
				b.call("HDEL", s.peersByPhone(), ph)
			}
		}
		b.call("HDEL", s.peersKey(), key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete peer %v: %w", ref, err)
	}
	return nil
}
