package runner_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
	"github.com/tgrunner/tgrunner/sandbox"
)

const crashChildEnv = "TGRUNNER_CRASH_CHILD"

// crashSpec is what the parent hands the child runner process.
type crashSpec struct {
	Addr    string `json:"addr"`
	DC      int    `json:"dc"`
	KeyFile string `json:"key_file"`
	Dir     string `json:"dir"`
	Total   int    `json:"total"`
	// Redis, when set, is the storage URL: the child runs the account
	// under its lease there instead of in Dir.
	Redis   string `json:"redis,omitempty"`
	Account string `json:"account,omitempty"`
}

// crashLeaseTTL is short so that each restart after a kill waits little
// for the killed holder's lease to expire.
const crashLeaseTTL = 2 * time.Second

// openCrashRedis takes the account's lease (waiting for a killed holder's
// to expire) and opens its Redis storage.
func openCrashRedis(ctx context.Context, spec crashSpec) (store.Backend, *lease.Lease, func(), error) {
	opts, err := redis.ParseURL(spec.Redis)
	if err != nil {
		return nil, nil, nil, err
	}
	rdb := redis.NewClient(opts)
	locker, err := lease.NewLocker(rdb, lease.Options{TTL: crashLeaseTTL})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, err
	}
	var le *lease.Lease
	for {
		le, err = locker.Acquire(ctx, spec.Account)
		var held *lease.HeldError
		if !errors.As(err, &held) {
			break
		}
		select {
		case <-ctx.Done():
			_ = rdb.Close()
			return nil, nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, err
	}
	st, err := redisstore.Open(ctx, rdb, spec.Account, le, redisstore.Options{})
	release := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = le.Release(rctx)
		cancel()
		_ = rdb.Close()
	}
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return st, le, func() { _ = st.Close(); release() }, nil
}

const crashConsumer = "crash-consumer"

// crashChild runs a real runner against the parent's sandbox (a custom
// server config) with one journal consumer that commits what it saw in the
// same transaction as its ack, and prints its progress.
func crashChild() int {
	var spec crashSpec
	if err := json.Unmarshal([]byte(os.Getenv(crashChildEnv)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		return 2
	}
	cfg := crashConfig(spec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		ch := make(chan os.Signal, 1)
		signalNotify(ch)
		<-ch
		cancel()
	}()
	var (
		backend store.Backend
		le      runner.Lease
	)
	if spec.Redis != "" {
		st, l, closeStore, err := openCrashRedis(ctx, spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, "open redis storage:", err)
			return 1
		}
		defer closeStore()
		backend, le = st, l
		// The parent kills at random points after this, not while the
		// child waits for the killed holder's lease.
		fmt.Println("leased")
	} else {
		st, err := store.Open(ctx, spec.Dir, store.Options{LockTimeout: 10 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, "open store:", err)
			return 1
		}
		defer st.Close()
		backend = store.Bolt(st)
	}
	logger := zap.NewNop()
	if path := os.Getenv("TGRUNNER_CRASH_LOG"); path != "" {
		zc := zap.NewDevelopmentConfig()
		zc.OutputPaths = []string{path}
		logger, _ = zc.Build()
		defer logger.Sync()
	}
	r := runner.New(cfg, backend, runner.Options{
		Logger:   logger,
		Services: []runner.Service{runner.ServiceFunc(consumeForCrashTest)},
		Lease:    le,
	})
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

func crashConfig(spec crashSpec) *config.Config {
	cfg := config.Default()
	cfg.Account.APIID = 1
	cfg.Account.APIHash = config.NewSecret("sandbox")
	cfg.Server.Type = config.ServerCustom
	cfg.Server.Address = spec.Addr
	cfg.Server.DC = spec.DC
	pemData, err := os.ReadFile(spec.KeyFile)
	if err != nil {
		panic(err)
	}
	keys, err := parsePEMKeys(pemData)
	if err != nil {
		panic(err)
	}
	cfg.Server.PublicKeys = keys
	cfg.Storage.Dir = spec.Dir
	// The test floods the account on purpose; the client-side RPC bucket
	// must not be what it measures.
	cfg.Limits.RPC.Interval = time.Millisecond
	cfg.Limits.RPC.Burst = 100
	return cfg
}

// consumeForCrashTest records every message it sees: "seen/<n>" once,
// "dup/<n>" if seen again, "order/<n>" if a chat went backwards. Effects
// and acks commit together, so a kill can never separate them.
func consumeForCrashTest(ctx context.Context, s *runner.Session) error {
	c, err := s.Store.Journal().Consumer(ctx, crashConsumer, store.ConsumerOptions{})
	if err != nil {
		return err
	}
	var after uint64
	for {
		entries, err := c.Next(ctx, after, 512)
		if err != nil {
			return nil
		}
		seqs := make([]uint64, 0, len(entries))
		for _, e := range entries {
			seqs = append(seqs, e.Seq)
		}
		seen := 0
		err = c.AckWith(ctx, func(tx store.Txn) error {
			seen = 0
			kv := tx.KV(crashConsumer)
			for _, e := range entries {
				ev, err := runner.DecodeEntry(e)
				if err != nil {
					return err
				}
				m := ev.GetNewMessage()
				if m == nil || !strings.HasPrefix(m.Text, "crash ") {
					continue
				}
				f := strings.Fields(m.Text) // crash <chat> <n>
				chat, n := f[1], f[2]
				num, _ := strconv.Atoi(n)
				if _, err := kv.Get("seen/" + n); err == nil {
					if err := kv.Set("dup/"+n, []byte("1")); err != nil {
						return err
					}
				}
				if err := kv.Set("seen/"+n, []byte(chat)); err != nil {
					return err
				}
				if last, err := kv.Get("last/" + chat); err == nil {
					if prev, _ := strconv.Atoi(string(last)); num < prev {
						if err := kv.Set("order/"+n, last); err != nil {
							return err
						}
					}
				}
				if err := kv.Set("last/"+chat, []byte(n)); err != nil {
					return err
				}
				seen++
			}
			return nil
		}, seqs...)
		if err != nil {
			return nil
		}
		if len(entries) > 0 {
			after = entries[len(entries)-1].Seq
			// Progress for the parent, which cannot open the store while we
			// hold its lock.
			fmt.Printf("batch %d\n", seen)
		}
	}
}

func TestCrashKillNineLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills and restarts a runner process 20 times; skipped in -short mode")
	}
	crashTest(t, "")
}

// The same on Redis: each restart takes the account's lease once the
// killed holder's expired, and resumes from the journal in Redis.
func TestCrashKillNineLosesNothingOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills and restarts a runner process 20 times; skipped in -short mode")
	}
	redistest.Client(t) // skips without redis-server
	crashTest(t, os.Getenv(redistest.EnvURL))
}

func crashTest(t *testing.T, redisURL string) {
	const (
		total = 5000
		kills = 20
	)
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(t, err)
	defer sb.Close()

	mk := func(phone, name string) *sandbox.User {
		u, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: phone, FirstName: name, Username: strings.ToLower(name)})
		require.NoError(t, err)
		return u
	}
	owner := mk("9996631000", "Owner")
	alice := mk("9996631001", "Alice")
	bob := mk("9996631002", "Bob")
	carol := mk("9996631003", "Carol")
	group, err := sb.CreateGroup(ctx, carol.ID, "Crash group", owner.ID, alice.ID)
	require.NoError(t, err)
	channel, err := sb.CreateChannel(ctx, bob.ID, sandbox.ChannelSpec{Title: "Crash channel", Username: "crashchan"})
	require.NoError(t, err)
	require.NoError(t, sb.As(owner.ID).Join(ctx, sandbox.ChannelPeer(channel)))

	dir := filepath.Join(t.TempDir(), "data")
	keyFile := filepath.Join(t.TempDir(), "sandbox.pem")
	require.NoError(t, os.WriteFile(keyFile, sb.PublicKeyPEM(), 0o600))
	spec := crashSpec{Addr: sb.Addr(), DC: sb.DC(), KeyFile: keyFile, Dir: dir, Total: total}
	if redisURL != "" {
		spec.Redis, spec.Account = redisURL, fmt.Sprintf("crash-%d", time.Now().UnixNano())
	}
	// open opens the storage the children use.
	open := func() (store.Backend, func()) {
		if redisURL != "" {
			st, _, closeStore, err := openCrashRedis(ctx, spec)
			require.NoError(t, err)
			return st, closeStore
		}
		st, err := store.Open(ctx, dir, store.Options{})
		require.NoError(t, err)
		return store.Bolt(st), func() { require.NoError(t, st.Close()) }
	}

	// Log in once, in-process; the child processes reuse the session.
	cfg := crashConfig(spec)
	st, closeStore := open()
	_, err = runner.Login(ctx, cfg, st, nil, runner.LoginOptions{Source: runner.SandboxLogin(sb, owner.Phone, "")})
	require.NoError(t, err)
	closeStore()

	// On Redis each restart first waits out the killed holder's lease, so
	// the kills take longer: send slower to keep them among the messages.
	pace := 5 * time.Millisecond
	if redisURL != "" {
		pace = 30 * time.Millisecond
	}
	// Senders: two private chats, a group and a channel, in parallel.
	type route struct {
		name string
		from int64
		peer sandbox.Peer
	}
	routes := []route{
		{"alice", alice.ID, sandbox.UserPeer(owner.ID)},
		{"bob", bob.ID, sandbox.UserPeer(owner.ID)},
		{"group", carol.ID, sandbox.ChatPeer(group)},
		{"channel", bob.ID, sandbox.ChannelPeer(channel)},
	}
	sendDone := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		errs := make(chan error, len(routes))
		for ri, r := range routes {
			wg.Go(func() {
				for i := ri; i < total; i += len(routes) {
					if _, err := sb.As(r.from).SendText(ctx, r.peer, fmt.Sprintf("crash %s %d", r.name, i)); err != nil {
						errs <- err
						return
					}
					// About 800 messages/s in all, so the kills land while
					// messages are flowing, not after.
					time.Sleep(pace)
				}
			})
		}
		wg.Wait()
		close(errs)
		sendDone <- <-errs
	}()

	start := func() (*exec.Cmd, *bufio.Scanner) {
		b, _ := json.Marshal(spec)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashChildEnv+"="+string(b))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		return cmd, bufio.NewScanner(out)
	}
	for i := range kills {
		cmd, out := start()
		// Kill at a random point: sometimes before login completes,
		// sometimes mid-catch-up, sometimes mid-batch.
		wait := time.Duration(50+rand.IntN(700)) * time.Millisecond
		if redisURL != "" {
			for out.Scan() && out.Text() != "leased" {
			}
		}
		go func() {
			for out.Scan() {
			}
		}()
		time.Sleep(wait)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL), "kill %d", i)
		_ = cmd.Wait()
	}
	require.NoError(t, <-sendDone)

	// A last run catches up on everything and is stopped gracefully once
	// the consumer has recorded every message.
	cmd, out := start()
	seen := 0
	deadline := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	progress := make(chan int)
	go func() {
		for out.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(out.Text(), "batch ")); err == nil {
				progress <- n
			}
		}
		close(progress)
	}()
	// The count since the last start is not all there is; verify in the
	// store below. Wait until the journal goes quiet after the backlog.
	quiet := time.NewTimer(5 * time.Second)
wait:
	for {
		select {
		case n, ok := <-progress:
			if !ok {
				break wait
			}
			seen += n
			quiet.Reset(3 * time.Second)
		case <-quiet.C:
			break wait
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "graceful stop exits 0")

	st, closeStore = open()
	defer closeStore()
	kv := st.PluginKV(crashConsumer)
	dups, err := kv.List(ctx, "dup/", 0)
	require.NoError(t, err)
	if len(dups) > 0 {
		dumpJournal(t, st, strings.TrimPrefix(dups[0].Key, "dup/"))
	}
	require.Empty(t, firstKeys(dups, 5), "messages delivered twice (%d)", len(dups))
	order, err := kv.List(ctx, "order/", 0)
	require.NoError(t, err)
	if len(order) > 0 {
		dumpOrder(t, st)
	}
	require.Empty(t, firstKeys(order, 5), "messages out of per-chat order (%d)", len(order))
	seenAll, err := kv.List(ctx, "seen/", 0)
	require.NoError(t, err)
	missing := []int{}
	have := map[string]bool{}
	for _, p := range seenAll {
		have[strings.TrimPrefix(p.Key, "seen/")] = true
	}
	for i := range total {
		if !have[strconv.Itoa(i)] {
			missing = append(missing, i)
		}
	}
	if len(missing) > 5 {
		missing = missing[:5]
	}
	require.Empty(t, missing, "messages never delivered (first 5 shown)")
	require.Len(t, seenAll, total)
	t.Logf("%d messages, %d SIGKILLs: each seen exactly once, in per-chat order (%d in the final run)", total, kills, seen)
}

func firstKeys(pairs []store.KVPair, n int) []string {
	var out []string
	for i, p := range pairs {
		if i == n {
			break
		}
		out = append(out, p.Key)
	}
	return out
}

// dumpJournal logs the journal entries that carry message n, to show why
// it was delivered twice.
func dumpJournal(t *testing.T, st store.Backend, n string) {
	ctx := context.Background()
	c, err := st.Journal().Consumer(ctx, "debug-dump", store.ConsumerOptions{})
	require.NoError(t, err)
	var after uint64
	for {
		entries, err := c.Read(ctx, after, 1000)
		require.NoError(t, err)
		if len(entries) == 0 {
			return
		}
		for _, e := range entries {
			ev, err := runner.DecodeEntry(e)
			require.NoError(t, err)
			if m := ev.GetNewMessage(); m != nil && strings.HasSuffix(m.Text, " "+n) {
				t.Logf("seq %d dedup %q chat %q: %q", e.Seq, e.DedupKey, e.ChatKey, m.Text)
			}
			after = e.Seq
		}
	}
}

func dumpOrder(t *testing.T, st store.Backend) {
	ctx := context.Background()
	c, err := st.Journal().Consumer(ctx, "debug-order", store.ConsumerOptions{})
	require.NoError(t, err)
	var after uint64
	last := map[string]int{}
	lastLine := map[string]string{}
	for {
		entries, err := c.Read(ctx, after, 1000)
		require.NoError(t, err)
		if len(entries) == 0 {
			return
		}
		for _, e := range entries {
			ev, _ := runner.DecodeEntry(e)
			after = e.Seq
			m := ev.GetNewMessage()
			if m == nil || !strings.HasPrefix(m.Text, "crash ") {
				continue
			}
			f := strings.Fields(m.Text)
			n, _ := strconv.Atoi(f[2])
			line := fmt.Sprintf("seq %d id %d date %d %q", e.Seq, m.Id, m.Date, m.Text)
			if n < last[f[1]] {
				t.Logf("ORDER: %s after %s", line, lastLine[f[1]])
			}
			last[f[1]] = n
			lastLine[f[1]] = line
		}
	}
}
