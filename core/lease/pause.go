package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pauses is the fleet's pause switch, one per account: a key outside any
// lease (tgr:{A}:pause) that any runner, or an operator with redis-cli, may
// set. The runner holding the account holds every write while it is set,
// so `runner pause` on one machine stops an account another machine runs,
// and the pause outlives restarts and lease moves until someone clears it.
type Pauses struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewPauses returns the pause switches under prefix ("" for the default).
func NewPauses(rdb redis.UniversalClient, prefix string) *Pauses {
	return &Pauses{rdb: rdb, prefix: prefix}
}

// PauseKey is the pause switch of account.
func PauseKey(prefix, account string) string { return KeyPrefix(prefix, account) + "pause" }

// PauseState is what the switch holds while set.
type PauseState struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Set turns account's switch on with reason; an account already paused
// keeps its first time.
func (p *Pauses) Set(ctx context.Context, account, reason string) error {
	if err := ValidAccount(account); err != nil {
		return err
	}
	cur, on, err := p.Get(ctx, account)
	if err != nil {
		return err
	}
	st := PauseState{Reason: reason, Since: time.Now().UTC()}
	if on {
		st.Since = cur.Since
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := p.rdb.Set(ctx, PauseKey(p.prefix, account), b, 0).Err(); err != nil {
		return fmt.Errorf("set the pause switch of %s: %w", account, err)
	}
	return nil
}

// Clear turns account's switch off; it reports whether it was on.
func (p *Pauses) Clear(ctx context.Context, account string) (bool, error) {
	n, err := p.rdb.Del(ctx, PauseKey(p.prefix, account)).Result()
	if err != nil {
		return false, fmt.Errorf("clear the pause switch of %s: %w", account, err)
	}
	return n > 0, nil
}

// Get reads account's switch.
func (p *Pauses) Get(ctx context.Context, account string) (PauseState, bool, error) {
	b, err := p.rdb.Get(ctx, PauseKey(p.prefix, account)).Bytes()
	if errors.Is(err, redis.Nil) {
		return PauseState{}, false, nil
	}
	if err != nil {
		return PauseState{}, false, fmt.Errorf("read the pause switch of %s: %w", account, err)
	}
	var st PauseState
	if err := json.Unmarshal(b, &st); err != nil {
		// Set by hand (redis-cli SET ... "reason"): still a pause.
		st = PauseState{Reason: string(b)}
	}
	if st.Reason == "" {
		st.Reason = "paused fleet-wide"
	}
	return st, true, nil
}
