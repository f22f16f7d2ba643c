// Package peers keeps the peers the account has seen (users, groups, channels)
// with their access hashes, so that every action can address a chat by a
// stable reference that survives restarts. It is a write-through cache over
// the durable peer store.
package peers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gotd/td/tg"

	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ErrUnknownPeer is returned when the runner has never seen a peer, so it
// has no access hash to address it with.
var ErrUnknownPeer = errors.New("unknown peer: the runner has not seen it yet; resolve it by username first")

// Cache is the runner's view of the peer store: an in-memory cache in front
// of the durable store, written only when something changed, so the update
// intake does not pay a disk write for peers it already knows.
type Cache struct {
	store store.Peers
	now   func() time.Time

	mu       sync.RWMutex
	users    map[int64]*tg.User
	chats    map[int64]*tg.Chat
	channels map[int64]*tg.Channel
	saved    map[store.PeerRef]store.Peer
}

// New wraps a peer store.
func New(s store.Peers) *Cache {
	return &Cache{
		store:    s,
		now:      time.Now,
		users:    map[int64]*tg.User{},
		chats:    map[int64]*tg.Chat{},
		channels: map[int64]*tg.Channel{},
		saved:    map[store.PeerRef]store.Peer{},
	}
}

// Remember records the entities of an update or an RPC result. Min
// entities (without a usable access hash) never replace full ones.
func (p *Cache) Remember(ctx context.Context, users []tg.UserClass, chats []tg.ChatClass) error {
	var changed []store.Peer
	p.mu.Lock()
	for _, u := range users {
		u, ok := u.(*tg.User)
		if !ok {
			continue
		}
		if old, ok := p.users[u.ID]; ok && u.Min {
			if old.AccessHash != 0 {
				continue
			}
		}
		p.users[u.ID] = u
		rec := store.Peer{
			Ref: store.PeerRef{Kind: store.PeerUser, ID: u.ID}, AccessHash: u.AccessHash,
			FirstName: u.FirstName, LastName: u.LastName, Username: u.Username, Bot: u.Bot, Contact: u.Contact,
		}
		if u.Contact {
			rec.Phone = u.Phone
		}
		if p.differs(rec) {
			changed = append(changed, rec)
		}
	}
	for _, c := range chats {
		switch c := c.(type) {
		case *tg.Chat:
			p.chats[c.ID] = c
			rec := store.Peer{Ref: store.PeerRef{Kind: store.PeerChat, ID: c.ID}, Title: c.Title}
			if p.differs(rec) {
				changed = append(changed, rec)
			}
		case *tg.Channel:
			if old, ok := p.channels[c.ID]; ok && c.Min && old.AccessHash != 0 {
				continue
			}
			p.channels[c.ID] = c
			rec := store.Peer{
				Ref: store.PeerRef{Kind: store.PeerChannel, ID: c.ID}, AccessHash: c.AccessHash,
				Title: c.Title, Username: c.Username, Megagroup: c.Megagroup, Broadcast: c.Broadcast,
			}
			if p.differs(rec) {
				changed = append(changed, rec)
			}
		}
	}
	p.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	for i := range changed {
		changed[i].UpdatedAt = p.now()
	}
	if err := p.store.Put(ctx, changed...); err != nil {
		return fmt.Errorf("save peers: %w", err)
	}
	p.mu.Lock()
	for _, rec := range changed {
		p.saved[rec.Ref] = rec
	}
	p.mu.Unlock()
	return nil
}

// differs reports whether rec is new or changed since it was last saved.
// Callers hold p.mu.
func (p *Cache) differs(rec store.Peer) bool {
	old, ok := p.saved[rec.Ref]
	if !ok {
		if stored, err := p.store.Get(context.Background(), rec.Ref); err == nil {
			old, ok = stored, true
			rec.WroteFirst = stored.WroteFirst
			p.saved[rec.Ref] = stored
		}
	}
	if !ok {
		return true
	}
	old.UpdatedAt, rec.UpdatedAt = time.Time{}, time.Time{}
	old.WroteFirst = rec.WroteFirst
	return old != rec
}

// User implements event.Lookup.
func (p *Cache) User(id int64) *tg.User {
	p.mu.RLock()
	u := p.users[id]
	p.mu.RUnlock()
	if u != nil {
		return u
	}
	rec, err := p.store.Get(context.Background(), store.PeerRef{Kind: store.PeerUser, ID: id})
	if err != nil {
		return nil
	}
	return &tg.User{ID: id, AccessHash: rec.AccessHash, FirstName: rec.FirstName, LastName: rec.LastName,
		Username: rec.Username, Bot: rec.Bot, Contact: rec.Contact}
}

// Chat implements event.Lookup.
func (p *Cache) Chat(id int64) *tg.Chat {
	p.mu.RLock()
	c := p.chats[id]
	p.mu.RUnlock()
	if c != nil {
		return c
	}
	rec, err := p.store.Get(context.Background(), store.PeerRef{Kind: store.PeerChat, ID: id})
	if err != nil {
		return nil
	}
	return &tg.Chat{ID: id, Title: rec.Title}
}

// Channel implements event.Lookup.
func (p *Cache) Channel(id int64) *tg.Channel {
	p.mu.RLock()
	c := p.channels[id]
	p.mu.RUnlock()
	if c != nil {
		return c
	}
	rec, err := p.store.Get(context.Background(), store.PeerRef{Kind: store.PeerChannel, ID: id})
	if err != nil {
		return nil
	}
	return &tg.Channel{ID: id, AccessHash: rec.AccessHash, Title: rec.Title, Username: rec.Username,
		Megagroup: rec.Megagroup, Broadcast: rec.Broadcast}
}

// InputPeer addresses a peer in an RPC. selfID turns the account itself into
// inputPeerSelf.
func (p *Cache) InputPeer(ctx context.Context, ref *pb.Peer, selfID int64) (tg.InputPeerClass, error) {
	if ref == nil {
		return nil, fmt.Errorf("no chat given")
	}
	switch ref.Kind {
	case pb.PeerKind_PEER_KIND_USER:
		if ref.Id == selfID {
			return &tg.InputPeerSelf{}, nil
		}
		u := p.User(ref.Id)
		if u == nil {
			return nil, fmt.Errorf("user:%d: %w", ref.Id, ErrUnknownPeer)
		}
		return &tg.InputPeerUser{UserID: ref.Id, AccessHash: u.AccessHash}, nil
	case pb.PeerKind_PEER_KIND_CHAT:
		return &tg.InputPeerChat{ChatID: ref.Id}, nil
	case pb.PeerKind_PEER_KIND_CHANNEL:
		c := p.Channel(ref.Id)
		if c == nil {
			return nil, fmt.Errorf("channel:%d: %w", ref.Id, ErrUnknownPeer)
		}
		return &tg.InputPeerChannel{ChannelID: ref.Id, AccessHash: c.AccessHash}, nil
	}
	return nil, fmt.Errorf("peer kind %v: %w", ref.Kind, ErrUnknownPeer)
}

// InputUser addresses a user in an RPC.
func (p *Cache) InputUser(id, selfID int64) (tg.InputUserClass, error) {
	if id == selfID {
		return &tg.InputUserSelf{}, nil
	}
	u := p.User(id)
	if u == nil {
		return nil, fmt.Errorf("user:%d: %w", id, ErrUnknownPeer)
	}
	return &tg.InputUser{UserID: id, AccessHash: u.AccessHash}, nil
}

// ByUsername finds a peer the runner has seen by its username.
func (p *Cache) ByUsername(ctx context.Context, name string) (store.Peer, error) {
	return p.store.ByUsername(ctx, strings.TrimPrefix(name, "@"))
}

// MarkWroteFirst records that a user wrote to the account, once.
func (p *Cache) MarkWroteFirst(ctx context.Context, userID int64) error {
	ref := store.PeerRef{Kind: store.PeerUser, ID: userID}
	p.mu.RLock()
	rec, ok := p.saved[ref]
	p.mu.RUnlock()
	if ok && rec.WroteFirst {
		return nil
	}
	if err := p.store.MarkWroteFirst(ctx, ref); err != nil {
		return err
	}
	p.mu.Lock()
	rec, ok = p.saved[ref]
	if ok {
		rec.WroteFirst = true
		p.saved[ref] = rec
	}
	p.mu.Unlock()
	return nil
}

// WroteFirst reports whether a user ever wrote to the account.
func (p *Cache) WroteFirst(ctx context.Context, userID int64) bool {
	rec, err := p.store.Get(ctx, store.PeerRef{Kind: store.PeerUser, ID: userID})
	return err == nil && rec.WroteFirst
}
