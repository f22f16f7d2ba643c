package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/gotd/td/telegram/updates"
	bolt "go.etcd.io/bbolt"
)

// StateStorage persists the updates manager's pts/qts/date/seq and channel
// pts, and implements gotd's updates.StateStorage.
//
// gotd's manager advances pts even when the update handler failed. So once
// the journal is marked failed (Journal.Fail, or any failed Journal.Append)
// every setter returns an error: the persisted state stays behind the last
// journaled update and getDifference replays the rest after a restart.
//
// Writes are held in memory and reach the disk in the next journal Append
// transaction (or within a second, or at Close). The manager only moves the
// state after the handler has journaled the updates it covers, so the state
// on disk can lag the journal, never lead it: a crash replays a few updates,
// which the journal's dedup keys drop. This saves an fsync per update.
type StateStorage struct{ s *Store }

// stateOverlay is the state not yet written to disk.
type stateOverlay struct {
	mu       sync.Mutex
	users    map[int64]updates.State
	channels map[[2]int64]int
}

// stateFlushInterval bounds how long a state write may stay in memory when
// no update arrives to carry it.
const stateFlushInterval = time.Second

// flushStateTx writes the pending state in tx; what it wrote is cleared
// once tx commits.
func (s *Store) flushStateTx(tx *bolt.Tx) error {
	s.state.mu.Lock()
	users := maps.Clone(s.state.users)
	channels := maps.Clone(s.state.channels)
	s.state.mu.Unlock()
	if len(users) == 0 && len(channels) == 0 {
		return nil
	}
	for id, st := range users {
		if err := tx.Bucket(bucketState).Put(i64key(id), encodeState(st)); err != nil {
			return err
		}
	}
	for k, pts := range channels {
		if err := tx.Bucket(bucketChannelPts).Put(pairKey(k[0], k[1]), u64(uint64(int64(pts)))); err != nil {
			return err
		}
	}
	tx.OnCommit(func() {
		s.state.mu.Lock()
		defer s.state.mu.Unlock()
		for id, st := range users {
			if s.state.users[id] == st {
				delete(s.state.users, id)
			}
		}
		for k, pts := range channels {
			if s.state.channels[k] == pts {
				delete(s.state.channels, k)
			}
		}
	})
	return nil
}

// flushState writes the pending state now. This is safe even after the
// journal failed: setters refuse from then on, so what is pending covers
// journaled updates only.
func (s *Store) flushState() error {
	s.state.mu.Lock()
	dirty := len(s.state.users) > 0 || len(s.state.channels) > 0
	s.state.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := s.db.Update(s.flushStateTx); err != nil {
		return fmt.Errorf("flush updates state: %w", err)
	}
	return nil
}

func (s *Store) flushStateLoop() {
	defer close(s.flushDone)
	t := time.NewTicker(stateFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopFlush:
			return
		case <-t.C:
			_ = s.flushState()
		}
	}
}

var _ updates.StateStorage = (*StateStorage)(nil)

// UpdateState returns the updates state storage.
func (s *Store) UpdateState() *StateStorage { return &StateStorage{s: s} }

// errNoState is what gotd expects when a partial setter runs before SetState.
var errNoState = errors.New("updates state not found")

func encodeState(st updates.State) []byte {
	var e encoder
	e.u64(uint64(int64(st.Pts)))
	e.u64(uint64(int64(st.Qts)))
	e.u64(uint64(int64(st.Date)))
	e.u64(uint64(int64(st.Seq)))
	return sealed(e.b)
}

func decodeState(v []byte) (updates.State, error) {
	payload, err := unseal(v)
	if err != nil {
		return updates.State{}, err
	}
	d := decoder{b: payload}
	st := updates.State{Pts: int(int64(d.u64())), Qts: int(int64(d.u64())), Date: int(int64(d.u64())), Seq: int(int64(d.u64()))}
	return st, d.err
}

// GetState implements updates.StateStorage.
func (ss *StateStorage) GetState(ctx context.Context, userID int64) (st updates.State, found bool, err error) {
	ss.s.state.mu.Lock()
	st, found = ss.s.state.users[userID]
	ss.s.state.mu.Unlock()
	if found {
		return st, true, nil
	}
	err = ss.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketState).Get(i64key(userID))
		if v == nil {
			return nil
		}
		st, err = decodeState(v)
		if err != nil {
			return ss.s.corrupt(fmt.Sprintf("updates_state/%d", userID), err)
		}
		found = true
		return nil
	})
	if err != nil {
		return updates.State{}, false, fmt.Errorf("get updates state: %w", err)
	}
	return st, found, nil
}

// SetState implements updates.StateStorage.
func (ss *StateStorage) SetState(ctx context.Context, userID int64, st updates.State) error {
	if err := ss.s.journal.Failed(); err != nil {
		return fmt.Errorf("updates state set state refused: %w", err)
	}
	ss.s.state.mu.Lock()
	if ss.s.state.users == nil {
		ss.s.state.users = map[int64]updates.State{}
	}
	ss.s.state.users[userID] = st
	ss.s.state.mu.Unlock()
	return nil
}

// modify applies fn to the existing state; gotd requires an error when none exists.
func (ss *StateStorage) modify(what string, userID int64, fn func(*updates.State)) error {
	if err := ss.s.journal.Failed(); err != nil {
		return fmt.Errorf("updates state %s refused: %w", what, err)
	}
	o := &ss.s.state
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.users[userID]
	if !ok {
		err := ss.s.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketState).Get(i64key(userID))
			if v == nil {
				return errNoState
			}
			var err error
			if st, err = decodeState(v); err != nil {
				return ss.s.corrupt(fmt.Sprintf("updates_state/%d", userID), err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("updates state %s: %w", what, err)
		}
	}
	fn(&st)
	if o.users == nil {
		o.users = map[int64]updates.State{}
	}
	o.users[userID] = st
	return nil
}

func (ss *StateStorage) update(what string, fn func(tx *bolt.Tx) error) error {
	if err := ss.s.journal.Failed(); err != nil {
		return fmt.Errorf("updates state %s refused: %w", what, err)
	}
	if err := ss.s.db.Update(fn); err != nil {
		return fmt.Errorf("updates state %s: %w", what, err)
	}
	return nil
}

// SetPts implements updates.StateStorage.
func (ss *StateStorage) SetPts(ctx context.Context, userID int64, pts int) error {
	return ss.modify("set pts", userID, func(st *updates.State) { st.Pts = pts })
}

// SetQts implements updates.StateStorage.
func (ss *StateStorage) SetQts(ctx context.Context, userID int64, qts int) error {
	return ss.modify("set qts", userID, func(st *updates.State) { st.Qts = qts })
}

// SetDate implements updates.StateStorage.
func (ss *StateStorage) SetDate(ctx context.Context, userID int64, date int) error {
	return ss.modify("set date", userID, func(st *updates.State) { st.Date = date })
}

// SetSeq implements updates.StateStorage.
func (ss *StateStorage) SetSeq(ctx context.Context, userID int64, seq int) error {
	return ss.modify("set seq", userID, func(st *updates.State) { st.Seq = seq })
}

// SetDateSeq implements updates.StateStorage.
func (ss *StateStorage) SetDateSeq(ctx context.Context, userID int64, date, seq int) error {
	return ss.modify("set date and seq", userID, func(st *updates.State) { st.Date, st.Seq = date, seq })
}

// GetChannelPts implements updates.StateStorage.
func (ss *StateStorage) GetChannelPts(ctx context.Context, userID, channelID int64) (pts int, found bool, err error) {
	ss.s.state.mu.Lock()
	pts, found = ss.s.state.channels[[2]int64{userID, channelID}]
	ss.s.state.mu.Unlock()
	if found {
		return pts, true, nil
	}
	err = ss.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketChannelPts).Get(pairKey(userID, channelID))
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return ss.s.corrupt(fmt.Sprintf("channel_pts/%d/%d", userID, channelID), fmt.Errorf("bad length %d", len(v)))
		}
		pts, found = int(int64(beU64(v))), true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("get channel pts: %w", err)
	}
	return pts, found, nil
}

// SetChannelPts implements updates.StateStorage.
func (ss *StateStorage) SetChannelPts(ctx context.Context, userID, channelID int64, pts int) error {
	if err := ss.s.journal.Failed(); err != nil {
		return fmt.Errorf("updates state set channel pts refused: %w", err)
	}
	ss.s.state.mu.Lock()
	if ss.s.state.channels == nil {
		ss.s.state.channels = map[[2]int64]int{}
	}
	ss.s.state.channels[[2]int64{userID, channelID}] = pts
	ss.s.state.mu.Unlock()
	return nil
}

// ForEachChannels implements updates.StateStorage. f runs outside the
// transaction, so it may call back into the store.
func (ss *StateStorage) ForEachChannels(ctx context.Context, userID int64, f func(ctx context.Context, channelID int64, pts int) error) error {
	type channel struct {
		id  int64
		pts int
	}
	var channels []channel
	err := ss.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketChannelPts).Cursor()
		prefix := i64key(userID)
		for k, v := c.Seek(prefix); k != nil && len(k) == 16 && string(k[:8]) == string(prefix); k, v = c.Next() {
			if len(v) != 8 {
				return ss.s.corrupt(fmt.Sprintf("channel_pts/%d", userID), fmt.Errorf("bad length %d", len(v)))
			}
			channels = append(channels, channel{id: int64(beU64(k[8:])), pts: int(int64(beU64(v)))})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list channel pts: %w", err)
	}
	seen := map[int64]int{}
	for i, ch := range channels {
		seen[ch.id] = i
	}
	ss.s.state.mu.Lock()
	for k, pts := range ss.s.state.channels {
		if k[0] != userID {
			continue
		}
		if i, ok := seen[k[1]]; ok {
			channels[i].pts = pts
		} else {
			channels = append(channels, channel{id: k[1], pts: pts})
		}
	}
	ss.s.state.mu.Unlock()
	for _, ch := range channels {
		if err := f(ctx, ch.id, ch.pts); err != nil {
			return err
		}
	}
	return nil
}

// AccessHashes persists the access hashes the updates manager learns and
// implements updates.ChannelAccessHasher and updates.UserAccessHasher.
// Without them channels are dropped after a restart.
type AccessHashes struct{ s *Store }

var (
	_ updates.ChannelAccessHasher = (*AccessHashes)(nil)
	_ updates.UserAccessHasher    = (*AccessHashes)(nil)
)

// AccessHashes returns the persistent access hasher.
func (s *Store) AccessHashes() *AccessHashes { return &AccessHashes{s: s} }

func (a *AccessHashes) set(bucket []byte, self, target, hash int64) error {
	err := a.s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put(pairKey(self, target), u64(uint64(hash)))
	})
	if err != nil {
		return fmt.Errorf("set %s access hash: %w", bucket, err)
	}
	return nil
}

func (a *AccessHashes) get(bucket []byte, self, target int64) (hash int64, found bool, err error) {
	err = a.s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(pairKey(self, target))
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return a.s.corrupt(fmt.Sprintf("%s/%d/%d", bucket, self, target), fmt.Errorf("bad length %d", len(v)))
		}
		hash, found = int64(beU64(v)), true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("get %s access hash: %w", bucket, err)
	}
	return hash, found, nil
}

// SetChannelAccessHash implements updates.ChannelAccessHasher.
func (a *AccessHashes) SetChannelAccessHash(ctx context.Context, userID, channelID, accessHash int64) error {
	return a.set(bucketAccessChannel, userID, channelID, accessHash)
}

// GetChannelAccessHash implements updates.ChannelAccessHasher.
func (a *AccessHashes) GetChannelAccessHash(ctx context.Context, userID, channelID int64) (int64, bool, error) {
	return a.get(bucketAccessChannel, userID, channelID)
}

// SetUserAccessHash implements updates.UserAccessHasher.
func (a *AccessHashes) SetUserAccessHash(ctx context.Context, userID, targetUserID, accessHash int64) error {
	return a.set(bucketAccessUser, userID, targetUserID, accessHash)
}

// GetUserAccessHash implements updates.UserAccessHasher.
func (a *AccessHashes) GetUserAccessHash(ctx context.Context, userID, targetUserID int64) (int64, bool, error) {
	return a.get(bucketAccessUser, userID, targetUserID)
}
