package redisstore_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gotd/td/telegram/updates"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// dumpAccount serialises every key of the account except the lease.
func dumpAccount(t *testing.T, rdb *redis.Client, acct string) map[string]string {
	t.Helper()
	ctx := context.Background()
	prefix := lease.KeyPrefix("", acct)
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	require.NoError(t, err)
	sort.Strings(keys)
	out := map[string]string{}
	for _, k := range keys {
		if k == lease.Key("", acct) || k == lease.Key("", acct)+":counter" {
			continue
		}
		v, err := rdb.Dump(ctx, k).Result()
		require.NoError(t, err)
		out[k] = v
	}
	return out
}

func TestEveryWriteIsFenced(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	acct := newAccount()
	mine, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "old"})
	require.NoError(t, err)
	le, err := mine.Acquire(ctx, acct)
	require.NoError(t, err)
	// No timed state flush: the test pushes the state with Append itself.
	s, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{Journal: store.JournalOptions{CompactInterval: -1}, StateFlushInterval: time.Hour})
	require.NoError(t, err)
	defer s.Close()

	// Some data, so deletes and acks have something to act on.
	require.NoError(t, s.Session().StoreSession(ctx, []byte("key")))
	require.NoError(t, s.UpdateState().SetState(ctx, 1, updates.State{Pts: 1}))
	require.NoError(t, s.Peers().Put(ctx, store.Peer{Ref: store.PeerRef{Kind: store.PeerUser, ID: 5}, Username: "u"}))
	require.NoError(t, s.PluginKV("p").Set(ctx, "k", []byte("v")))
	require.NoError(t, s.Outbox().Put(ctx, "a", []byte("x")))
	require.NoError(t, s.Audit().Append(ctx, time.Unix(100, 0), []byte("x")))
	_, err = s.Journal().Append(ctx, entries("a1", "a2"))
	require.NoError(t, err)
	c, err := s.Journal().Consumer(ctx, "c", store.ConsumerOptions{})
	require.NoError(t, err)
	_, err = c.Read(ctx, 0, 10)
	require.NoError(t, err)

	// The lease moves to another runner (expiry or failover).
	require.NoError(t, rdb.Del(ctx, le.FenceKey()).Err())
	other, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "new"})
	require.NoError(t, err)
	nl, err := other.Acquire(ctx, acct)
	require.NoError(t, err)
	defer nl.Release(ctx)
	before := dumpAccount(t, rdb, acct)

	st := s.UpdateState()
	// State setters only hold the write; the next Append carries it.
	setThenAppend := func(set func() error) func() error {
		return func() error {
			if err := set(); err != nil {
				return err
			}
			_, err := s.Journal().Append(ctx, nil)
			return err
		}
	}
	writes := map[string]func() error{
		"store session":  func() error { return s.Session().StoreSession(ctx, []byte("evil")) },
		"delete session": func() error { return s.Session().DeleteSession(ctx) },
		"set state":      setThenAppend(func() error { return st.SetState(ctx, 1, updates.State{Pts: 9}) }),
		"set pts":        setThenAppend(func() error { return st.SetPts(ctx, 1, 9) }),
		"set date seq":   setThenAppend(func() error { return st.SetDateSeq(ctx, 1, 9, 9) }),
		"channel pts":    setThenAppend(func() error { return st.SetChannelPts(ctx, 1, 7, 9) }),
		"channel hash":   func() error { return s.AccessHashes().SetChannelAccessHash(ctx, 1, 7, 9) },
		"user hash":      func() error { return s.AccessHashes().SetUserAccessHash(ctx, 1, 7, 9) },
		"peer put":       func() error { return s.Peers().Put(ctx, store.Peer{Ref: store.PeerRef{Kind: store.PeerUser, ID: 6}}) },
		"peer mark":      func() error { return s.Peers().MarkWroteFirst(ctx, store.PeerRef{Kind: store.PeerUser, ID: 5}) },
		"peer delete":    func() error { return s.Peers().Delete(ctx, store.PeerRef{Kind: store.PeerUser, ID: 5}) },
		"kv set":         func() error { return s.PluginKV("p").Set(ctx, "k2", []byte("v")) },
		"kv delete":      func() error { return s.PluginKV("p").Delete(ctx, "k") },
		"audit append":   func() error { return s.Audit().Append(ctx, time.Now(), []byte("x")) },
		"audit prune": func() error {
			_, err := s.Audit().Prune(ctx, time.Now())
			return err
		},
		"outbox put":    func() error { return s.Outbox().Put(ctx, "b", []byte("x")) },
		"outbox delete": func() error { return s.Outbox().Delete(ctx, "a") },
		"update":        func() error { return s.Update(ctx, func(tx store.Txn) error { return tx.KV("p").Set("k3", nil) }) },
		"register":      func() error { _, err := s.Journal().Consumer(ctx, "new", store.ConsumerOptions{}); return err },
		"ack":           func() error { return c.Ack(ctx, 1) },
		"ack with": func() error {
			return c.AckWith(ctx, func(tx store.Txn) error { return tx.PutAction("c", nil) }, 2)
		},
		"unregister": func() error { return s.Journal().Unregister(ctx, "c") },
		"compact":    func() error { _, err := s.Journal().Compact(ctx); return err },
		"append": func() error {
			_, err := s.Journal().Append(ctx, entries("b1"))
			return err
		},
	}
	for name, w := range writes {
		require.ErrorIs(t, w(), redisstore.ErrFenced, name)
	}
	require.Equal(t, before, dumpAccount(t, rdb, acct), "a fenced writer changed nothing")
	require.ErrorIs(t, s.Journal().Failed(), store.ErrJournalFailed, "a fenced append fails the journal")

	// Reads still work, and a store without a lease is read-only.
	ro, err := redisstore.Open(ctx, rdb, acct, nil, redisstore.Options{})
	require.NoError(t, err)
	defer ro.Close()
	v, err := ro.PluginKV("p").Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	require.ErrorIs(t, ro.PluginKV("p").Set(ctx, "k", nil), redisstore.ErrFenced)

	// The new holder writes normally.
	s2, err := redisstore.Open(ctx, rdb, acct, nl, redisstore.Options{})
	require.NoError(t, err)
	defer s2.Close()
	added, err := s2.Journal().Append(ctx, entries("a2", "b1"))
	require.NoError(t, err)
	require.Equal(t, []uint64{3}, seqsOf(added), "dedup and seqs continue across holders")
}

func TestOpenChecksTheLeaseAccount(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute})
	require.NoError(t, err)
	le, err := l.Acquire(ctx, newAccount())
	require.NoError(t, err)
	defer le.Release(ctx)
	_, err = redisstore.Open(ctx, rdb, newAccount(), le, redisstore.Options{})
	require.ErrorContains(t, err, "the lease is for key")
	_, err = redisstore.Open(ctx, rdb, "bad{name}", nil, redisstore.Options{})
	require.ErrorContains(t, err, "account name")
}

// WaitReplicas: with a real replica writes succeed; with the replica gone
// Append fails and the journal fail-stops.
func TestWaitReplicas(t *testing.T) {
	redistest.Client(t)
	primary, err := redistest.Start()
	require.NoError(t, err)
	defer primary.Stop()
	replica, err := redistest.Start("--replicaof", "127.0.0.1", fmt.Sprint(primary.Port))
	require.NoError(t, err)
	defer replica.Stop()
	ctx := context.Background()
	rdb := primary.Client(0)
	defer rdb.Close()
	waitForReplica := func() bool {
		info, err := rdb.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !waitForReplica() {
		require.True(t, time.Now().Before(deadline), "replica did not connect")
		time.Sleep(20 * time.Millisecond)
	}
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute})
	require.NoError(t, err)
	le, err := l.Acquire(ctx, "acct")
	require.NoError(t, err)
	defer le.Release(ctx)
	s, err := redisstore.Open(ctx, rdb, "acct", le, redisstore.Options{WaitReplicas: 1, WaitTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Journal().Append(ctx, entries("a1"))
	require.NoError(t, err)
	c, err := s.Journal().Consumer(ctx, "c", store.ConsumerOptions{})
	require.NoError(t, err)
	require.NoError(t, c.AckWith(ctx, func(tx store.Txn) error { return tx.KV("p").Set("k", nil) }, 1))
	rr := replica.Client(0)
	defer rr.Close()
	n, err := rr.Exists(ctx, "tgr:{acct}:j:stream", "tgr:{acct}:kv:p").Result()
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the replica has the writes when they return")

	replica.Stop()
	s2, err := redisstore.Open(ctx, rdb, "acct", le, redisstore.Options{WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer s2.Close()
	_, err = s2.Journal().Append(ctx, entries("a2"))
	require.ErrorContains(t, err, "0 of 1 acknowledged")
	require.ErrorIs(t, s2.Journal().Failed(), store.ErrJournalFailed)
}
