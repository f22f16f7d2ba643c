package lease_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// tracker fails the test if an account ever runs twice at once.
type tracker struct {
	t       *testing.T
	mu      sync.Mutex
	running map[string]string // account -> holder
	starts  map[string]int
}

func (tr *tracker) start(holder string) func(ctx context.Context, le *lease.Lease) error {
	return func(ctx context.Context, le *lease.Lease) error {
		tr.mu.Lock()
		if other, ok := tr.running[le.Account()]; ok {
			tr.mu.Unlock()
			tr.t.Errorf("account %s started by %s while %s runs it", le.Account(), holder, other)
			return nil
		}
		tr.running[le.Account()] = holder
		tr.starts[le.Account()]++
		tr.mu.Unlock()
		<-ctx.Done()
		tr.mu.Lock()
		delete(tr.running, le.Account())
		tr.mu.Unlock()
		return ctx.Err()
	}
}

func (tr *tracker) snapshot() map[string]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]string{}
	for k, v := range tr.running {
		out[k] = v
	}
	return out
}

func TestManagerSpreadsAndFailsOver(t *testing.T) {
	rdb := redistest.Client(t)
	ttl := 400 * time.Millisecond
	var accounts []string
	base := account(t)
	for i := 0; i < 5; i++ {
		accounts = append(accounts, fmt.Sprintf("%s-%d", base, i))
	}
	tr := &tracker{t: t, running: map[string]string{}, starts: map[string]int{}}
	type mgr struct {
		m      *lease.Manager
		cancel context.CancelFunc
		done   chan error
	}
	var ms []*mgr
	prefix := "tgrtest" + base // own managers registry per test
	for i := 0; i < 3; i++ {
		holder := fmt.Sprintf("runner-%d", i)
		l, err := lease.NewLocker(rdb, lease.Options{TTL: ttl, Holder: holder, Prefix: prefix})
		require.NoError(t, err)
		m, err := lease.NewManager(l, lease.ManagerOptions{Accounts: accounts, Start: tr.start(holder)})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		x := &mgr{m: m, cancel: cancel, done: make(chan error, 1)}
		go func() { x.done <- m.Run(ctx) }()
		ms = append(ms, x)
	}
	waitFor(t, 10*ttl, "all five accounts running", func() bool { return len(tr.snapshot()) == 5 })
	// Fair share: nobody holds more than ceil(5/3) = 2.
	for _, x := range ms {
		require.LessOrEqual(t, len(x.m.Held()), 2)
	}

	// Stop the manager with the most accounts: they must move to the others.
	victim := ms[0]
	for _, x := range ms {
		if len(x.m.Held()) > len(victim.m.Held()) {
			victim = x
		}
	}
	moved := victim.m.Held()
	require.NotEmpty(t, moved)
	victim.cancel()
	require.ErrorIs(t, <-victim.done, context.Canceled)
	require.Empty(t, victim.m.Held())
	waitFor(t, 10*ttl, "accounts moved to the surviving managers", func() bool {
		snap := tr.snapshot()
		for _, a := range moved {
			if _, ok := snap[a]; !ok {
				return false
			}
		}
		return len(snap) == 5
	})
	for _, x := range ms {
		x.cancel()
	}
	for _, x := range ms[1:] {
		if x != victim {
			<-x.done
		}
	}
}

func TestManagerTakesOverFromDeadHolderWithinTTL(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	ttl := 400 * time.Millisecond
	acct := account(t)
	prefix := "tgrtest" + acct
	dead, err := lease.NewLocker(rdb, lease.Options{TTL: ttl, Holder: "dead", Prefix: prefix})
	require.NoError(t, err)
	le, err := dead.Acquire(ctx, acct)
	require.NoError(t, err)
	le.StopRenewing() // the process died: its key just expires
	died := time.Now()

	started := make(chan time.Time, 64)
	l, err := lease.NewLocker(rdb, lease.Options{TTL: ttl, Holder: "alive", Prefix: prefix})
	require.NoError(t, err)
	m, err := lease.NewManager(l, lease.ManagerOptions{Accounts: []string{acct}, Start: func(ctx context.Context, nl *lease.Lease) error {
		require.Greater(t, nl.Token(), le.Token())
		started <- time.Now()
		<-ctx.Done()
		return nil
	}})
	require.NoError(t, err)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = m.Run(mctx) }()
	select {
	case at := <-started:
		// Not before the dead holder's key expired.
		require.GreaterOrEqual(t, at.Sub(died), ttl-50*time.Millisecond)
	case <-time.After(10 * ttl):
		t.Fatal("account not taken over")
	}
}

func TestManagerStopsAccountOnLostLease(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	ttl := 400 * time.Millisecond
	acct := account(t)
	prefix := "tgrtest" + acct
	l, err := lease.NewLocker(rdb, lease.Options{TTL: ttl, Holder: "m", Prefix: prefix})
	require.NoError(t, err)
	stopped := make(chan error, 64)
	running := make(chan *lease.Lease, 64)
	m, err := lease.NewManager(l, lease.ManagerOptions{
		Accounts: []string{acct}, Greedy: true, Interval: time.Hour,
		Start: func(ctx context.Context, le *lease.Lease) error {
			running <- le
			<-ctx.Done()
			return ctx.Err()
		},
		Stop: func(account string, cause error) { stopped <- cause },
	})
	require.NoError(t, err)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = m.Run(mctx) }()
	le := <-running
	// Someone else ends up with the key (e.g. a failover lost it).
	require.NoError(t, rdb.Set(ctx, le.FenceKey(), "999999:intruder", ttl*10).Err())
	select {
	case cause := <-stopped:
		require.ErrorIs(t, cause, lease.ErrLost)
	case <-time.After(3 * ttl):
		t.Fatal("account not stopped after losing its lease")
	}
	// Stop is called just before the account leaves Held.
	require.Eventually(t, func() bool { return len(m.Held()) == 0 }, 3*ttl, 10*time.Millisecond)
}
