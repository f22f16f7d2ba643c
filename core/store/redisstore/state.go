package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram/updates"
	"github.com/redis/go-redis/v9"

	"github.com/tgrunner/tgrunner/core/store"
)

func (s *Store) sessionKey() string               { return s.p + "session" }
func (s *Store) usersKey() string                 { return s.p + "users" }
func (s *Store) stateKey(userID int64) string     { return s.p + "state:" + itoa(userID) }
func (s *Store) chanPtsKey(userID int64) string   { return s.p + "chanpts:" + itoa(userID) }
func (s *Store) ahChannelKey(userID int64) string { return s.p + "ah:c:" + itoa(userID) }
func (s *Store) ahUserKey(userID int64) string    { return s.p + "ah:u:" + itoa(userID) }

// SessionStorage keeps the MTProto session; writes are fenced.
type SessionStorage struct{ s *Store }

// Session implements store.Backend.
func (s *Store) Session() store.SessionStore { return &SessionStorage{s: s} }

// LoadSession returns the stored session or session.ErrNotFound.
func (ss *SessionStorage) LoadSession(ctx context.Context) ([]byte, error) {
	v, err := ss.s.rdb.Get(ctx, ss.s.sessionKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	return v, nil
}

// StoreSession replaces the session atomically.
func (ss *SessionStorage) StoreSession(ctx context.Context, data []byte) error {
	b := ss.s.newBatch()
	b.call("SET", ss.s.sessionKey(), data)
	if err := ss.s.commit(ctx, b); err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

// DeleteSession wipes the session; a missing one is not an error.
func (ss *SessionStorage) DeleteSession(ctx context.Context) error {
	b := ss.s.newBatch()
	b.call("DEL", ss.s.sessionKey())
	if err := ss.s.commit(ctx, b); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// StateStorage persists the updates state and implements gotd's
// updates.StateStorage. Like the bbolt store, every setter refuses once the
// journal failed, so getDifference replays what the journal may have missed.
//
// Writes are held in memory and reach Redis inside the next journal Append's
// script (or within StateFlushInterval, or at Close), fenced like every
// write. The manager only moves the state after the handler has journaled
// the updates it covers, so the state in Redis can lag the journal, never
// lead it: a crash replays a few updates, which the journal's dedup keys
// drop. One update then costs one round trip, not one per setter.
type StateStorage struct{ s *Store }

var _ updates.StateStorage = (*StateStorage)(nil)

// UpdateState implements store.Backend.
func (s *Store) UpdateState() updates.StateStorage { return &StateStorage{s: s} }

// stateOverlay is the updates state not yet in Redis, and what this store
// knows is there: the lease holder is the only writer, so the partial
// setters need not read Redis on every update.
type stateOverlay struct {
	mu       sync.Mutex
	users    map[int64]updates.State // pending
	channels map[[2]int64]int        // pending
	saved    map[int64]updates.State // in Redis, as this store last wrote or read it

	// writing is held while a state write is on its way to Redis, so two
	// writes of different snapshots cannot reach Redis out of order.
	writing sync.Mutex
}

// defaultStateFlushInterval bounds how long a state write may stay in
// memory when no update arrives to carry it (bbolt's is the same).
const defaultStateFlushInterval = time.Second

// Cap on one HSET's field/value pairs (Lua's unpack has a stack limit).
const maxStatePairs = 256

func (o *stateOverlay) dirty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.users) > 0 || len(o.channels) > 0
}

func (o *stateOverlay) snapshot() (map[int64]updates.State, map[[2]int64]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.users), maps.Clone(o.channels)
}

// written records that a snapshot reached Redis; what changed since stays
// pending.
func (o *stateOverlay) written(users map[int64]updates.State, channels map[[2]int64]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, st := range users {
		if o.saved == nil {
			o.saved = map[int64]updates.State{}
		}
		o.saved[id] = st
		if o.users[id] == st {
			delete(o.users, id)
		}
	}
	for k, pts := range channels {
		if o.channels[k] == pts {
			delete(o.channels, k)
		}
	}
}

// stateOp is one command of a state write: cmd key args...
type stateOp struct {
	cmd, key string
	args     []any
}

// stateOps turns a snapshot into the commands that write it.
func (s *Store) stateOps(users map[int64]updates.State, channels map[[2]int64]int) []stateOp {
	var ops []stateOp
	var ids []any
	seen := map[int64]bool{}
	addUser := func(id int64) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for id, st := range users {
		ops = append(ops, stateOp{"HSET", s.stateKey(id), []any{"pts", st.Pts, "qts", st.Qts, "date", st.Date, "seq", st.Seq}})
		addUser(id)
	}
	byUser := map[int64][]any{}
	for k, pts := range channels {
		byUser[k[0]] = append(byUser[k[0]], k[1], pts)
		addUser(k[0])
	}
	for id, args := range byUser {
		for len(args) > 0 {
			n := min(len(args), 2*maxStatePairs)
			ops = append(ops, stateOp{"HSET", s.chanPtsKey(id), args[:n]})
			args = args[n:]
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), maxStatePairs)
		ops = append(ops, stateOp{"SADD", s.usersKey(), ids[:n]})
		ids = ids[n:]
	}
	return ops
}

// flushState writes the pending state now, in its own fenced script. This
// is safe even after the journal failed: setters refuse from then on, so
// what is pending covers journaled updates only. A fenced refusal fails
// the journal: this writer lost the account and must not advance anything.
func (s *Store) flushState(ctx context.Context) error {
	if !s.state.dirty() {
		return nil
	}
	s.state.writing.Lock()
	defer s.state.writing.Unlock()
	users, channels := s.state.snapshot()
	if len(users) == 0 && len(channels) == 0 {
		return nil
	}
	b := s.newBatch()
	for _, op := range s.stateOps(users, channels) {
		b.call(op.cmd, op.key, op.args...)
	}
	if err := s.commit(ctx, b); err != nil {
		if errors.Is(err, ErrFenced) {
			s.journal.Fail(fmt.Errorf("updates state flush: %w", err))
		}
		return fmt.Errorf("flush updates state: %w", err)
	}
	s.state.written(users, channels)
	return nil
}

func (s *Store) flushStateLoop(ctx context.Context) {
	defer close(s.flushDone)
	t := time.NewTicker(s.opts.StateFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.flushState(ctx)
		}
	}
}

// refuse is why a setter may not change the state now, or nil.
func (ss *StateStorage) refuse(what string) error {
	if err := ss.s.journal.Failed(); err != nil {
		return fmt.Errorf("updates state %s refused: %w", what, err)
	}
	if ss.s.fence == nil {
		return fmt.Errorf("updates state %s: %w", what, ErrFenced)
	}
	return nil
}

// readState reads userID's state from Redis.
func (s *Store) readState(ctx context.Context, userID int64) (updates.State, bool, error) {
	vals, err := s.rdb.HMGet(ctx, s.stateKey(userID), "pts", "qts", "date", "seq").Result()
	if err != nil {
		return updates.State{}, false, err
	}
	var n [4]int
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return updates.State{}, false, nil
		}
		if n[i], err = strconv.Atoi(str); err != nil {
			return updates.State{}, false, fmt.Errorf("field %d: %w", i, err)
		}
	}
	return updates.State{Pts: n[0], Qts: n[1], Date: n[2], Seq: n[3]}, true, nil
}

// GetState implements updates.StateStorage. Pending writes count.
func (ss *StateStorage) GetState(ctx context.Context, userID int64) (updates.State, bool, error) {
	o := &ss.s.state
	o.mu.Lock()
	st, found := o.users[userID]
	if !found {
		st, found = o.saved[userID]
	}
	o.mu.Unlock()
	if found {
		return st, true, nil
	}
	st, found, err := ss.s.readState(ctx, userID)
	if err != nil {
		return updates.State{}, false, fmt.Errorf("get updates state: %w", err)
	}
	return st, found, nil
}

// SetState implements updates.StateStorage.
func (ss *StateStorage) SetState(ctx context.Context, userID int64, st updates.State) error {
	if err := ss.refuse("set state"); err != nil {
		return err
	}
	o := &ss.s.state
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.users == nil {
		o.users = map[int64]updates.State{}
	}
	o.users[userID] = st
	return nil
}

// modify applies fn to the existing state; gotd requires an error when none exists.
func (ss *StateStorage) modify(ctx context.Context, what string, userID int64, fn func(*updates.State)) error {
	if err := ss.refuse(what); err != nil {
		return err
	}
	o := &ss.s.state
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.users[userID]
	if !ok {
		st, ok = o.saved[userID]
	}
	if !ok {
		var err error
		if st, ok, err = ss.s.readState(ctx, userID); err != nil {
			return fmt.Errorf("updates state %s: %w", what, err)
		}
		if !ok {
			return fmt.Errorf("updates state %s: %w", what, errNoState)
		}
		if o.saved == nil {
			o.saved = map[int64]updates.State{}
		}
		o.saved[userID] = st
	}
	fn(&st)
	if o.users == nil {
		o.users = map[int64]updates.State{}
	}
	o.users[userID] = st
	return nil
}

// SetPts implements updates.StateStorage.
func (ss *StateStorage) SetPts(ctx context.Context, userID int64, pts int) error {
	return ss.modify(ctx, "set pts", userID, func(st *updates.State) { st.Pts = pts })
}

// SetQts implements updates.StateStorage.
func (ss *StateStorage) SetQts(ctx context.Context, userID int64, qts int) error {
	return ss.modify(ctx, "set qts", userID, func(st *updates.State) { st.Qts = qts })
}

// SetDate implements updates.StateStorage.
func (ss *StateStorage) SetDate(ctx context.Context, userID int64, date int) error {
	return ss.modify(ctx, "set date", userID, func(st *updates.State) { st.Date = date })
}

// SetSeq implements updates.StateStorage.
func (ss *StateStorage) SetSeq(ctx context.Context, userID int64, seq int) error {
	return ss.modify(ctx, "set seq", userID, func(st *updates.State) { st.Seq = seq })
}

// SetDateSeq implements updates.StateStorage.
func (ss *StateStorage) SetDateSeq(ctx context.Context, userID int64, date, seq int) error {
	return ss.modify(ctx, "set date and seq", userID, func(st *updates.State) { st.Date, st.Seq = date, seq })
}

// GetChannelPts implements updates.StateStorage. Pending writes count.
func (ss *StateStorage) GetChannelPts(ctx context.Context, userID, channelID int64) (int, bool, error) {
	o := &ss.s.state
	o.mu.Lock()
	pts, found := o.channels[[2]int64{userID, channelID}]
	o.mu.Unlock()
	if found {
		return pts, true, nil
	}
	pts, err := ss.s.rdb.HGet(ctx, ss.s.chanPtsKey(userID), itoa(channelID)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("get channel pts: %w", err)
	}
	return pts, true, nil
}

// SetChannelPts implements updates.StateStorage.
func (ss *StateStorage) SetChannelPts(ctx context.Context, userID, channelID int64, pts int) error {
	if err := ss.refuse("set channel pts"); err != nil {
		return err
	}
	o := &ss.s.state
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.channels == nil {
		o.channels = map[[2]int64]int{}
	}
	o.channels[[2]int64{userID, channelID}] = pts
	return nil
}

// ForEachChannels implements updates.StateStorage; pending writes count.
// f runs after the read, so it may call back into the store.
func (ss *StateStorage) ForEachChannels(ctx context.Context, userID int64, f func(ctx context.Context, channelID int64, pts int) error) error {
	all, err := ss.s.rdb.HGetAll(ctx, ss.s.chanPtsKey(userID)).Result()
	if err != nil {
		return fmt.Errorf("list channel pts: %w", err)
	}
	chans := make(map[int64]int, len(all))
	for k, v := range all {
		id, err1 := strconv.ParseInt(k, 10, 64)
		pts, err2 := strconv.Atoi(v)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("list channel pts: bad record %q=%q", k, v)
		}
		chans[id] = pts
	}
	o := &ss.s.state
	o.mu.Lock()
	for k, pts := range o.channels {
		if k[0] == userID {
			chans[k[1]] = pts
		}
	}
	o.mu.Unlock()
	for id, pts := range chans {
		if err := f(ctx, id, pts); err != nil {
			return err
		}
	}
	return nil
}

// AccessHashes persists channel and user access hashes.
type AccessHashes struct{ s *Store }

// AccessHashes implements store.Backend.
func (s *Store) AccessHashes() store.AccessHasher { return &AccessHashes{s: s} }

func (a *AccessHashes) set(ctx context.Context, what, key string, userID, target, hash int64) error {
	b := a.s.newBatch()
	b.call("HSET", key, target, hash)
	b.call("SADD", a.s.usersKey(), userID)
	if err := a.s.commit(ctx, b); err != nil {
		return fmt.Errorf("set %s access hash: %w", what, err)
	}
	return nil
}

func (a *AccessHashes) get(ctx context.Context, what, key string, target int64) (int64, bool, error) {
	v, err := a.s.rdb.HGet(ctx, key, itoa(target)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("get %s access hash: %w", what, err)
	}
	return v, true, nil
}

// SetChannelAccessHash implements updates.ChannelAccessHasher.
func (a *AccessHashes) SetChannelAccessHash(ctx context.Context, userID, channelID, accessHash int64) error {
	return a.set(ctx, "channel", a.s.ahChannelKey(userID), userID, channelID, accessHash)
}

// GetChannelAccessHash implements updates.ChannelAccessHasher.
func (a *AccessHashes) GetChannelAccessHash(ctx context.Context, userID, channelID int64) (int64, bool, error) {
	return a.get(ctx, "channel", a.s.ahChannelKey(userID), channelID)
}

// SetUserAccessHash implements updates.UserAccessHasher.
func (a *AccessHashes) SetUserAccessHash(ctx context.Context, userID, targetUserID, accessHash int64) error {
	return a.set(ctx, "user", a.s.ahUserKey(userID), userID, targetUserID, accessHash)
}

// GetUserAccessHash implements updates.UserAccessHasher.
func (a *AccessHashes) GetUserAccessHash(ctx context.Context, userID, targetUserID int64) (int64, bool, error) {
	return a.get(ctx, "user", a.s.ahUserKey(userID), targetUserID)
}
