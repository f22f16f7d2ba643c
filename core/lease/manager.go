package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	// Accounts is every configured account; each is run by exactly one
	// manager among all processes sharing the Redis.
	Accounts []string
	// Start runs one account while its lease is held. It gets the lease
	// (for fencing the storage) and must return promptly once ctx is done:
	// ctx ends the moment the lease is lost or the manager stops.
	Start func(ctx context.Context, lease *Lease) error
	// Stop, if set, is called after Start returned, with the cause: nil on
	// shutdown, an error wrapping ErrLost, or Start's error.
	Stop func(account string, cause error)
	// Interval between acquisition rounds. Default TTL/3.
	Interval time.Duration
	// Greedy takes every free account. By default a manager takes at most
	// its fair share, ceil(accounts / live managers), so accounts spread over
	// the processes; a dead manager drops out of the count after one TTL.
	Greedy bool
	Log    *zap.Logger
}

// Manager keeps this process holding its share of the configured accounts:
// it acquires free leases periodically, so when another runner dies its
// accounts move here within TTL plus one interval.
type Manager struct {
	l    *Locker
	opts ManagerOptions

	mu      sync.Mutex
	running map[string]*running
	wg      sync.WaitGroup
}

type running struct {
	lease  *Lease
	cancel context.CancelFunc
}

// NewManager checks opts and returns a Manager; Run starts it.
func NewManager(l *Locker, opts ManagerOptions) (*Manager, error) {
	if opts.Start == nil {
		return nil, errors.New("lease manager: Start is required")
	}
	if len(opts.Accounts) == 0 {
		return nil, errors.New("lease manager: no accounts")
	}
	seen := map[string]bool{}
	for _, a := range opts.Accounts {
		if err := ValidAccount(a); err != nil {
			return nil, fmt.Errorf("lease manager: %w", err)
		}
		if seen[a] {
			return nil, fmt.Errorf("lease manager: account %q listed twice", a)
		}
		seen[a] = true
	}
	if opts.Interval <= 0 {
		opts.Interval = l.opts.TTL / 3
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	opts.Accounts = slices.Clone(opts.Accounts)
	return &Manager{l: l, opts: opts, running: map[string]*running{}}, nil
}

// Held lists the accounts this manager runs now, sorted.
func (m *Manager) Held() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.running))
	for a := range m.running {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

var memberScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
`)

func (m *Manager) membersKey() string { return m.l.opts.Prefix + ":managers" }

// share heartbeats this manager and returns how many accounts it may hold.
func (m *Manager) share(ctx context.Context) int {
	n := len(m.opts.Accounts)
	if m.opts.Greedy {
		return n
	}
	live, err := memberScript.Run(ctx, m.l.rdb, []string{m.membersKey()}, m.l.opts.Holder, m.l.opts.TTL.Milliseconds()).Int()
	if err != nil || live < 1 {
		return n
	}
	return (n + live - 1) / live
}

// Run acquires and runs accounts until ctx ends, then stops them all,
// releases their leases and returns ctx's error.
func (m *Manager) Run(ctx context.Context) error {
	// Start at a per-holder offset so managers do not all race for the
	// same account first.
	h := fnv.New32a()
	_, _ = h.Write([]byte(m.l.opts.Holder))
	offset := int(h.Sum32() % uint32(len(m.opts.Accounts)))

	runCtx, cancelAll := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		cancelAll()
		m.wg.Wait()
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.l.rdb.ZRem(cctx, m.membersKey(), m.l.opts.Holder).Err()
	}()

	tick := time.NewTicker(m.opts.Interval)
	defer tick.Stop()
	if !m.opts.Greedy {
		// Register, then let managers started together see each other
		// before anyone takes its share.
		m.share(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	for {
		m.round(ctx, runCtx, offset)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (m *Manager) round(ctx, runCtx context.Context, offset int) {
	share := m.share(ctx)
	n := len(m.opts.Accounts)
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return
		}
		account := m.opts.Accounts[(offset+i)%n]
		m.mu.Lock()
		_, busy := m.running[account]
		held := len(m.running)
		m.mu.Unlock()
		if busy {
			continue
		}
		if held >= share {
			return
		}
		le, err := m.l.Acquire(ctx, account)
		var heldErr *HeldError
		switch {
		case errors.As(err, &heldErr):
			continue
		case err != nil:
			m.opts.Log.Warn("Could not acquire account lease", zap.String("account", account), zap.Error(err))
			continue
		}
		m.start(runCtx, le)
	}
}

func (m *Manager) start(parent context.Context, le *Lease) {
	actx, cancel := context.WithCancel(parent)
	m.mu.Lock()
	m.running[le.Account()] = &running{lease: le, cancel: cancel}
	m.mu.Unlock()
	m.opts.Log.Info("Acquired account lease", zap.String("account", le.Account()), zap.Uint64("token", le.Token()))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		go func() {
			select {
			case <-le.Lost():
				cancel()
			case <-actx.Done():
			}
		}()
		err := m.opts.Start(actx, le)
		cancel()
		cause := le.Err()
		if cause == nil {
			cause = err
		}
		if errors.Is(err, context.Canceled) && parent.Err() != nil && le.Err() == nil {
			cause = nil
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if rerr := le.Release(rctx); rerr != nil {
			m.opts.Log.Warn("Could not release account lease", zap.String("account", le.Account()), zap.Error(rerr))
		}
		rcancel()
		if cause != nil {
			m.opts.Log.Warn("Account stopped", zap.String("account", le.Account()), zap.Error(cause))
		}
		if m.opts.Stop != nil {
			m.opts.Stop(le.Account(), cause)
		}
		m.mu.Lock()
		delete(m.running, le.Account())
		m.mu.Unlock()
	}()
}
