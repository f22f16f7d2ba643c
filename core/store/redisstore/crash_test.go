package redisstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// The crash test re-executes the test binary as a child that holds the
// account's lease and appends and acks in a loop on Redis, SIGKILLs it at a
// random point, takes the lease over as the next runner would and checks
// the invariants. Same invariants as core/store's bbolt crash test.
const (
	crashEnvAccount = "TGRUNNER_REDIS_CRASH_ACCOUNT"
	crashEnvAckLog  = "TGRUNNER_REDIS_CRASH_ACKLOG"
	crashReplay     = 30 // keys re-appended on start, like getDifference replays
	crashChats      = 5
	crashWorkers    = 4
	crashTTL        = 800 * time.Millisecond
)

func crashKey(n uint64) string { return "k" + strconv.FormatUint(n, 10) }

// acquireWait takes the account's lease as soon as the previous holder's
// expires.
func acquireWait(ctx context.Context, rdb redis.UniversalClient, acct, holder string) (*lease.Lease, error) {
	l, err := lease.NewLocker(rdb, lease.Options{TTL: crashTTL, Holder: holder})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * crashTTL)
	for {
		le, err := l.Acquire(ctx, acct)
		var held *lease.HeldError
		if !errors.As(err, &held) || time.Now().After(deadline) {
			return le, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCrashChild(t *testing.T) {
	acct := os.Getenv(crashEnvAccount)
	if acct == "" {
		t.Skip("only runs as the child of TestCrashKill")
	}
	if err := crashChild(redistest.Client(t), acct, os.Getenv(crashEnvAckLog)); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
}

func crashChild(rdb redis.UniversalClient, acct, ackLog string) error {
	ctx := context.Background()
	le, err := acquireWait(ctx, rdb, acct, fmt.Sprint("child-", os.Getpid()))
	if err != nil {
		return err
	}
	s, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{Journal: store.JournalOptions{CompactInterval: 5 * time.Millisecond}})
	if err != nil {
		return err
	}
	j := s.Journal()
	atLeast, err := j.Consumer(ctx, "at-least-once", store.ConsumerOptions{})
	if err != nil {
		return err
	}
	exact, err := j.Consumer(ctx, "exactly-once", store.ConsumerOptions{})
	if err != nil {
		return err
	}
	log, err := os.OpenFile(ackLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fail := make(chan error, 16)
	go func() {
		<-le.Lost()
		fail <- le.Err()
	}()

	// Appender: seq n+1 always carries key n, so replays must be dropped.
	go func() {
		next := j.LastSeq()
		n := uint64(0)
		if next > crashReplay {
			n = next - crashReplay
		}
		for {
			k := uint64(1 + rand.IntN(16))
			batch := make([]store.Entry, 0, k)
			for i := n; i < n+k; i++ {
				batch = append(batch, store.Entry{DedupKey: crashKey(i), ChatKey: fmt.Sprint("chat", i%crashChats), Kind: "msg", Data: []byte(strconv.FormatUint(i, 10))})
			}
			added, err := j.Append(ctx, batch)
			if err != nil {
				fail <- err
				return
			}
			for _, e := range added {
				if e.DedupKey != crashKey(e.Seq-1) {
					fail <- fmt.Errorf("seq %d got key %s: replay not dropped or seq gap", e.Seq, e.DedupKey)
					return
				}
			}
			n += k
			fmt.Printf("appended %d\n", j.LastSeq())
		}
	}()

	// At-least-once consumer: parallel workers ack out of order, then log.
	work := make(chan uint64)
	for w := 0; w < crashWorkers; w++ {
		go func() {
			for seq := range work {
				if err := atLeast.Ack(ctx, seq); err != nil {
					fail <- err
					return
				}
				if _, err := log.WriteString(strconv.FormatUint(seq, 10) + "\n"); err != nil {
					fail <- err
					return
				}
			}
		}()
	}
	go func() {
		var after uint64
		for {
			es, err := atLeast.Next(ctx, after, 64)
			if err != nil {
				fail <- err
				return
			}
			rand.Shuffle(len(es), func(a, b int) { es[a], es[b] = es[b], es[a] })
			for _, e := range es {
				after = max(after, e.Seq)
				work <- e.Seq
			}
		}
	}()

	// Exactly-once consumer: effects and ack in one script.
	go func() {
		var after uint64
		for {
			es, err := exact.Next(ctx, after, 32)
			if err != nil {
				fail <- err
				return
			}
			err = exact.AckWith(ctx, func(tx store.Txn) error {
				kv := tx.KV("crash")
				for _, e := range es {
					key := "e:" + strconv.FormatUint(e.Seq, 10)
					if _, err := kv.Get(key); err == nil {
						if err := kv.Set("dup:"+key, nil); err != nil {
							return err
						}
					}
					if err := kv.Set(key, e.Data); err != nil {
						return err
					}
					// Per-chat order: each chat's values must only grow.
					n, _ := strconv.ParseUint(string(e.Data), 10, 64)
					if prev, err := kv.Get("chat:" + e.ChatKey); err == nil {
						p, _ := strconv.ParseUint(string(prev), 10, 64)
						if n <= p {
							if err := kv.Set("order:"+key, nil); err != nil {
								return err
							}
						}
					}
					if err := kv.Set("chat:"+e.ChatKey, e.Data); err != nil {
						return err
					}
				}
				return nil
			}, seqsOf(es)...)
			if err != nil {
				fail <- err
				return
			}
			after = es[len(es)-1].Seq
			fmt.Printf("exact %d\n", after)
		}
	}()
	return <-fail
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the binary 25 times")
	}
	if os.Getenv(crashEnvAccount) != "" {
		t.Skip("child")
	}
	rdb := redistest.Client(t)
	acct := newAccount()
	ackLog := filepath.Join(t.TempDir(), "acks.log")
	const rounds = 25
	for round := 0; round < rounds; round++ {
		// Kill at a random point, after the exactly-once consumer committed
		// 0, 1 or 2 times in this life (it is slower than the appender).
		killAfter, killExact := 2+rand.IntN(60), rand.IntN(3)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvAccount+"="+acct, crashEnvAckLog+"="+ackLog)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(out)
		lines, exacts := 0, 0
		for (lines < killAfter || exacts < killExact) && sc.Scan() {
			switch {
			case strings.HasPrefix(sc.Text(), "appended "):
				lines++
			case strings.HasPrefix(sc.Text(), "exact "):
				exacts++
			}
		}
		if lines < killAfter || exacts < killExact {
			_ = cmd.Wait()
			t.Fatalf("round %d: child died early: %s", round, stderr.String())
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		go func() { _, _ = bufio.NewReader(out).WriteTo(discard{}) }()
		err = cmd.Wait()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		require.True(t, exit.Sys().(syscall.WaitStatus).Signaled(), "child exited by itself (%v): %s", err, stderr.String())
		checkCrashInvariants(t, rdb, acct, ackLog, round, false)
	}
	checkCrashInvariants(t, rdb, acct, ackLog, rounds, true)
}

func readAckLog(t *testing.T, path string) map[uint64]int {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[uint64]int{}
	}
	require.NoError(t, err)
	out := map[uint64]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		n, err := strconv.ParseUint(l, 10, 64)
		require.NoError(t, err, "ack log line %q", l)
		out[n]++
	}
	return out
}

// checkCrashInvariants takes the account over as the next runner would.
// With drain it then consumes everything and checks the totals.
func checkCrashInvariants(t *testing.T, rdb *redis.Client, acct, ackLog string, round int, drain bool) {
	t.Helper()
	ctx := context.Background()
	le, err := acquireWait(ctx, rdb, acct, "checker")
	require.NoError(t, err, "round %d: take over the dead child's lease", round)
	defer le.Release(ctx)
	s, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{Journal: store.JournalOptions{CompactInterval: -1}})
	require.NoError(t, err, "round %d", round)
	defer s.Close()
	j := s.Journal()
	last := j.LastSeq()
	require.Positive(t, last, "round %d: nothing journaled", round)

	// Retained entries are gap-free, end at last, and seq n+1 carries key n.
	msgs, err := rdb.XRange(ctx, lease.KeyPrefix("", acct)+"j:stream", "-", "+").Result()
	require.NoError(t, err)
	var first uint64
	for i, m := range msgs {
		seq, err := strconv.ParseUint(m.Values["s"].(string), 10, 64)
		require.NoError(t, err)
		require.Equal(t, strconv.FormatUint(seq, 10)+"-0", m.ID)
		if i == 0 {
			first = seq
		} else {
			require.Equal(t, first+uint64(i), seq, "round %d: seq gap", round)
		}
		require.Equal(t, crashKey(seq-1), m.Values["d"], "round %d: seq %d key", round, seq)
	}
	if len(msgs) > 0 {
		require.Equal(t, last, first+uint64(len(msgs))-1, "round %d: journal ends at the last seq", round)
	}
	dedup, err := j.DedupKeys(ctx)
	require.NoError(t, err)
	require.Equal(t, last, dedup, "round %d: one dedup key per entry", round)

	atLeast, err := j.Consumer(ctx, "at-least-once", store.ConsumerOptions{})
	require.NoError(t, err)
	exact, err := j.Consumer(ctx, "exactly-once", store.ConsumerOptions{})
	require.NoError(t, err)

	// At-least-once: logged acks are never redelivered, every other entry is.
	logged := readAckLog(t, ackLog)
	for seq, n := range logged {
		require.Equal(t, 1, n, "round %d: seq %d acknowledged twice (redelivered after ack)", round, seq)
	}
	pos, err := atLeast.Position(ctx)
	require.NoError(t, err)
	ackedA := map[uint64]bool{}
	for _, a := range pos.Above {
		ackedA[a] = true
	}
	redelivered, err := atLeast.Read(ctx, 0, int(last)+1)
	require.NoError(t, err)
	redel := map[uint64]bool{}
	for _, e := range redelivered {
		redel[e.Seq] = true
		require.Zero(t, logged[e.Seq], "round %d: acknowledged seq %d redelivered", round, e.Seq)
		require.Equal(t, strconv.FormatUint(e.Seq-1, 10), string(e.Data), "round %d: entry %d data", round, e.Seq)
	}
	for seq := uint64(1); seq <= last; seq++ {
		acked := seq <= pos.Low || ackedA[seq]
		require.NotEqual(t, acked, redel[seq], "round %d: seq %d acked=%v redelivered=%v", round, seq, acked, redel[seq])
		if logged[seq] > 0 {
			require.True(t, acked, "round %d: seq %d logged as acked but not persisted", round, seq)
		}
	}

	// Exactly-once: an effect record exists exactly for the acked seqs.
	effects, err := s.PluginKV("crash").List(ctx, "", 0)
	require.NoError(t, err)
	posB, err := exact.Position(ctx)
	require.NoError(t, err)
	ackedB := map[uint64]bool{}
	for _, a := range posB.Above {
		ackedB[a] = true
	}
	effect := map[uint64]bool{}
	for _, kv := range effects {
		require.False(t, strings.HasPrefix(kv.Key, "dup:"), "round %d: entry processed twice: %s", round, kv.Key)
		require.False(t, strings.HasPrefix(kv.Key, "order:"), "round %d: per-chat order broken: %s", round, kv.Key)
		if rest, ok := strings.CutPrefix(kv.Key, "e:"); ok {
			n, err := strconv.ParseUint(rest, 10, 64)
			require.NoError(t, err)
			effect[n] = true
		}
	}
	for seq := uint64(1); seq <= last; seq++ {
		require.Equal(t, seq <= posB.Low || ackedB[seq], effect[seq], "round %d: seq %d effect vs ack", round, seq)
	}
	t.Logf("round %d: last seq %d, retained from %d, at-least-once low %d (+%d), exactly-once low %d, %d redelivered",
		round, last, first, pos.Low, len(pos.Above), posB.Low, len(redelivered))
	if !drain {
		return
	}
	for _, e := range redelivered {
		require.NoError(t, atLeast.Ack(ctx, e.Seq))
		logged[e.Seq]++
	}
	// A kill between a persisted Ack and its log line loses the line, not
	// the ack: at most one per worker per kill. Nothing is handled twice.
	unlogged := 0
	for seq := uint64(1); seq <= last; seq++ {
		require.LessOrEqual(t, logged[seq], 1, "at-least-once consumer saw seq %d %d times", seq, logged[seq])
		if logged[seq] == 0 {
			unlogged++
		}
	}
	require.LessOrEqual(t, unlogged, crashWorkers*round, "more acks in flight at kill time than workers")
	lag, err := atLeast.Lag(ctx)
	require.NoError(t, err)
	require.Zero(t, lag)
	rest, err := exact.Read(ctx, 0, int(last)+1)
	require.NoError(t, err)
	for _, e := range rest {
		require.False(t, effect[e.Seq])
		effect[e.Seq] = true
	}
	require.Len(t, effect, int(last))
	require.NoError(t, exact.Ack(ctx, seqsOf(rest)...))
	_, err = j.Compact(ctx)
	require.NoError(t, err)
	depth, err := j.Depth(ctx)
	require.NoError(t, err)
	require.Zero(t, depth, "a fully acked journal compacts to empty")
}
