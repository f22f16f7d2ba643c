package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ErrRebalanced is wrapped by the Stop cause of an account this manager
// handed over to a manager holding fewer accounts: a handover, not a
// failure. Start had returned before the lease was released.
var ErrRebalanced = errors.New("account handed over to rebalance the runners")

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	// Accounts is every configured account; each is run by exactly one
	// manager among all processes sharing the Redis.
	Accounts []string
	// Start runs one account while its lease is held. It gets the lease
	// (for fencing the storage) and must return promptly once ctx is done:
	// ctx ends the moment the lease is lost, the manager stops or the
	// account is handed over to rebalance the runners.
	Start func(ctx context.Context, lease *Lease) error
	// Stop, if set, is called after Start returned, with the cause: nil on
	// shutdown, an error wrapping ErrLost, an error wrapping ErrRebalanced
	// when the account was handed over (and Start returned nil or ctx's
	// error), or Start's error.
	Stop func(account string, cause error)
	// Interval between acquisition rounds. Default TTL/3.
	Interval time.Duration
	// Greedy takes every free account. By default a manager takes at most
	// its fair share, ceil(accounts / live managers), so accounts spread over
	// the processes; a dead manager drops out of the count after one TTL.
	// A Greedy manager never hands accounts over and is not counted.
	Greedy bool
	// NoRebalance keeps every account a manager holds until it stops or
	// loses the lease. By default a manager holding two or more accounts
	// more than another live manager hands one over (see Manager).
	NoRebalance bool
	Log         *zap.Logger
}

// Manager keeps this process holding its share of the configured accounts:
// it acquires free leases periodically, so when another runner dies its
// accounts move here within TTL plus one interval.
//
// Rebalancing: when a manager holds at least two accounts more than the
// live manager with the fewest (counting accounts reserved for it), and
// the set of live managers and that imbalance have both lasted one TTL,
// it hands over one account per round: the one it acquired most recently
// (ties: the greatest name). It cancels that account's Start, waits for
// Start to return, then deletes the lease key (only if still its own) and
// reserves the account for the manager with the fewest accounts (ties:
// the smallest name) for one TTL, so the account goes there and not to
// a manager that would merely swap places. Counts end within one of each
// other: 5 accounts over 3 managers settle at 2/2/1, 9 over 4 at 3/2/2/2.
type Manager struct {
	l    *Locker
	opts ManagerOptions

	mu      sync.Mutex
	running map[string]*running
	wg      sync.WaitGroup

	// Touched by Run's goroutine only.
	members         string    // live managers seen last round, joined
	membersSince    time.Time // when that set last changed
	imbalancedSince time.Time // zero while balanced
}

type running struct {
	lease    *Lease
	cancel   context.CancelFunc
	acquired time.Time
	handover *handover // set once chosen to hand over
}

type handover struct {
	to     string // the manager the account is reserved for
	reason string
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
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

func (m *Manager) membersKey() string { return m.l.opts.Prefix + ":managers" }

// share heartbeats this manager and returns how many accounts it may hold
// and the live managers (sorted; nil when unknown or Greedy).
func (m *Manager) share(ctx context.Context) (int, []string) {
	n := len(m.opts.Accounts)
	if m.opts.Greedy {
		return n, nil
	}
	members, err := memberScript.Run(ctx, m.l.rdb, []string{m.membersKey()}, m.l.opts.Holder, m.l.opts.TTL.Milliseconds()).StringSlice()
	if err != nil || len(members) < 1 {
		return n, nil
	}
	slices.Sort(members) // ZRANGE orders by heartbeat time
	return (n + len(members) - 1) / len(members), members
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
		_, members := m.share(ctx)
		m.members, m.membersSince = strings.Join(members, "\n"), time.Now()
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
	share, members := m.share(ctx)
	if !m.opts.Greedy && !m.opts.NoRebalance {
		m.rebalance(ctx, members)
	}
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
		if m.reservedForOther(ctx, account) {
			continue
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

// reservedForOther reports whether account was just handed over to
// another manager, which should get it rather than us.
func (m *Manager) reservedForOther(ctx context.Context, account string) bool {
	to, err := m.l.rdb.Get(ctx, HandoverKey(m.l.opts.Prefix, account)).Result()
	if err != nil {
		return false // none (redis.Nil), or Acquire will report the error
	}
	return to != m.l.opts.Holder
}

// rebalance hands over at most one account when this manager holds at
// least two more than the live manager with the fewest, once the set of
// managers and the imbalance have lasted one TTL (so a manager starting,
// restarting or flickering in and out of the count moves nothing).
func (m *Manager) rebalance(ctx context.Context, members []string) {
	now := time.Now()
	if set := strings.Join(members, "\n"); set != m.members {
		m.members, m.membersSince = set, now
	}
	settle := m.l.opts.TTL

	m.mu.Lock()
	mine := 0
	inFlight := false
	for _, r := range m.running {
		if r.handover != nil {
			inFlight = true
		} else {
			mine++
		}
	}
	m.mu.Unlock()
	n := len(m.opts.Accounts)
	if inFlight {
		return // the counts mean nothing until that account is free
	}
	// Holding at most floor(n/m), someone else holds too many, not us.
	if len(members) < 2 || mine <= n/len(members) {
		m.imbalancedSince = time.Time{}
		return
	}
	counts, err := m.holdings(ctx, members)
	if err != nil {
		m.opts.Log.Debug("Could not read who holds the accounts", zap.Error(err))
		return
	}
	target, fewest := "", 0
	for _, h := range members {
		if h == m.l.opts.Holder {
			continue
		}
		if c := counts[h]; target == "" || c < fewest {
			target, fewest = h, c
		}
	}
	if mine < fewest+2 {
		m.imbalancedSince = time.Time{}
		return
	}
	if m.imbalancedSince.IsZero() {
		m.imbalancedSince = now
	}
	if now.Sub(m.imbalancedSince) < settle || now.Sub(m.membersSince) < settle {
		return
	}

	shareText := strconv.Itoa((n + len(members) - 1) / len(members))
	if n%len(members) != 0 && n >= len(members) {
		shareText = strconv.Itoa(n/len(members)) + "-" + shareText
	}
	reason := fmt.Sprintf("holding %d, fair share %s of %d accounts over %d runners; %s holds %d",
		mine, shareText, n, len(members), target, fewest)

	m.mu.Lock()
	var pick string
	var pr *running
	for a, r := range m.running {
		if pr == nil || r.acquired.After(pr.acquired) || (r.acquired.Equal(pr.acquired) && a > pick) {
			pick, pr = a, r
		}
	}
	pr.handover = &handover{to: target, reason: reason}
	pr.cancel()
	m.mu.Unlock()
	m.opts.Log.Info("Rebalancing: handing account over", zap.String("account", pick), zap.String("to", target),
		zap.String("reason", reason))
}

// holdings counts the accounts each live manager holds or has reserved.
func (m *Manager) holdings(ctx context.Context, members []string) (map[string]int, error) {
	live := map[string]bool{}
	for _, h := range members {
		live[h] = true
	}
	pipe := m.l.rdb.Pipeline()
	leases := make([]*redis.StringCmd, len(m.opts.Accounts))
	reserved := make([]*redis.StringCmd, len(m.opts.Accounts))
	for i, a := range m.opts.Accounts {
		leases[i] = pipe.Get(ctx, Key(m.l.opts.Prefix, a))
		reserved[i] = pipe.Get(ctx, HandoverKey(m.l.opts.Prefix, a))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	counts := map[string]int{}
	for i := range m.opts.Accounts {
		v, lerr := leases[i].Result()
		to, rerr := reserved[i].Result()
		for _, err := range []error{lerr, rerr} {
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, err // an undercount could move an account for nothing
			}
		}
		h := to
		if lerr == nil {
			h = holderOf(v)
		}
		if live[h] {
			counts[h]++
		}
	}
	return counts, nil
}

func (m *Manager) start(parent context.Context, le *Lease) {
	actx, cancel := context.WithCancel(parent)
	r := &running{lease: le, cancel: cancel, acquired: time.Now()}
	m.mu.Lock()
	m.running[le.Account()] = r
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
		m.mu.Lock()
		ho := r.handover
		m.mu.Unlock()
		cause := le.Err()
		if cause == nil {
			cause = err
		}
		stoppedCleanly := err == nil || errors.Is(err, context.Canceled)
		switch {
		case le.Err() != nil:
		case ho != nil && stoppedCleanly:
			cause = fmt.Errorf("%w: account %s to %s: %s", ErrRebalanced, le.Account(), ho.to, ho.reason)
		case errors.Is(err, context.Canceled) && parent.Err() != nil:
			cause = nil
		}
		// Only now that Start returned may another manager take the account.
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		var rerr error
		if ho != nil {
			rerr = le.handOver(rctx, ho.to)
		} else {
			rerr = le.Release(rctx)
		}
		rcancel()
		if rerr != nil {
			m.opts.Log.Warn("Could not release account lease", zap.String("account", le.Account()), zap.Error(rerr))
		}
		switch {
		case errors.Is(cause, ErrRebalanced):
			m.opts.Log.Info("Account handed over", zap.String("account", le.Account()), zap.String("to", ho.to))
		case cause != nil:
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
