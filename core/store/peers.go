package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PeerKind is the kind of a Telegram peer.
type PeerKind uint8

// Peer kinds. The values are stored: never renumber them.
const (
	PeerUser    PeerKind = 1
	PeerChat    PeerKind = 2 // basic group
	PeerChannel PeerKind = 3 // channel or supergroup
)

func (k PeerKind) String() string {
	switch k {
	case PeerUser:
		return "user"
	case PeerChat:
		return "chat"
	case PeerChannel:
		return "channel"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// PeerRef is a stable reference to a peer that survives restarts. Its string
// form is "user:123", "chat:45" or "channel:678".
type PeerRef struct {
	Kind PeerKind
	ID   int64
}

func (r PeerRef) String() string { return r.Kind.String() + ":" + strconv.FormatInt(r.ID, 10) }

// Valid reports whether r has a known kind and a positive id.
func (r PeerRef) Valid() bool {
	return r.Kind >= PeerUser && r.Kind <= PeerChannel && r.ID > 0
}

// ParsePeerRef parses the string form of a PeerRef.
func ParsePeerRef(s string) (PeerRef, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok {
		return PeerRef{}, fmt.Errorf("peer reference %q: want kind:id, e.g. user:123", s)
	}
	var r PeerRef
	switch kind {
	case "user":
		r.Kind = PeerUser
	case "chat":
		r.Kind = PeerChat
	case "channel":
		r.Kind = PeerChannel
	default:
		return PeerRef{}, fmt.Errorf("peer reference %q: unknown kind %q (want user, chat or channel)", s, kind)
	}
	// Only plain decimal digits: the string form must round-trip exactly.
	if id == "" || len(id) > 19 || strings.TrimLeft(id, "0123456789") != "" || (len(id) > 1 && id[0] == '0') {
		return PeerRef{}, fmt.Errorf("peer reference %q: id must be a positive decimal number", s)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return PeerRef{}, fmt.Errorf("peer reference %q: id must be a positive decimal number", s)
	}
	r.ID = n
	return r, nil
}

// MarshalText implements encoding.TextMarshaler.
func (r PeerRef) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *PeerRef) UnmarshalText(b []byte) error {
	p, err := ParsePeerRef(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

func (r PeerRef) key() []byte {
	k := make([]byte, 9)
	k[0] = byte(r.Kind)
	copy(k[1:], u64(uint64(r.ID)))
	return k
}

func peerRefFromKey(k []byte) PeerRef {
	return PeerRef{Kind: PeerKind(k[0]), ID: int64(beU64(k[1:9]))}
}

// Peer is what the store knows about a peer: plain data, filled by the
// runner from Telegram entities.
type Peer struct {
	Ref        PeerRef   `json:"ref"`
	AccessHash int64     `json:"access_hash,omitempty"`
	Title      string    `json:"title,omitempty"` // chats and channels
	FirstName  string    `json:"first_name,omitempty"`
	LastName   string    `json:"last_name,omitempty"`
	Username   string    `json:"username,omitempty"`
	Phone      string    `json:"phone,omitempty"` // contacts only
	Megagroup  bool      `json:"megagroup,omitempty"`
	Broadcast  bool      `json:"broadcast,omitempty"`
	Bot        bool      `json:"bot,omitempty"`
	Contact    bool      `json:"contact,omitempty"`
	WroteFirst bool      `json:"wrote_first,omitempty"` // the user wrote to us before we wrote to them
	UpdatedAt  time.Time `json:"updated_at"`
}

// PeerStore maps peer references to access hashes and basic info, with
// lookups by id, username (case-insensitive) and phone.
type PeerStore struct{ s *Store }

// Peers returns the peer store.
func (s *Store) Peers() *PeerStore { return &PeerStore{s: s} }

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

// Put stores peers in one transaction. An update never loses knowledge: a
// zero AccessHash (a "min" entity) keeps the known hash, and WroteFirst stays
// set once set.
func (ps *PeerStore) Put(ctx context.Context, peers ...Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := ps.s.opts.Now()
	err := ps.s.db.Update(func(tx *bolt.Tx) error {
		for _, p := range peers {
			if !p.Ref.Valid() {
				return fmt.Errorf("peer %v: invalid reference", p.Ref)
			}
			if err := putPeer(tx, p, now); err != nil {
				return fmt.Errorf("peer %v: %w", p.Ref, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store peers: %w", err)
	}
	return nil
}

func putPeer(tx *bolt.Tx, p Peer, now time.Time) error {
	peers := tx.Bucket(bucketPeers)
	byName := tx.Bucket(bucketPeersByName)
	byPhone := tx.Bucket(bucketPeersByPhone)
	key := p.Ref.key()
	if v := peers.Get(key); v != nil {
		old, err := decodePeer(v)
		if err != nil {
			return err
		}
		if p.AccessHash == 0 {
			p.AccessHash = old.AccessHash
		}
		p.WroteFirst = p.WroteFirst || old.WroteFirst
		if u := normUsername(old.Username); u != "" && string(byName.Get([]byte(u))) == string(key) {
			if err := byName.Delete([]byte(u)); err != nil {
				return err
			}
		}
		if ph := normPhone(old.Phone); ph != "" && string(byPhone.Get([]byte(ph))) == string(key) {
			if err := byPhone.Delete([]byte(ph)); err != nil {
				return err
			}
		}
	}
	p.UpdatedAt = now
	v, err := encodePeer(p)
	if err != nil {
		return err
	}
	if err := peers.Put(key, v); err != nil {
		return err
	}
	// Usernames and phones move between accounts; the latest owner wins.
	if u := normUsername(p.Username); u != "" {
		if err := byName.Put([]byte(u), key); err != nil {
			return err
		}
	}
	if ph := normPhone(p.Phone); ph != "" {
		if err := byPhone.Put([]byte(ph), key); err != nil {
			return err
		}
	}
	return nil
}

// MarkWroteFirst records that the user wrote to us first.
func (ps *PeerStore) MarkWroteFirst(ctx context.Context, ref PeerRef) error {
	return ps.modify(ctx, ref, func(p *Peer) { p.WroteFirst = true })
}

func (ps *PeerStore) modify(ctx context.Context, ref PeerRef, fn func(*Peer)) error {
	now := ps.s.opts.Now()
	err := ps.s.db.Update(func(tx *bolt.Tx) error {
		p, err := getPeer(tx, ref)
		if err != nil {
			return err
		}
		fn(&p)
		return putPeer(tx, p, now)
	})
	if err != nil {
		return fmt.Errorf("update peer %v: %w", ref, err)
	}
	return nil
}

func getPeer(tx *bolt.Tx, ref PeerRef) (Peer, error) {
	v := tx.Bucket(bucketPeers).Get(ref.key())
	if v == nil {
		return Peer{}, fmt.Errorf("peer %v: %w", ref, ErrNotFound)
	}
	p, err := decodePeer(v)
	if err != nil {
		return Peer{}, fmt.Errorf("peer %v: decode: %w", ref, err)
	}
	return p, nil
}

// encodePeer writes a peer record: JSON with a checksum (schema 2).
func encodePeer(p Peer) ([]byte, error) {
	v, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return sealed(v), nil
}

func decodePeer(v []byte) (Peer, error) {
	var p Peer
	payload, err := unseal(v)
	if err != nil {
		return p, err
	}
	err = json.Unmarshal(payload, &p)
	return p, err
}

// Get returns the peer or an error wrapping ErrNotFound.
func (ps *PeerStore) Get(ctx context.Context, ref PeerRef) (Peer, error) {
	var p Peer
	err := ps.s.db.View(func(tx *bolt.Tx) error {
		var err error
		p, err = getPeer(tx, ref)
		return err
	})
	return p, err
}

// ByID returns every known peer with this id, whatever its kind.
func (ps *PeerStore) ByID(ctx context.Context, id int64) ([]Peer, error) {
	var out []Peer
	err := ps.s.db.View(func(tx *bolt.Tx) error {
		for _, k := range []PeerKind{PeerUser, PeerChat, PeerChannel} {
			p, err := getPeer(tx, PeerRef{Kind: k, ID: id})
			if err == nil {
				out = append(out, p)
			} else if !isNotFound(err) {
				return err
			}
		}
		return nil
	})
	return out, err
}

// ByUsername looks a peer up by username, case-insensitively, with or without "@".
func (ps *PeerStore) ByUsername(ctx context.Context, username string) (Peer, error) {
	return ps.byIndex(bucketPeersByName, normUsername(username), "username "+username)
}

// ByPhone looks a peer up by phone number; only digits are compared.
func (ps *PeerStore) ByPhone(ctx context.Context, phone string) (Peer, error) {
	return ps.byIndex(bucketPeersByPhone, normPhone(phone), "phone")
}

func (ps *PeerStore) byIndex(bucket []byte, key, what string) (Peer, error) {
	var p Peer
	err := ps.s.db.View(func(tx *bolt.Tx) error {
		if key == "" {
			return fmt.Errorf("peer by %s: %w", what, ErrNotFound)
		}
		ref := tx.Bucket(bucket).Get([]byte(key))
		if len(ref) != 9 {
			return fmt.Errorf("peer by %s: %w", what, ErrNotFound)
		}
		var err error
		p, err = getPeer(tx, peerRefFromKey(ref))
		return err
	})
	return p, err
}

// Delete forgets a peer.
func (ps *PeerStore) Delete(ctx context.Context, ref PeerRef) error {
	err := ps.s.db.Update(func(tx *bolt.Tx) error {
		p, err := getPeer(tx, ref)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		key := ref.key()
		if u := normUsername(p.Username); u != "" && string(tx.Bucket(bucketPeersByName).Get([]byte(u))) == string(key) {
			if err := tx.Bucket(bucketPeersByName).Delete([]byte(u)); err != nil {
				return err
			}
		}
		if ph := normPhone(p.Phone); ph != "" && string(tx.Bucket(bucketPeersByPhone).Get([]byte(ph))) == string(key) {
			if err := tx.Bucket(bucketPeersByPhone).Delete([]byte(ph)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketPeers).Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete peer %v: %w", ref, err)
	}
	return nil
}
