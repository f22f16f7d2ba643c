package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
	"github.com/tgrunner/tgrunner/sandbox"
)

// Three runner processes share five accounts through Redis. Every account
// is held by exactly one of them, the sandbox never sees an account
// connected twice, and when the holder of two accounts is SIGKILLed both
// resume in the other processes within the lease TTL plus a margin,
// answering what arrived meanwhile exactly once.
func TestThreeProcessesShareFiveAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner and starts three processes")
	}
	srv, err := redistest.Start()
	if err != nil {
		t.Skipf("redis-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	keyFile := filepath.Join(t.TempDir(), "sandbox.pem")
	require.NoError(t, os.WriteFile(keyFile, sb.PublicKeyPEM(), 0o600))
	alice, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996640000", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)

	names := []string{"a1", "a2", "a3", "a4", "a5"}
	owners := map[string]*sandbox.User{}
	pingPath, pingSum := buildPingPlugin(t)
	var b strings.Builder
	fmt.Fprintf(&b, `version: 1
server: {type: custom, address: %q, dc: %d, public_key_file: %q}
storage: {dir: %q, url: %q, lease_ttl: 3s}
plugins:
  - name: ping
    path: %s
    sha256: %s
    permissions: {actions: [send, edit], chats: [private]}
accounts:
`, sb.Addr(), sb.DC(), keyFile, t.TempDir(), srv.URL(0), pingPath, pingSum)
	for i, name := range names {
		u, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: fmt.Sprintf("99966400%02d", i+1), FirstName: "Owner " + name})
		require.NoError(t, err)
		owners[name] = u
		fmt.Fprintf(&b, "  - {name: %s, api_id: 1, api_hash: \"${TEST_API_HASH}\", phone: %q}\n", name, u.Phone)
	}
	cfgPath := filepath.Join(t.TempDir(), "tgrunner.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(b.String()), 0o600))
	env := map[string]string{"TEST_API_HASH": "0123456789abcdef0123456789abcdef"}
	cfg, err := config.Load(ctx, cfgPath, config.LoadOptions{LookupEnv: config.MapEnv(env)})
	require.NoError(t, err)

	// Log every account in once; the processes share the sessions in Redis.
	for _, name := range names {
		acfg, err := cfg.ForAccount(name)
		require.NoError(t, err)
		st, closeStore, err := openBackend(ctx, acfg, name)
		require.NoError(t, err)
		_, err = runner.Login(ctx, acfg, st, nil, runner.LoginOptions{Source: runner.SandboxLogin(sb, owners[name].Phone, "")})
		closeStore()
		require.NoError(t, err, "log in %s", name)
	}

	bin := filepath.Join(t.TempDir(), "runner")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	procs := map[int]*exec.Cmd{}
	for i := range 3 {
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "TEST_API_HASH="+env["TEST_API_HASH"])
		logFile, err := os.Create(filepath.Join(t.TempDir(), fmt.Sprintf("runner%d.log", i)))
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		procs[cmd.Process.Pid] = cmd
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			if t.Failed() {
				out, _ := os.ReadFile(logFile.Name())
				t.Logf("runner %d log:\n%s", i, out)
			}
		})
	}

	rdb := srv.Client(0)
	defer rdb.Close()
	locker, err := lease.NewLocker(rdb, lease.Options{Holder: "probe"})
	require.NoError(t, err)
	holderPid := func(name string) int {
		holder, _, err := locker.Current(ctx, name)
		require.NoError(t, err)
		_, pid, _ := strings.Cut(holder, ":")
		n, _ := strconv.Atoi(pid)
		return n
	}
	pongs := func(name string) int {
		history, err := sb.History(alice.ID, sandbox.UserPeer(owners[name].ID))
		require.NoError(t, err)
		n := 0
		for _, m := range history {
			if m.From == owners[name].ID && strings.HasPrefix(m.Text, "pong") {
				n++
			}
		}
		return n
	}
	ping := func(name string) {
		_, err := sb.As(alice.ID).SendText(ctx, sandbox.UserPeer(owners[name].ID), ".ping")
		require.NoError(t, err)
	}
	waitPongs := func(want int, within time.Duration, names ...string) {
		t.Helper()
		require.Eventually(t, func() bool {
			for _, name := range names {
				if pongs(name) < want {
					return false
				}
			}
			return true
		}, within, 50*time.Millisecond, "every account answers %d .ping", want)
	}

	// Every account ends up held by one of the three processes, spread over
	// them (at most two each), and answers.
	require.Eventually(t, func() bool {
		for _, name := range names {
			if procs[holderPid(name)] == nil {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "all five accounts held by the runners")
	for _, name := range names {
		ping(name)
	}
	waitPongs(1, 60*time.Second, names...)
	held := map[int][]string{}
	for _, name := range names {
		held[holderPid(name)] = append(held[holderPid(name)], name)
	}
	victim := 0
	for pid, accounts := range held {
		require.LessOrEqual(t, len(accounts), 2, "fair share: process %d holds %v", pid, accounts)
		if len(accounts) == 2 {
			victim = pid
		}
	}
	require.NotZero(t, victim, "some process holds two accounts: %v", held)

	// SIGKILL the holder of two accounts; messages for them arrive while
	// they are down and are answered once they resume elsewhere.
	moved := held[victim]
	require.NoError(t, procs[victim].Process.Kill())
	_ = procs[victim].Wait()
	killed := time.Now()
	for _, name := range moved {
		ping(name)
	}
	// TTL 3s, an acquisition round every TTL/3, a dead manager leaves the
	// fair-share count after one TTL; plus connecting and catching up.
	waitPongs(2, 30*time.Second, moved...)
	t.Logf("accounts %v resumed and answered %s after the SIGKILL", moved, time.Since(killed).Round(time.Millisecond))
	for _, name := range moved {
		pid := holderPid(name)
		require.NotEqual(t, victim, pid)
		require.NotNil(t, procs[pid], "%s is held by a live runner", name)
	}
	// Nothing doubled: one pong per .ping, and never two connections at once.
	for _, name := range names {
		want := 1
		if slices.Contains(moved, name) {
			want = 2
		}
		require.Equal(t, want, pongs(name), "pongs of %s", name)
		require.Equal(t, 1, sb.MaxConcurrentSessions(owners[name].ID), "account %s connected twice at once", name)
	}
}
