// Package lease owns exclusive account leases on Redis: which runner process
// may connect an account right now. A lease is a key with a TTL that its
// holder renews, and a fencing token (a per-account counter incremented at
// every acquisition) that the storage checks on every write, so a holder
// that lost its lease (GC pause, SIGSTOP, partition) can write nothing more.
//
// The lease key of account A is "tgr:{A}:lease" and holds
// "TOKEN:NONCE:HOLDER";
// the counter is "tgr:{A}:lease:counter"; "tgr:{A}:lease:handover" briefly
// names the manager a rebalancing manager handed the account to. The hash
// tag {A} keeps them in the slot of the account's data in a Redis Cluster.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key tgrunner writes to Redis.
const DefaultPrefix = "tgr"

var accountRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ValidAccount checks an account name: 1-64 of A-Z a-z 0-9 _ . - (no
// braces, so it is safe inside a hash tag).
func ValidAccount(account string) error {
	if !accountRE.MatchString(account) {
		return fmt.Errorf("account name %q: use 1-64 letters, digits, '_', '.' or '-'", account)
	}
	return nil
}

// KeyPrefix is the prefix of every key of account: "tgr:{account}:".
func KeyPrefix(prefix, account string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return prefix + ":{" + account + "}:"
}

// Key is the lease key of account.
func Key(prefix, account string) string { return KeyPrefix(prefix, account) + "lease" }

// HandoverKey names the manager an account was just handed over to (see
// Manager): other managers leave the free account to it for one TTL.
func HandoverKey(prefix, account string) string { return Key(prefix, account) + ":handover" }

// HeldError reports that another holder has the lease.
type HeldError struct {
	Account string
	Holder  string // "" when unknown
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("account %s is held by another runner (%s)", e.Account, e.Holder)
}

// ErrLost is wrapped by Lease.Err once the lease is lost.
var ErrLost = errors.New("account lease lost")

// Options tunes a Locker. Zero values take the defaults.
type Options struct {
	// TTL of the lease key. The holder renews at TTL/3; another runner takes
	// the account over at most TTL (plus its acquire interval) after the
	// holder stopped renewing. Default 15s.
	TTL time.Duration
	// Holder names this process in the lease ("host:pid" by default).
	Holder string
	// Prefix of the keys; default "tgr".
	Prefix string
	// Safety is subtracted from the TTL for the local validity deadline,
	// covering clock-rate drift between this host and Redis. Default TTL/10.
	Safety time.Duration
}

func (o *Options) setDefaults() {
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		o.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Safety <= 0 {
		o.Safety = o.TTL / 10
	}
}

// Locker acquires leases for one process identity.
type Locker struct {
	rdb  redis.UniversalClient
	opts Options
}

// NewLocker returns a Locker using rdb.
func NewLocker(rdb redis.UniversalClient, opts Options) (*Locker, error) {
	opts.setDefaults()
	if strings.ContainsAny(opts.Holder, "\n") {
		return nil, fmt.Errorf("lease holder %q: must be one line", opts.Holder)
	}
	if opts.Safety >= opts.TTL/2 {
		return nil, fmt.Errorf("lease safety margin %v must be below half the TTL %v", opts.Safety, opts.TTL)
	}
	return &Locker{rdb: rdb, opts: opts}, nil
}

// Holder is this process's identity.
func (l *Locker) Holder() string { return l.opts.Holder }

// Client is the Redis client the locker uses.
func (l *Locker) Client() redis.UniversalClient { return l.rdb }

// TTL is the lease TTL.
func (l *Locker) TTL() time.Duration { return l.opts.TTL }

// Prefix is the key prefix.
func (l *Locker) Prefix() string { return l.opts.Prefix }

var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local tok = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], tok .. ':' .. ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
return {tok, ''}
`)

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// handoverScript releases the lease and reserves the account for another
// holder in one step, so no third manager slips in between.
var handoverScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

// Acquire takes account's lease, or fails with *HeldError when another
// holder has it. The lease renews itself until Release or until it is lost.
func (l *Locker) Acquire(ctx context.Context, account string) (*Lease, error) {
	if err := ValidAccount(account); err != nil {
		return nil, err
	}
	key := Key(l.opts.Prefix, account)
	started := time.Now()
	// A nonce keeps values unique even if a failover loses counter
	// increments and hands the same token to the same holder again.
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	suffix := hex.EncodeToString(nonce[:]) + ":" + l.opts.Holder
	// Acquiring clears a handover reservation: it has served its purpose.
	keys := []string{key, key + ":counter", HandoverKey(l.opts.Prefix, account)}
	res, err := acquireScript.Run(ctx, l.rdb, keys, suffix, l.opts.TTL.Milliseconds()).Slice()
	if err != nil {
		return nil, fmt.Errorf("acquire lease of account %s: %w", account, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("acquire lease of account %s: unexpected reply %v", account, res)
	}
	tok, _ := res[0].(int64)
	if tok == 0 {
		cur, _ := res[1].(string)
		return nil, &HeldError{Account: account, Holder: holderOf(cur)}
	}
	le := &Lease{
		l:       l,
		account: account,
		key:     key,
		token:   uint64(tok),
		value:   strconv.FormatInt(tok, 10) + ":" + suffix,
		lost:    make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	le.deadline = started.Add(l.opts.TTL - l.opts.Safety)
	go le.renewLoop()
	return le, nil
}

// Current returns the holder of account's lease and its token, or "" when
// nobody holds it.
func (l *Locker) Current(ctx context.Context, account string) (holder string, token uint64, err error) {
	v, err := l.rdb.Get(ctx, Key(l.opts.Prefix, account)).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("read lease of account %s: %w", account, err)
	}
	t, _, _ := strings.Cut(v, ":")
	n, _ := strconv.ParseUint(t, 10, 64)
	return holderOf(v), n, nil
}

// holderOf extracts the holder from a lease value "TOKEN:NONCE:HOLDER".
func holderOf(v string) string {
	_, rest, _ := strings.Cut(v, ":")
	_, holder, _ := strings.Cut(rest, ":")
	return holder
}

// Lease is a held account lease.
type Lease struct {
	l       *Locker
	account string
	key     string
	token   uint64
	value   string

	mu       sync.Mutex
	deadline time.Time // local: valid until then unless renewed
	err      error
	lostOnce sync.Once
	lost     chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	noRenew  atomic.Bool // tests: a holder that stalled
}

// Account is the leased account.
func (le *Lease) Account() string { return le.account }

// Token is the fencing token: larger for every later acquisition.
func (le *Lease) Token() uint64 { return le.token }

// FenceKey is the Redis key whose value fences writes.
func (le *Lease) FenceKey() string { return le.key }

// FenceValue is what FenceKey holds while this lease is held.
func (le *Lease) FenceValue() string { return le.value }

// Lost is closed as soon as the lease is lost: a renewal found another
// holder or no key, or the local deadline passed without a renewal. Stop
// everything the account does when it fires.
func (le *Lease) Lost() <-chan struct{} { return le.lost }

// Err is nil while held, else an error wrapping ErrLost with the cause.
func (le *Lease) Err() error {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.err
}

// Valid reports whether the lease is still held by the local clock: the
// last successful renewal started less than TTL - Safety ago. Check it
// right before acting on the account (it is cheap): after a process pause
// it turns false at once, before any timer had a chance to fire.
func (le *Lease) Valid() bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.err == nil && time.Now().Before(le.deadline)
}

func (le *Lease) markLost(cause error) {
	le.lostOnce.Do(func() {
		le.mu.Lock()
		le.err = fmt.Errorf("%w: account %s: %w", ErrLost, le.account, cause)
		le.mu.Unlock()
		close(le.lost)
	})
}

func (le *Lease) renewLoop() {
	defer close(le.done)
	ttl := le.l.opts.TTL
	every := ttl / 3
	retry := ttl / 15
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		le.mu.Lock()
		deadline := le.deadline
		le.mu.Unlock()
		// Fire Lost when the deadline passes even while a renewal hangs.
		expire := time.NewTimer(time.Until(deadline))
		select {
		case <-le.stop:
			expire.Stop()
			return
		case <-expire.C:
			le.markLost(errors.New("not renewed before the TTL ran out"))
			return
		case <-timer.C:
			expire.Stop()
		}
		if le.noRenew.Load() {
			timer.Reset(time.Hour)
			continue
		}
		if !time.Now().Before(deadline) {
			// A pause (SIGSTOP, GC) outlived the lease: someone else may hold it.
			le.markLost(errors.New("process paused past the lease TTL"))
			return
		}
		started := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ok, err := renewScript.Run(ctx, le.l.rdb, []string{le.key}, le.value, ttl.Milliseconds()).Int()
		cancel()
		switch {
		case err != nil:
			// Transient: retry soon while the lease is still valid locally.
			timer.Reset(retry)
		case ok == 0:
			le.markLost(errors.New("another runner holds the lease or it expired"))
			return
		default:
			le.mu.Lock()
			le.deadline = started.Add(ttl - le.l.opts.Safety)
			le.mu.Unlock()
			timer.Reset(every)
		}
	}
}

// Release stops renewing and deletes the lease if still held, so another
// runner can take the account at once. Lost fires.
func (le *Lease) Release(ctx context.Context) error {
	le.stopOnce.Do(func() { close(le.stop) })
	<-le.done
	le.markLost(errors.New("released"))
	if _, err := releaseScript.Run(ctx, le.l.rdb, []string{le.key}, le.value).Result(); err != nil {
		return fmt.Errorf("release lease of account %s: %w", le.account, err)
	}
	return nil
}

// handOver is Release that also reserves the account for holder for one
// TTL (HandoverKey), if the lease was still ours.
func (le *Lease) handOver(ctx context.Context, holder string) error {
	le.stopOnce.Do(func() { close(le.stop) })
	<-le.done
	le.markLost(errors.New("released"))
	keys := []string{le.key, HandoverKey(le.l.opts.Prefix, le.account)}
	if _, err := handoverScript.Run(ctx, le.l.rdb, keys, le.value, holder, le.l.opts.TTL.Milliseconds()).Result(); err != nil {
		return fmt.Errorf("hand over lease of account %s: %w", le.account, err)
	}
	return nil
}

// stopRenewing halts renewals but not the local deadline: tests use it to
// simulate a holder that stalls.
func (le *Lease) stopRenewing() { le.noRenew.Store(true) }
