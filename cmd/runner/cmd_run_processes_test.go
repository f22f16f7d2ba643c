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

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
	"github.com/tgrunner/tgrunner/sandbox"
)

// sharedEnv is a sandbox, a redis-server and a config whose accounts, all
// logged in, runner processes (the real binary) share through Redis.
type sharedEnv struct {
	t       *testing.T
	ctx     context.Context
	sb      *sandbox.Server
	rdb     *redis.Client
	locker  *lease.Locker
	alice   *sandbox.User
	owners  map[string]*sandbox.User
	cfgPath string
	dir     string // storage.dir: the shared control socket lives here
	bin     string
	apiHash string
	procs   map[int]*exec.Cmd
	logs    map[int]string
}

func newSharedEnv(t *testing.T, names []string) *sharedEnv {
	if testing.Short() {
		t.Skip("builds the runner and starts runner processes")
	}
	srv, err := redistest.Start()
	if err != nil {
		t.Skipf("redis-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	e := &sharedEnv{t: t, ctx: ctx, owners: map[string]*sandbox.User{}, procs: map[int]*exec.Cmd{}, logs: map[int]string{},
		apiHash: "0123456789abcdef0123456789abcdef"}

	e.sb, err = sandbox.Start(ctx, sandbox.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.sb.Close() })
	keyFile := filepath.Join(t.TempDir(), "sandbox.pem")
	require.NoError(t, os.WriteFile(keyFile, e.sb.PublicKeyPEM(), 0o600))
	e.alice, err = e.sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996640000", FirstName: "Alice", Username: "alice"})
	require.NoError(t, err)

	pingPath, pingSum := buildPingPlugin(t)
	e.dir = t.TempDir()
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
`, e.sb.Addr(), e.sb.DC(), keyFile, e.dir, srv.URL(0), pingPath, pingSum)
	for i, name := range names {
		u, err := e.sb.CreateUser(ctx, sandbox.UserSpec{Phone: fmt.Sprintf("99966400%02d", i+1), FirstName: "Owner " + name})
		require.NoError(t, err)
		e.owners[name] = u
		fmt.Fprintf(&b, "  - {name: %s, api_id: 1, api_hash: \"${TEST_API_HASH}\", phone: %q}\n", name, u.Phone)
	}
	e.cfgPath = filepath.Join(t.TempDir(), "tgrunner.yaml")
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(b.String()), 0o600))
	cfg, err := config.Load(ctx, e.cfgPath, config.LoadOptions{LookupEnv: config.MapEnv(map[string]string{"TEST_API_HASH": e.apiHash})})
	require.NoError(t, err)

	// Log every account in once; the processes share the sessions in Redis.
	for _, name := range names {
		acfg, err := cfg.ForAccount(name)
		require.NoError(t, err)
		st, closeStore, err := openBackend(ctx, acfg, name)
		require.NoError(t, err)
		_, err = runner.Login(ctx, acfg, st, nil, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owners[name].Phone, "")})
		closeStore()
		require.NoError(t, err, "log in %s", name)
	}

	e.bin = filepath.Join(t.TempDir(), "runner")
	build := exec.Command("go", "build", "-o", e.bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	e.rdb = srv.Client(0)
	t.Cleanup(func() { _ = e.rdb.Close() })
	e.locker, err = lease.NewLocker(e.rdb, lease.Options{Holder: "probe"})
	require.NoError(t, err)
	return e
}

// start starts a runner process and returns its pid.
func (e *sharedEnv) start() int {
	t := e.t
	cmd := exec.Command(e.bin, "run", "--config", e.cfgPath)
	cmd.Env = append(os.Environ(), "TEST_API_HASH="+e.apiHash)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "runner.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	e.procs[pid], e.logs[pid] = cmd, logFile.Name()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("runner %d log:\n%s", pid, out)
		}
	})
	return pid
}

func (e *sharedEnv) holderPid(name string) int {
	holder, _, err := e.locker.Current(e.ctx, name)
	require.NoError(e.t, err)
	_, pid, _ := strings.Cut(holder, ":")
	n, _ := strconv.Atoi(pid)
	return n
}

func (e *sharedEnv) pongs(name string) int {
	history, err := e.sb.History(e.alice.ID, sandbox.UserPeer(e.owners[name].ID))
	require.NoError(e.t, err)
	n := 0
	for _, m := range history {
		if m.From == e.owners[name].ID && strings.HasPrefix(m.Text, "pong") {
			n++
		}
	}
	return n
}

func (e *sharedEnv) ping(name string) {
	_, err := e.sb.As(e.alice.ID).SendText(e.ctx, sandbox.UserPeer(e.owners[name].ID), ".ping")
	require.NoError(e.t, err)
}

func (e *sharedEnv) waitPongs(want int, within time.Duration, names ...string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		for _, name := range names {
			if e.pongs(name) < want {
				return false
			}
		}
		return true
	}, within, 50*time.Millisecond, "every account answers %d .ping", want)
}

// waitStatus waits until `runner status` through the shared control
// socket (served by whichever process holds its lock) lists every account
// with its true holder: the accounts the answering process runs in detail
// (logged in, the ping plugin running), the others with the holder's id.
// It returns the pid of the process that answered.
func (e *sharedEnv) waitStatus(names []string, pids ...int) int {
	e.t.Helper()
	c := ops.NewClient(filepath.Join(e.dir, config.DefaultSocketName))
	defer c.Close()
	var last string
	answered := 0
	ok := func() bool {
		st, err := c.Status(e.ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		if !slices.Contains(pids, st.PID) {
			last = fmt.Sprintf("answered by pid %d, not one of %v", st.PID, pids)
			return false
		}
		if len(st.Accounts) != len(names) {
			last = fmt.Sprintf("%d accounts in the status, want %d", len(st.Accounts), len(names))
			return false
		}
		for i, a := range st.Accounts {
			holder, _, err := e.locker.Current(e.ctx, a.Account.Name)
			require.NoError(e.t, err)
			switch {
			case a.Account.Name != names[i]:
				last = fmt.Sprintf("account %d is %s, want %s", i, a.Account.Name, names[i])
			case a.Held && holder != st.Holder:
				last = fmt.Sprintf("%s: held here (%s) but the lease says %s", a.Account.Name, st.Holder, holder)
			case a.Held && !(a.Account.LoggedIn && a.Account.UserID == e.owners[a.Account.Name].ID):
				last = fmt.Sprintf("%s: held here but not logged in as its owner: %+v", a.Account.Name, a.Account)
			case a.Held && (len(a.Plugins) != 1 || a.Plugins[0].State != "running"):
				last = fmt.Sprintf("%s: plugins %+v", a.Account.Name, a.Plugins)
			case !a.Held && (a.HeldBy == "" || a.HeldBy != holder):
				last = fmt.Sprintf("%s: shown held by %q, the lease says %q", a.Account.Name, a.HeldBy, holder)
			default:
				continue
			}
			return false
		}
		if !st.Ready.Ready {
			last = fmt.Sprintf("not ready: %v", st.Ready.Problems)
			return false
		}
		answered = st.PID
		return true
	}
	require.Eventually(e.t, ok, 30*time.Second, 100*time.Millisecond, "status through the shared socket: %s", func() string { return last }())
	return answered
}

// startHoldingAll starts a runner alone, waits until it holds every
// account and each has answered one .ping, and returns its pid.
func (e *sharedEnv) startHoldingAll(names []string) int {
	e.t.Helper()
	pid := e.start()
	e.waitHeld(names, pid)
	for _, name := range names {
		e.ping(name)
	}
	e.waitPongs(1, 60*time.Second, names...)
	return pid
}

// waitHeld waits until every account is held by one of pids.
func (e *sharedEnv) waitHeld(names []string, pids ...int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		for _, name := range names {
			if !slices.Contains(pids, e.holderPid(name)) {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "accounts %v held by %v", names, pids)
}

// Three runner processes share five accounts through Redis. Every account
// is held by exactly one of them, the sandbox never sees an account
// connected twice, and when the holder of two accounts is SIGKILLed both
// resume in the other processes within the lease TTL plus a margin,
// answering what arrived meanwhile exactly once.
func TestThreeProcessesShareFiveAccounts(t *testing.T) {
	names := []string{"a1", "a2", "a3", "a4", "a5"}
	e := newSharedEnv(t, names)
	var pids []int
	for range 3 {
		pids = append(pids, e.start())
	}

	// Every account ends up held by one of the three processes, spread over
	// them (at most two each), and answers.
	e.waitHeld(names, pids...)
	for _, name := range names {
		e.ping(name)
	}
	e.waitPongs(1, 60*time.Second, names...)
	held := map[int][]string{}
	for _, name := range names {
		held[e.holderPid(name)] = append(held[e.holderPid(name)], name)
	}
	victim := 0
	for pid, accounts := range held {
		require.LessOrEqual(t, len(accounts), 2, "fair share: process %d holds %v", pid, accounts)
		if len(accounts) == 2 {
			victim = pid
		}
	}
	require.NotZero(t, victim, "some process holds two accounts: %v", held)
	// One process answers `runner status` for all five accounts.
	e.waitStatus(names, pids...)

	// SIGKILL the holder of two accounts; messages for them arrive while
	// they are down and are answered once they resume elsewhere.
	moved := held[victim]
	require.NoError(t, e.procs[victim].Process.Kill())
	_ = e.procs[victim].Wait()
	killed := time.Now()
	for _, name := range moved {
		e.ping(name)
	}
	// TTL 3s, an acquisition round every TTL/3, a dead manager leaves the
	// fair-share count after one TTL; plus connecting and catching up.
	e.waitPongs(2, 30*time.Second, moved...)
	t.Logf("accounts %v resumed and answered %s after the SIGKILL", moved, time.Since(killed).Round(time.Millisecond))
	alive := slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return p == victim })
	e.waitHeld(moved, alive...)
	// The status still shows every account, from a survivor if the
	// victim was the one serving the socket.
	e.waitStatus(names, alive...)
	// Nothing doubled: one pong per .ping, and never two connections at once.
	for _, name := range names {
		want := 1
		if slices.Contains(moved, name) {
			want = 2
		}
		require.Equal(t, want, e.pongs(name), "pongs of %s", name)
		require.Equal(t, 1, e.sb.MaxConcurrentSessions(e.owners[name].ID), "account %s connected twice at once", name)
	}
}

// A holder paused (SIGSTOP) past its lease TTL loses its accounts to
// another process; resumed (SIGCONT), it must not act for them: every
// .ping, including those that reached its still-open connection while it
// was stopped, is answered exactly once.
func TestStoppedHolderDoesNotActForLostAccounts(t *testing.T) {
	names := []string{"s1", "s2"}
	e := newSharedEnv(t, names)
	first := e.startHoldingAll(names)

	second := e.start()
	require.NoError(t, e.procs[first].Process.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	// Sent while the holder is stopped: its connection is open but nobody
	// reads it; the new holder catches up on these.
	for _, name := range names {
		e.ping(name)
	}
	e.waitHeld(names, second)
	e.waitPongs(2, 30*time.Second, names...)
	t.Logf("accounts taken over and answered %s after the SIGSTOP", time.Since(stopped).Round(time.Millisecond))

	require.NoError(t, e.procs[first].Process.Signal(syscall.SIGCONT))
	// The resumed process notices at once (its local deadline passed) and
	// drops the accounts.
	require.Eventually(t, func() bool {
		out, _ := os.ReadFile(e.logs[first])
		return strings.Count(string(out), "Account lease lost") >= len(names)
	}, 30*time.Second, 50*time.Millisecond, "the resumed process reports both leases lost")
	for _, name := range names {
		e.ping(name)
	}
	e.waitPongs(3, 30*time.Second, names...)
	for _, name := range names {
		require.Equal(t, second, e.holderPid(name))
		require.Equal(t, 3, e.pongs(name), "each .ping of %s answered once", name)
		t.Logf("%s: at most %d connections at once (the stopped process kept its socket open)",
			name, e.sb.MaxConcurrentSessions(e.owners[name].ID))
	}
	// The resumed process dropped its connections for the lost accounts:
	// the sandbox sees one connection per account, the new holder's.
	require.Eventually(t, func() bool {
		for _, name := range names {
			if e.sb.ConnectedSessions(e.owners[name].ID) != 1 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "one connection per account once the stopped process resumed")
	// And the status through the shared socket shows both accounts with
	// the new holder, whichever process serves it.
	e.waitStatus(names, first, second)
}

// A runner that joins gets its share: the first process holds all four
// accounts, a second one starts, and two accounts are handed over to it
// (the first disconnects each before releasing its lease). Every .ping,
// before and after, is answered exactly once, and the sandbox never sees
// an account connected twice.
func TestJoiningRunnerTakesItsShare(t *testing.T) {
	names := []string{"j1", "j2", "j3", "j4"}
	e := newSharedEnv(t, names)
	first := e.startHoldingAll(names)

	second := e.start()
	joined := time.Now()
	require.Eventually(t, func() bool {
		count := map[int]int{}
		for _, name := range names {
			count[e.holderPid(name)]++
		}
		return count[first] == 2 && count[second] == 2
	}, 60*time.Second, 100*time.Millisecond, "two accounts handed over to the runner that joined")
	t.Logf("balanced 2/2 %s after the second runner started", time.Since(joined).Round(time.Millisecond))
	e.waitStatus(names, first, second)

	for _, name := range names {
		e.ping(name)
	}
	e.waitPongs(2, 60*time.Second, names...)
	for _, name := range names {
		require.Equal(t, 2, e.pongs(name), "each .ping of %s answered once", name)
		require.Equal(t, 1, e.sb.MaxConcurrentSessions(e.owners[name].ID), "account %s connected twice at once", name)
	}
	out, err := os.ReadFile(e.logs[first])
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(out), "Account handed over"), "the first runner logs each handover")
}

// runner pause on one machine reaches every account, including those
// another runner holds (the fleet's pause switch in Redis), and runner
// resume lifts it from anywhere: nothing is answered while paused, every
// .ping once after.
func TestFleetPauseReachesEveryRunner(t *testing.T) {
	names := []string{"p1", "p2"}
	e := newSharedEnv(t, names)
	first, second := e.start(), e.start()
	require.Eventually(t, func() bool {
		return e.holderPid("p1") != e.holderPid("p2") &&
			slices.Contains([]int{first, second}, e.holderPid("p1")) && slices.Contains([]int{first, second}, e.holderPid("p2"))
	}, 60*time.Second, 100*time.Millisecond, "one account in each runner")
	for _, name := range names {
		e.ping(name)
	}
	e.waitPongs(1, 60*time.Second, names...)

	ctl := func(args ...string) string {
		cmd := exec.Command(e.bin, append(args, "--config", e.cfgPath)...)
		cmd.Env = append(os.Environ(), "TEST_API_HASH="+e.apiHash)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	out := ctl("pause", "fleet test")
	require.Contains(t, out, "paused (account p1, p2)")
	c := ops.NewClient(filepath.Join(e.dir, config.DefaultSocketName))
	defer c.Close()
	st, err := c.Status(e.ctx)
	require.NoError(t, err)
	for _, a := range st.Accounts {
		require.NotNil(t, a.FleetPause, "%s shows the fleet pause", a.Account.Name)
		require.Equal(t, "fleet test", a.FleetPause.Reason)
		if a.Held {
			require.True(t, a.Guard.Paused, "the account held by the answering runner is paused at once")
		}
	}
	// The runner that does not serve the socket notices at its next poll
	// of the switch (every second).
	require.Eventually(t, func() bool {
		n := 0
		for _, pid := range []int{first, second} {
			b, _ := os.ReadFile(e.logs[pid])
			n += strings.Count(string(b), "Paused from outside this runner")
		}
		return n == len(names)
	}, 10*time.Second, 50*time.Millisecond, "both holders hold their writes")
	for _, name := range names {
		e.ping(name)
	}
	require.Never(t, func() bool { return e.pongs("p1") > 1 || e.pongs("p2") > 1 }, 3*time.Second, 100*time.Millisecond,
		"no answer while paused, in either runner")

	out = ctl("resume")
	require.Contains(t, out, "resumed (account p1, p2)")
	e.waitPongs(2, 30*time.Second, names...)
	for _, name := range names {
		require.Equal(t, 2, e.pongs(name), "each .ping of %s answered once", name)
	}

	// Plugin commands about the account the other runner holds go to that
	// runner through Redis.
	var elsewhere string
	for _, a := range st.Accounts {
		if !a.Held {
			elsewhere = a.Account.Name
		}
	}
	require.NotEmpty(t, elsewhere)
	holder := e.holderPid(elsewhere)
	out = ctl("plugins", "restart", "ping", "--account", elsewhere)
	require.Contains(t, out, "ping: restarting")
	require.Contains(t, ctl("plugins", "list", "--account", elsewhere), "ping")
	b, err := os.ReadFile(e.logs[holder])
	require.NoError(t, err)
	require.Contains(t, string(b), "Answered a control request relayed from another runner")
	require.Contains(t, string(b), "Plugin control through the control socket")
	e.ping(elsewhere)
	e.waitPongs(3, 30*time.Second, elsewhere)
}
