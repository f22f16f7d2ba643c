package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

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

// StateStorage persists the updates state. Like the bbolt store, every
// setter refuses once the journal failed, so getDifference replays what the
// journal may have missed.
type StateStorage struct{ s *Store }

var _ updates.StateStorage = (*StateStorage)(nil)

// UpdateState implements store.Backend.
func (s *Store) UpdateState() updates.StateStorage { return &StateStorage{s: s} }

func (ss *StateStorage) write(ctx context.Context, what string, b *batch) error {
	if err := ss.s.journal.Failed(); err != nil {
		return fmt.Errorf("updates state %s refused: %w", what, err)
	}
	if err := ss.s.commit(ctx, b); err != nil {
		return fmt.Errorf("updates state %s: %w", what, err)
	}
	return nil
}

// GetState implements updates.StateStorage.
func (ss *StateStorage) GetState(ctx context.Context, userID int64) (updates.State, bool, error) {
	vals, err := ss.s.rdb.HMGet(ctx, ss.s.stateKey(userID), "pts", "qts", "date", "seq").Result()
	if err != nil {
		return updates.State{}, false, fmt.Errorf("get updates state: %w", err)
	}
	var n [4]int
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return updates.State{}, false, nil
		}
		if n[i], err = strconv.Atoi(str); err != nil {
			return updates.State{}, false, fmt.Errorf("get updates state: field %d: %w", i, err)
		}
	}
	return updates.State{Pts: n[0], Qts: n[1], Date: n[2], Seq: n[3]}, true, nil
}

// SetState implements updates.StateStorage.
func (ss *StateStorage) SetState(ctx context.Context, userID int64, st updates.State) error {
	b := ss.s.newBatch()
	b.call("HSET", ss.s.stateKey(userID), "pts", st.Pts, "qts", st.Qts, "date", st.Date, "seq", st.Seq)
	b.call("SADD", ss.s.usersKey(), userID)
	return ss.write(ctx, "set state", b)
}

// set changes fields of an existing state; gotd expects an error if none.
func (ss *StateStorage) set(ctx context.Context, what string, userID int64, fields ...any) error {
	b := ss.s.newBatch()
	b.op(modeIfExists, 2, ss.s.stateKey(userID), append([]any{"HSET"}, fields...)...)
	return ss.write(ctx, what, b)
}

// SetPts implements updates.StateStorage.
func (ss *StateStorage) SetPts(ctx context.Context, userID int64, pts int) error {
	return ss.set(ctx, "set pts", userID, "pts", pts)
}

// SetQts implements updates.StateStorage.
func (ss *StateStorage) SetQts(ctx context.Context, userID int64, qts int) error {
	return ss.set(ctx, "set qts", userID, "qts", qts)
}

// SetDate implements updates.StateStorage.
func (ss *StateStorage) SetDate(ctx context.Context, userID int64, date int) error {
	return ss.set(ctx, "set date", userID, "date", date)
}

// SetSeq implements updates.StateStorage.
func (ss *StateStorage) SetSeq(ctx context.Context, userID int64, seq int) error {
	return ss.set(ctx, "set seq", userID, "seq", seq)
}

// SetDateSeq implements updates.StateStorage.
func (ss *StateStorage) SetDateSeq(ctx context.Context, userID int64, date, seq int) error {
	return ss.set(ctx, "set date and seq", userID, "date", date, "seq", seq)
}

// GetChannelPts implements updates.StateStorage.
func (ss *StateStorage) GetChannelPts(ctx context.Context, userID, channelID int64) (int, bool, error) {
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
	b := ss.s.newBatch()
	b.call("HSET", ss.s.chanPtsKey(userID), channelID, pts)
	b.call("SADD", ss.s.usersKey(), userID)
	return ss.write(ctx, "set channel pts", b)
}

// ForEachChannels implements updates.StateStorage.
func (ss *StateStorage) ForEachChannels(ctx context.Context, userID int64, f func(ctx context.Context, channelID int64, pts int) error) error {
	all, err := ss.s.rdb.HGetAll(ctx, ss.s.chanPtsKey(userID)).Result()
	if err != nil {
		return fmt.Errorf("list channel pts: %w", err)
	}
	for k, v := range all {
		id, err1 := strconv.ParseInt(k, 10, 64)
		pts, err2 := strconv.Atoi(v)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("list channel pts: bad record %q=%q", k, v)
		}
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
