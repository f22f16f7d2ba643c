package lease_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &srv)) }

var accountN atomic.Int64

// account returns a fresh account name, so tests share one server.
func account(t *testing.T) string {
	return fmt.Sprintf("acct%d-%d", os.Getpid(), accountN.Add(1))
}

func locker(t *testing.T, rdb redis.UniversalClient, holder string, ttl time.Duration) *lease.Locker {
	t.Helper()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: ttl, Holder: holder})
	require.NoError(t, err)
	return l
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAcquireExclusiveUnderContention(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := account(t)
	const contenders = 8
	lockers := make([]*lease.Locker, contenders)
	for i := range lockers {
		lockers[i] = locker(t, rdb, fmt.Sprintf("holder-%d", i), 2*time.Second)
	}
	var lastToken uint64
	for round := 0; round < 30; round++ {
		var wg sync.WaitGroup
		leases := make(chan *lease.Lease, contenders)
		var held atomic.Int32
		for _, l := range lockers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				le, err := l.Acquire(ctx, acct)
				var he *lease.HeldError
				if errors.As(err, &he) {
					held.Add(1)
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				leases <- le
			}()
		}
		wg.Wait()
		close(leases)
		var won []*lease.Lease
		for le := range leases {
			won = append(won, le)
		}
		require.Len(t, won, 1, "round %d: exactly one winner", round)
		require.EqualValues(t, contenders-1, held.Load())
		require.Greater(t, won[0].Token(), lastToken, "fencing tokens increase")
		lastToken = won[0].Token()
		holder, tok, err := lockers[0].Current(ctx, acct)
		require.NoError(t, err)
		require.Equal(t, won[0].Token(), tok)
		require.Contains(t, won[0].FenceValue(), holder)
		require.NoError(t, won[0].Release(ctx))
		<-won[0].Lost()
		require.ErrorIs(t, won[0].Err(), lease.ErrLost)
	}
}

func TestRenewalKeepsLeaseBeyondTTL(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := account(t)
	ttl := 300 * time.Millisecond
	a, err := locker(t, rdb, "a", ttl).Acquire(ctx, acct)
	require.NoError(t, err)
	defer a.Release(ctx)
	b := locker(t, rdb, "b", ttl)
	// Keep trying for five TTLs: renewal must hold the lease all along.
	end := time.Now().Add(5 * ttl)
	for time.Now().Before(end) {
		_, err := b.Acquire(ctx, acct)
		var he *lease.HeldError
		require.ErrorAs(t, err, &he)
		require.Equal(t, "a", he.Holder)
		select {
		case <-a.Lost():
			t.Fatalf("lease lost while renewing: %v", a.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.True(t, a.Valid())
}

func TestStalledHolderExpiresAndIsFenced(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := account(t)
	ttl := 300 * time.Millisecond
	a, err := locker(t, rdb, "a", ttl).Acquire(ctx, acct)
	require.NoError(t, err)
	st, err := redisstore.Open(ctx, rdb, acct, a, redisstore.Options{})
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.PluginKV("p").Set(ctx, "before", []byte("1")))

	stalled := time.Now()
	a.StopRenewing()
	b := locker(t, rdb, "b", ttl)
	var bl *lease.Lease
	waitFor(t, 3*ttl, "takeover", func() bool {
		bl, err = b.Acquire(ctx, acct)
		return err == nil
	})
	defer bl.Release(ctx)
	took := time.Since(stalled)
	require.GreaterOrEqual(t, took, ttl-50*time.Millisecond, "taken over before the TTL ran out")
	require.Greater(t, bl.Token(), a.Token())
	// The stalled holder sees it lost the lease without any renewal running.
	require.False(t, a.Valid())
	select {
	case <-a.Lost():
	case <-time.After(ttl):
		t.Fatal("Lost did not fire after the local deadline")
	}
	// And whatever it still tries to write is refused.
	err = st.PluginKV("p").Set(ctx, "after", []byte("1"))
	require.ErrorIs(t, err, redisstore.ErrFenced)
	_, err = st.Journal().Append(ctx, []store.Entry{{Kind: "msg", Data: []byte("x")}})
	require.ErrorIs(t, err, redisstore.ErrFenced)
	require.ErrorIs(t, st.UpdateState().SetPts(ctx, 1, 5), store.ErrJournalFailed)

	st2, err := redisstore.Open(ctx, rdb, acct, bl, redisstore.Options{})
	require.NoError(t, err)
	defer st2.Close()
	_, err = st2.PluginKV("p").Get(ctx, "after")
	require.ErrorIs(t, err, store.ErrNotFound)
	v, err := st2.PluginKV("p").Get(ctx, "before")
	require.NoError(t, err)
	require.Equal(t, "1", string(v))
}

func TestLostFiresWhenAnotherHolderAppears(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := account(t)
	ttl := 600 * time.Millisecond
	a, err := locker(t, rdb, "a", ttl).Acquire(ctx, acct)
	require.NoError(t, err)
	// A failover that lost the lease key: someone else acquires it at once.
	require.NoError(t, rdb.Del(ctx, lease.Key("", acct)).Err())
	b, err := locker(t, rdb, "b", ttl).Acquire(ctx, acct)
	require.NoError(t, err)
	defer b.Release(ctx)
	select {
	case <-a.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("renewal did not notice the other holder")
	}
	require.ErrorIs(t, a.Err(), lease.ErrLost)
	require.False(t, a.Valid())
	// Release of a lost lease must not delete the new holder's key.
	require.NoError(t, a.Release(ctx))
	holder, _, err := locker(t, rdb, "c", ttl).Current(ctx, acct)
	require.NoError(t, err)
	require.Equal(t, "b", holder)
}

func TestAccountNames(t *testing.T) {
	for _, bad := range []string{"", "a{b}", "a b", strings.Repeat("x", 65), "a:b", "ä"} {
		require.Error(t, lease.ValidAccount(bad), "%q", bad)
	}
	for _, good := range []string{"main", "team-1", "a.b_c", strings.Repeat("x", 64)} {
		require.NoError(t, lease.ValidAccount(good), "%q", good)
	}
	require.Equal(t, "tgr:{main}:lease", lease.Key("", "main"))
}

// The SIGSTOP test re-executes the binary as a holder that writes in a loop.
const envSigstopAccount = "TGRUNNER_LEASE_SIGSTOP_ACCOUNT"

func TestSigstopChild(t *testing.T) {
	acct := os.Getenv(envSigstopAccount)
	if acct == "" {
		t.Skip("only runs as the child of TestSigstopHolderCannotWrite")
	}
	rdb := redistest.Client(t)
	ctx := context.Background()
	l := locker(t, rdb, "child", 400*time.Millisecond)
	le, err := l.Acquire(ctx, acct)
	require.NoError(t, err)
	st, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{})
	require.NoError(t, err)
	fmt.Println("held", le.Token())
	for n := 0; ; n++ {
		lost := false
		select {
		case <-le.Lost():
			lost = true
		default:
		}
		// Write regardless of Valid: fencing alone must stop it.
		err := st.PluginKV("w").Set(ctx, "k"+strconv.Itoa(n), []byte("child"))
		switch {
		case err == nil:
			fmt.Println("wrote", n)
		case errors.Is(err, redisstore.ErrFenced):
			fmt.Println("fenced", n, lost, le.Valid())
		default:
			fmt.Println("error", err)
		}
		if lost && err != nil {
			fmt.Println("lost", le.Err())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSigstopHolderCannotWrite(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := account(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSigstopChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envSigstopAccount+"="+acct)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	wrote := 0
	for wrote < 5 {
		l, ok := <-lines
		require.True(t, ok, "child exited early")
		if strings.HasPrefix(l, "wrote ") {
			wrote++
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	// Take the account over once the stopped child's lease expires.
	me := locker(t, rdb, "parent", time.Second)
	var mine *lease.Lease
	waitFor(t, 5*time.Second, "takeover of the stopped holder's account", func() bool {
		mine, err = me.Acquire(ctx, acct)
		return err == nil
	})
	defer mine.Release(ctx)
	written := func() map[string]bool {
		keys, err := rdb.HKeys(ctx, lease.KeyPrefix("", acct)+"kv:w").Result()
		require.NoError(t, err)
		m := map[string]bool{}
		for _, k := range keys {
			m[k] = true
		}
		return m
	}
	atTakeover := written()
	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	var sawLost, sawFenced bool
	for l := range lines {
		switch {
		case strings.HasPrefix(l, "wrote "):
			// Only writes that were in flight before the stop may land,
			// and they must have landed before the takeover.
			n := strings.TrimPrefix(l, "wrote ")
			require.True(t, atTakeover["k"+n], "child wrote k%s after losing its lease", n)
		case strings.HasPrefix(l, "fenced "):
			sawFenced = true
		case strings.HasPrefix(l, "lost "):
			sawLost = true
		}
	}
	require.NoError(t, cmd.Wait())
	require.True(t, sawFenced, "child never tried a write after resuming")
	require.True(t, sawLost, "child did not observe Lost")
	require.Equal(t, atTakeover, written(), "the resumed child changed the account's data")
}
