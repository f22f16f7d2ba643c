package lease_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

const rebalanceTTL = 400 * time.Millisecond

// stopLog records every Stop callback.
type stopLog struct {
	mu     sync.Mutex
	causes map[string][]error // holder -> causes
}

func (s *stopLog) stop(holder string) func(string, error) {
	return func(_ string, cause error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.causes[holder] = append(s.causes[holder], cause)
	}
}

func (s *stopLog) of(holder string) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.causes[holder])
}

type runningManager struct {
	holder string
	m      *lease.Manager
	cancel context.CancelFunc
	done   chan error
}

// runManager starts a manager and stops it (waiting for it) at cleanup.
func runManager(t *testing.T, rdb redis.UniversalClient, prefix, holder string, opts lease.ManagerOptions) *runningManager {
	t.Helper()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: rebalanceTTL, Holder: holder, Prefix: prefix})
	require.NoError(t, err)
	m, err := lease.NewManager(l, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	rm := &runningManager{holder: holder, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { rm.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rm.done:
		case <-time.After(30 * time.Second):
			// A failure, not a hang of the whole package run.
			t.Errorf("manager %s did not stop within 30s of its cancel", holder)
		}
	})
	return rm
}

func accountsFor(t *testing.T, n int) (prefix string, accounts []string) {
	base := account(t)
	for i := 0; i < n; i++ {
		accounts = append(accounts, fmt.Sprintf("%s-%d", base, i))
	}
	return "tgrtest" + base, accounts
}

// heldCounts is how many accounts each manager holds, sorted.
func heldCounts(ms []*runningManager) []int {
	var out []int
	for _, x := range ms {
		out = append(out, len(x.m.Held()))
	}
	slices.Sort(out)
	return out
}

func (tr *tracker) totalStarts() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.starts {
		n += c
	}
	return n
}

func TestManagerRebalancesWhenRunnerJoins(t *testing.T) {
	for _, tc := range []struct {
		accounts int
		want     []int
	}{
		{5, []int{2, 3}},
		{4, []int{2, 2}},
	} {
		t.Run(fmt.Sprintf("%d accounts", tc.accounts), func(t *testing.T) {
			rdb := redistest.Client(t)
			prefix, accounts := accountsFor(t, tc.accounts)
			tr := &tracker{t: t, running: map[string]string{}, starts: map[string]int{}}
			stops := &stopLog{causes: map[string][]error{}}
			opts := func(holder string) lease.ManagerOptions {
				return lease.ManagerOptions{Accounts: accounts, Start: tr.start(holder), Stop: stops.stop(holder)}
			}
			first := runManager(t, rdb, prefix, "runner-1", opts("runner-1"))
			waitFor(t, 10*rebalanceTTL, "the only runner holding every account", func() bool {
				return len(tr.snapshot()) == tc.accounts
			})
			require.Len(t, first.m.Held(), tc.accounts)

			second := runManager(t, rdb, prefix, "runner-2", opts("runner-2"))
			ms := []*runningManager{first, second}
			waitFor(t, 30*rebalanceTTL, fmt.Sprintf("holdings %v", tc.want), func() bool {
				return slices.Equal(heldCounts(ms), tc.want) && len(tr.snapshot()) == tc.accounts
			})
			moved := len(second.m.Held())
			require.Equal(t, tc.accounts+moved, tr.totalStarts(), "each account started once plus once per move")
			causes := stops.of("runner-1")
			require.Len(t, causes, moved)
			for _, c := range causes {
				require.ErrorIs(t, c, lease.ErrRebalanced)
				require.NotErrorIs(t, c, lease.ErrLost)
			}
			require.Empty(t, stops.of("runner-2"))
		})
	}
}

func TestManagerRebalanceSettlesAndStays(t *testing.T) {
	for _, tc := range []struct {
		accounts, managers int
		want               []int
	}{
		{5, 3, []int{1, 2, 2}},
		{4, 3, []int{1, 1, 2}},
		{9, 4, []int{2, 2, 2, 3}},
	} {
		t.Run(fmt.Sprintf("%d accounts %d runners", tc.accounts, tc.managers), func(t *testing.T) {
			rdb := redistest.Client(t)
			prefix, accounts := accountsFor(t, tc.accounts)
			tr := &tracker{t: t, running: map[string]string{}, starts: map[string]int{}}
			run := func(i int) *runningManager {
				holder := fmt.Sprintf("runner-%d", i)
				return runManager(t, rdb, prefix, holder, lease.ManagerOptions{Accounts: accounts, Start: tr.start(holder)})
			}
			ms := []*runningManager{run(1)}
			waitFor(t, 10*rebalanceTTL, "the only runner holding every account", func() bool {
				return len(tr.snapshot()) == tc.accounts
			})
			for i := 2; i <= tc.managers; i++ {
				ms = append(ms, run(i))
			}
			waitFor(t, 40*rebalanceTTL, fmt.Sprintf("holdings %v", tc.want), func() bool {
				return slices.Equal(heldCounts(ms), tc.want) && len(tr.snapshot()) == tc.accounts
			})
			starts := tr.totalStarts()
			// Several settling periods and many rounds: nothing moves any more.
			deadline := time.Now().Add(5 * rebalanceTTL)
			for time.Now().Before(deadline) {
				require.Equal(t, starts, tr.totalStarts(), "an account moved after the runners were balanced")
				time.Sleep(10 * time.Millisecond)
			}
			require.Equal(t, tc.want, heldCounts(ms))
		})
	}
}

// An account is handed over only after its Start returned, and the lease
// stays with the old holder while Start drains.
func TestManagerHandoverWaitsForStartToReturn(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	prefix, accounts := accountsFor(t, 2)

	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	cancelled := make(chan string, 64) // never blocks Start, even if leases churn under load
	drain := make(chan struct{})
	var drainOnce sync.Once
	endDrain := func() { drainOnce.Do(func() { close(drain) }) }
	stopped := make(chan error, 64)
	first := runManager(t, rdb, prefix, "runner-1", lease.ManagerOptions{
		Accounts: accounts,
		Start: func(ctx context.Context, le *lease.Lease) error {
			<-ctx.Done()
			record("cancelled " + le.Account())
			cancelled <- le.Account()
			<-drain // the runner flushing and disconnecting
			if !le.Valid() {
				t.Errorf("lease of %s lost while Start drained", le.Account())
			}
			record("returned " + le.Account())
			return ctx.Err()
		},
		Stop: func(_ string, cause error) { stopped <- cause },
	})
	t.Cleanup(endDrain) // registered after runner-1's, so it runs before runner-1 is waited for
	waitFor(t, 10*rebalanceTTL, "runner-1 holding both accounts", func() bool { return len(first.m.Held()) == 2 })

	secondStarted := make(chan string, 64)
	second := runManager(t, rdb, prefix, "runner-2", lease.ManagerOptions{
		Accounts: accounts,
		Start: func(ctx context.Context, le *lease.Lease) error {
			record("started " + le.Account())
			secondStarted <- le.Account()
			<-ctx.Done()
			return ctx.Err()
		},
	})

	var moving string
	select {
	case moving = <-cancelled:
	case <-time.After(20 * rebalanceTTL):
		t.Fatal("runner-1 handed nothing over")
	}
	// Start has not returned: the lease stays runner-1's, renewed past its
	// TTL, and runner-2 does not start the account.
	select {
	case a := <-secondStarted:
		t.Fatalf("runner-2 started %s while runner-1's Start was still running", a)
	case <-time.After(3 * rebalanceTTL):
	}
	l, err := lease.NewLocker(rdb, lease.Options{TTL: rebalanceTTL, Holder: "observer", Prefix: prefix})
	require.NoError(t, err)
	holder, _, err := l.Current(ctx, moving)
	require.NoError(t, err)
	require.Equal(t, "runner-1", holder)
	require.Equal(t, accounts, first.m.Held(), "the draining account still counts as held")

	endDrain()
	select {
	case a := <-secondStarted:
		require.Equal(t, moving, a)
	case <-time.After(10 * rebalanceTTL):
		t.Fatal("runner-2 did not take the handed-over account")
	}
	select {
	case cause := <-stopped:
		require.ErrorIs(t, cause, lease.ErrRebalanced)
		require.Contains(t, cause.Error(), "runner-2")
	case <-time.After(rebalanceTTL):
		t.Fatal("no Stop for the handed-over account")
	}
	mu.Lock()
	require.Equal(t, []string{"cancelled " + moving, "returned " + moving, "started " + moving}, events)
	mu.Unlock()
	waitFor(t, 2*rebalanceTTL, "one account each", func() bool {
		return len(first.m.Held()) == 1 && len(second.m.Held()) == 1
	})
}

func TestManagerNoRebalanceKeepsAccounts(t *testing.T) {
	rdb := redistest.Client(t)
	prefix, accounts := accountsFor(t, 3)
	tr := &tracker{t: t, running: map[string]string{}, starts: map[string]int{}}
	opts := func(holder string) lease.ManagerOptions {
		return lease.ManagerOptions{Accounts: accounts, Start: tr.start(holder), NoRebalance: true}
	}
	first := runManager(t, rdb, prefix, "runner-1", opts("runner-1"))
	waitFor(t, 10*rebalanceTTL, "runner-1 holding every account", func() bool { return len(first.m.Held()) == 3 })
	second := runManager(t, rdb, prefix, "runner-2", opts("runner-2"))
	deadline := time.Now().Add(5 * rebalanceTTL)
	for time.Now().Before(deadline) {
		require.Empty(t, second.m.Held())
		time.Sleep(10 * time.Millisecond)
	}
	require.Len(t, first.m.Held(), 3)
	require.Equal(t, 3, tr.totalStarts())
}
