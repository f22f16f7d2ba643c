package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram/updates"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// The conformance tests run the same behaviours against the bbolt store
// (the reference) and the Redis store, through store.Backend.

var srv *redistest.Server

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &srv)) }

var accountN atomic.Int64

func newAccount() string { return fmt.Sprintf("t%d-%d", os.Getpid(), accountN.Add(1)) }

type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type backendOpts struct {
	KV      store.KVLimits
	Journal store.JournalOptions
	Now     func() time.Time
}

// env opens one backend and can reopen it, as a restarted runner would.
type env struct {
	name   string
	open   func() store.Backend
	b      store.Backend
	lease  *lease.Lease // redis only
	redis  *redisstore.Store
	closed bool
}

func (e *env) reopen(t *testing.T) store.Backend {
	t.Helper()
	require.NoError(t, e.b.Close())
	e.b = e.open()
	return e.b
}

type kind string

const (
	kindBolt  kind = "bbolt"
	kindRedis kind = "redis"
)

func newEnv(t *testing.T, k kind, o backendOpts) *env {
	t.Helper()
	ctx := context.Background()
	if o.Journal.CompactInterval == 0 {
		o.Journal.CompactInterval = -1
	}
	e := &env{name: string(k)}
	switch k {
	case kindBolt:
		dir := filepath.Join(t.TempDir(), "store")
		e.open = func() store.Backend {
			s, err := store.Open(ctx, dir, store.Options{KV: o.KV, Journal: o.Journal, Now: o.Now})
			require.NoError(t, err)
			return store.Bolt(s)
		}
	case kindRedis:
		rdb := redistest.Client(t)
		acct := newAccount()
		l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute, Holder: "test"})
		require.NoError(t, err)
		le, err := l.Acquire(ctx, acct)
		require.NoError(t, err)
		e.lease = le
		t.Cleanup(func() { _ = le.Release(context.Background()) })
		e.open = func() store.Backend {
			s, err := redisstore.Open(ctx, rdb, acct, le, redisstore.Options{KV: o.KV, Journal: o.Journal, Now: o.Now, PollInterval: 50 * time.Millisecond})
			require.NoError(t, err)
			e.redis = s
			return s
		}
	}
	e.b = e.open()
	t.Cleanup(func() { _ = e.b.Close() })
	return e
}

// both runs f against each backend as a subtest.
func both(t *testing.T, o func() backendOpts, f func(t *testing.T, e *env)) {
	for _, k := range []kind{kindBolt, kindRedis} {
		t.Run(string(k), func(t *testing.T) {
			if k == kindRedis {
				redistest.Client(t) // skips without redis-server
			}
			opts := backendOpts{}
			if o != nil {
				opts = o()
			}
			f(t, newEnv(t, k, opts))
		})
	}
}

func TestSession(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		ss := e.b.Session()
		_, err := ss.LoadSession(ctx)
		require.ErrorIs(t, err, session.ErrNotFound)
		require.NoError(t, ss.DeleteSession(ctx), "deleting a missing session is fine")
		key := []byte("auth key \x00\xff binary")
		require.NoError(t, ss.StoreSession(ctx, key))
		ss = e.reopen(t).Session()
		got, err := ss.LoadSession(ctx)
		require.NoError(t, err)
		require.Equal(t, key, got)
		require.NoError(t, ss.StoreSession(ctx, []byte("v2")))
		got, err = ss.LoadSession(ctx)
		require.NoError(t, err)
		require.Equal(t, "v2", string(got))
		require.NoError(t, ss.DeleteSession(ctx))
		_, err = ss.LoadSession(ctx)
		require.ErrorIs(t, err, session.ErrNotFound)
	})
}

func TestStateStorage(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.b.UpdateState()
		_, found, err := st.GetState(ctx, 1)
		require.NoError(t, err)
		require.False(t, found)
		require.Error(t, st.SetPts(ctx, 1, 5), "partial setters need a state (gotd relies on the error)")
		require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 10, Qts: 2, Date: 3, Seq: 4}))
		require.NoError(t, st.SetPts(ctx, 1, 11))
		require.NoError(t, st.SetQts(ctx, 1, 12))
		require.NoError(t, st.SetDateSeq(ctx, 1, 100, 7))
		require.NoError(t, st.SetDate(ctx, 1, 101))
		require.NoError(t, st.SetSeq(ctx, 1, 8))
		require.NoError(t, st.SetChannelPts(ctx, 1, 500, 42))
		require.NoError(t, st.SetChannelPts(ctx, 1, 501, 43))
		require.NoError(t, st.SetChannelPts(ctx, 2, 600, 1))

		st = e.reopen(t).UpdateState()
		got, found, err := st.GetState(ctx, 1)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, updates.State{Pts: 11, Qts: 12, Date: 101, Seq: 8}, got)
		pts, found, err := st.GetChannelPts(ctx, 1, 500)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, 42, pts)
		_, found, err = st.GetChannelPts(ctx, 1, 999)
		require.NoError(t, err)
		require.False(t, found)
		chans := map[int64]int{}
		require.NoError(t, st.ForEachChannels(ctx, 1, func(ctx context.Context, id int64, pts int) error {
			chans[id] = pts
			// Calling back into the store from f must work.
			_, _, err := st.GetChannelPts(ctx, 1, id)
			return err
		}))
		require.Equal(t, map[int64]int{500: 42, 501: 43}, chans)
	})
}

func TestStateFrozenAfterJournalFailure(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		st := e.b.UpdateState()
		require.NoError(t, st.SetState(ctx, 1, updates.State{Pts: 10}))
		e.b.Journal().Fail(errors.New("disk on fire"))
		for name, set := range map[string]func() error{
			"state":       func() error { return st.SetState(ctx, 1, updates.State{Pts: 20}) },
			"pts":         func() error { return st.SetPts(ctx, 1, 20) },
			"qts":         func() error { return st.SetQts(ctx, 1, 20) },
			"seq":         func() error { return st.SetSeq(ctx, 1, 20) },
			"date":        func() error { return st.SetDate(ctx, 1, 20) },
			"date seq":    func() error { return st.SetDateSeq(ctx, 1, 20, 20) },
			"channel pts": func() error { return st.SetChannelPts(ctx, 1, 5, 20) },
		} {
			err := set()
			require.ErrorIs(t, err, store.ErrJournalFailed, name)
			require.ErrorContains(t, err, "disk on fire", name)
		}
		_, err := e.b.Journal().Append(ctx, []store.Entry{{DedupKey: "x"}})
		require.ErrorIs(t, err, store.ErrJournalFailed)
		got, _, err := st.GetState(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, 10, got.Pts)
		// Reopening clears the failure (getDifference replays from pts 10).
		st = e.reopen(t).UpdateState()
		require.NoError(t, st.SetPts(ctx, 1, 11))
	})
}

func TestAccessHashes(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		ah := e.b.AccessHashes()
		_, found, err := ah.GetChannelAccessHash(ctx, 1, 10)
		require.NoError(t, err)
		require.False(t, found)
		require.NoError(t, ah.SetChannelAccessHash(ctx, 1, 10, -1234567890123456789))
		require.NoError(t, ah.SetUserAccessHash(ctx, 1, 10, 99))
		ah = e.reopen(t).AccessHashes()
		h, found, err := ah.GetChannelAccessHash(ctx, 1, 10)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, int64(-1234567890123456789), h, "full int64 range survives")
		h, found, err = ah.GetUserAccessHash(ctx, 1, 10)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, int64(99), h)
		_, found, err = ah.GetUserAccessHash(ctx, 2, 10)
		require.NoError(t, err)
		require.False(t, found, "per self user")
	})
}

func TestPeerStore(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		ps := e.b.Peers()
		alice := store.Peer{Ref: store.PeerRef{Kind: store.PeerUser, ID: 10}, AccessHash: 111, FirstName: "Alice", Username: "Alice_W", Phone: "+1 (555) 0100", Contact: true}
		news := store.Peer{Ref: store.PeerRef{Kind: store.PeerChannel, ID: 10}, AccessHash: 222, Title: "News", Username: "newsroom", Broadcast: true}
		group := store.Peer{Ref: store.PeerRef{Kind: store.PeerChat, ID: 30}, Title: "Friends"}
		require.NoError(t, ps.Put(ctx, alice, news, group))
		require.Error(t, ps.Put(ctx, store.Peer{Ref: store.PeerRef{Kind: 9, ID: 1}}))
		require.NoError(t, ps.MarkWroteFirst(ctx, alice.Ref))

		ps = e.reopen(t).Peers()
		lookups := []struct {
			name    string
			get     func() (store.Peer, error)
			wantRef store.PeerRef
		}{
			{"by ref", func() (store.Peer, error) { return ps.Get(ctx, news.Ref) }, news.Ref},
			{"username any case", func() (store.Peer, error) { return ps.ByUsername(ctx, "alice_w") }, alice.Ref},
			{"username with @", func() (store.Peer, error) { return ps.ByUsername(ctx, "@NEWSROOM") }, news.Ref},
			{"phone other format", func() (store.Peer, error) { return ps.ByPhone(ctx, "15550100") }, alice.Ref},
		}
		for _, l := range lookups {
			p, err := l.get()
			require.NoError(t, err, l.name)
			require.Equal(t, l.wantRef, p.Ref, l.name)
		}
		p, err := ps.Get(ctx, alice.Ref)
		require.NoError(t, err)
		require.True(t, p.WroteFirst)
		require.True(t, p.Contact)
		require.Equal(t, int64(111), p.AccessHash)
		byID, err := ps.ByID(ctx, 10)
		require.NoError(t, err)
		require.Len(t, byID, 2, "user 10 and channel 10 are different peers")

		require.NoError(t, ps.Put(ctx, store.Peer{Ref: alice.Ref, FirstName: "Alice", Username: "alice_new"}))
		p, err = ps.Get(ctx, alice.Ref)
		require.NoError(t, err)
		require.Equal(t, int64(111), p.AccessHash, "a min entity keeps the known hash")
		require.True(t, p.WroteFirst, "WroteFirst is sticky")
		_, err = ps.ByUsername(ctx, "alice_w")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = ps.ByPhone(ctx, "15550100")
		require.ErrorIs(t, err, store.ErrNotFound, "phone dropped when no longer known")
		p, err = ps.ByUsername(ctx, "ALICE_NEW")
		require.NoError(t, err)
		require.Equal(t, alice.Ref, p.Ref)

		require.NoError(t, ps.Put(ctx, store.Peer{Ref: store.PeerRef{Kind: store.PeerUser, ID: 11}, Username: "newsroom"}))
		p, err = ps.ByUsername(ctx, "newsroom")
		require.NoError(t, err)
		require.Equal(t, store.PeerRef{Kind: store.PeerUser, ID: 11}, p.Ref, "the latest owner of a username wins")

		require.NoError(t, ps.Delete(ctx, alice.Ref))
		_, err = ps.Get(ctx, alice.Ref)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = ps.ByUsername(ctx, "alice_new")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, ps.MarkWroteFirst(ctx, alice.Ref), store.ErrNotFound)
		require.NoError(t, ps.Delete(ctx, alice.Ref), "deleting twice is fine")
	})
}

func TestPluginKV(t *testing.T) {
	both(t, func() backendOpts {
		return backendOpts{KV: store.KVLimits{MaxKeyBytes: 8, MaxValueBytes: 16, MaxPluginBytes: 30}}
	}, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.b.PluginKV("a"), e.b.PluginKV("b")
		require.NoError(t, a.Set(ctx, "x:1", []byte("one")))
		require.NoError(t, a.Set(ctx, "x:2", []byte("two")))
		require.NoError(t, a.Set(ctx, "y:1", []byte("why")))
		require.NoError(t, b.Set(ctx, "x:1", []byte("other")))
		v, err := a.Get(ctx, "x:1")
		require.NoError(t, err)
		require.Equal(t, "one", string(v))
		_, err = a.Get(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := a.List(ctx, "x:", 0)
		require.NoError(t, err)
		require.Equal(t, []store.KVPair{{Key: "x:1", Value: []byte("one")}, {Key: "x:2", Value: []byte("two")}}, list)
		list, err = a.List(ctx, "", 1)
		require.NoError(t, err)
		require.Len(t, list, 1)
		usage, err := a.Usage(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(3*3+3*3), usage)

		for _, l := range []struct {
			name, key string
			value     []byte
			limit     string
		}{
			{"long key", "123456789", nil, "key size"},
			{"big value", "k", make([]byte, 17), "value size"},
			{"plugin total", "big", make([]byte, 16), "plugin total"},
		} {
			err := a.Set(ctx, l.key, l.value)
			var lerr *store.LimitError
			require.ErrorAs(t, err, &lerr, l.name)
			require.Equal(t, l.limit, lerr.Limit, l.name)
			require.Equal(t, "a", lerr.Plugin)
		}
		require.NoError(t, a.Set(ctx, "x:1", []byte("1")))
		require.NoError(t, a.Delete(ctx, "y:1"))
		require.NoError(t, a.Delete(ctx, "y:1"))
		usage, err = a.Usage(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(3+1+3+3), usage)
		require.NoError(t, a.Set(ctx, "big", make([]byte, 16)))
		v, err = e.reopen(t).PluginKV("b").Get(ctx, "x:1")
		require.NoError(t, err)
		require.Equal(t, "other", string(v), "plugins are isolated")
		empty, err := e.b.PluginKV("a").Get(ctx, "big")
		require.NoError(t, err)
		require.Len(t, empty, 16)
	})
}

func TestPluginKVListPaging(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		kv := e.b.PluginKV("p")
		require.NoError(t, e.b.Update(ctx, func(tx store.Txn) error {
			for i := 0; i < 1200; i++ {
				if err := tx.KV("p").Set(fmt.Sprintf("k%04d", i), []byte{byte(i)}); err != nil {
					return err
				}
			}
			return tx.KV("p").Set("l", nil)
		}))
		all, err := kv.List(ctx, "k", 0)
		require.NoError(t, err)
		require.Len(t, all, 1200)
		for i, p := range all {
			require.Equal(t, fmt.Sprintf("k%04d", i), p.Key)
		}
		some, err := kv.List(ctx, "k1", 150)
		require.NoError(t, err)
		require.Len(t, some, 150)
		require.Equal(t, "k1000", some[0].Key)
		v, err := kv.Get(ctx, "l")
		require.NoError(t, err)
		require.Empty(t, v)
	})
}

func TestTxnReadsOwnWritesAndRollsBack(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		err := e.b.Update(ctx, func(tx store.Txn) error {
			kv := tx.KV("g")
			if err := kv.Set("n", []byte("1")); err != nil {
				return err
			}
			v, err := kv.Get("n")
			if err != nil {
				return err
			}
			if string(v) != "1" {
				return fmt.Errorf("read %q inside the transaction", v)
			}
			if err := kv.Delete("n"); err != nil {
				return err
			}
			if _, err := kv.Get("n"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("deleted key still visible: %v", err)
			}
			return kv.Set("m", []byte("2"))
		})
		require.NoError(t, err)
		_, err = e.b.PluginKV("g").Get(ctx, "n")
		require.ErrorIs(t, err, store.ErrNotFound)

		err = e.b.Update(ctx, func(tx store.Txn) error {
			require.NoError(t, tx.KV("g").Set("m", []byte("3")))
			require.NoError(t, tx.PutAction("act", []byte("x")))
			require.NoError(t, tx.AppendAudit(time.Time{}, []byte("audit")))
			return errors.New("handler failed")
		})
		require.ErrorContains(t, err, "handler failed")
		v, err := e.b.PluginKV("g").Get(ctx, "m")
		require.NoError(t, err)
		require.Equal(t, "2", string(v), "a failed transaction writes nothing")
		_, err = e.b.Outbox().Get(ctx, "act")
		require.ErrorIs(t, err, store.ErrNotFound)
		recs, err := e.b.Audit().Range(ctx, time.Time{}, time.Now().Add(time.Hour), 0)
		require.NoError(t, err)
		require.Empty(t, recs)
	})
}

// Concurrent read-modify-write counters (the guard's daily counts) lose no
// increment: Redis retries the optimistic transaction on conflict.
func TestTxnConcurrentCounters(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		const workers, each = 8, 25
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			go func() {
				for i := 0; i < each; i++ {
					err := e.b.Update(ctx, func(tx store.Txn) error {
						kv := tx.KV("guard")
						n := 0
						if v, err := kv.Get("count"); err == nil {
							fmt.Sscan(string(v), &n)
						} else if !errors.Is(err, store.ErrNotFound) {
							return err
						}
						return kv.Set("count", []byte(fmt.Sprint(n+1)))
					})
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for w := 0; w < workers; w++ {
			require.NoError(t, <-errs)
		}
		v, err := e.b.PluginKV("guard").Get(ctx, "count")
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(workers*each), string(v))
	})
}

func TestAudit(t *testing.T) {
	both(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.b.Audit()
		base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		for i := 0; i < 10; i++ {
			require.NoError(t, a.Append(ctx, base.Add(time.Duration(i)*time.Minute), []byte(fmt.Sprint("e", i))))
		}
		require.NoError(t, a.Append(ctx, base.Add(3*time.Minute), []byte("e3b")))
		// Sub-millisecond times keep their order and precision.
		require.NoError(t, a.Append(ctx, base.Add(3*time.Minute+time.Microsecond), []byte("e3c")))
		require.NoError(t, a.Append(ctx, base.Add(3*time.Minute+2*time.Nanosecond), []byte("e3n")))

		got, err := a.Range(ctx, base.Add(2*time.Minute), base.Add(5*time.Minute), 0)
		require.NoError(t, err)
		var names []string
		for _, r := range got {
			names = append(names, string(r.Data))
		}
		require.Equal(t, []string{"e2", "e3", "e3b", "e3n", "e3c", "e4"}, names)
		require.True(t, got[0].Time.Equal(base.Add(2*time.Minute)))
		require.True(t, got[3].Time.Equal(base.Add(3*time.Minute+2*time.Nanosecond)))
		got, err = a.Range(ctx, base.Add(3*time.Minute+time.Nanosecond), base.Add(3*time.Minute+time.Microsecond), 0)
		require.NoError(t, err)
		require.Len(t, got, 1, "bounds are exact, not per millisecond")
		got, err = a.Range(ctx, base, base.Add(time.Hour), 3)
		require.NoError(t, err)
		require.Len(t, got, 3)

		n, err := a.Prune(ctx, base.Add(5*time.Minute))
		require.NoError(t, err)
		require.Equal(t, 8, n)
		got, err = e.reopen(t).Audit().Range(ctx, time.Time{}, base.Add(time.Hour), 0)
		require.NoError(t, err)
		require.Len(t, got, 5)
	})
}

func TestOutbox(t *testing.T) {
	clock := newFakeClock()
	both(t, func() backendOpts { return backendOpts{Now: clock.Now} }, func(t *testing.T, e *env) {
		ctx := context.Background()
		for _, id := range []string{"c", "a", "b"} {
			require.NoError(t, e.b.Outbox().Put(ctx, id, []byte("send "+id)))
			clock.Advance(time.Second)
		}
		require.NoError(t, e.b.Outbox().Put(ctx, "c", []byte("send c v2")), "replacing keeps the queue position")
		require.Error(t, e.b.Outbox().Put(ctx, "", nil))
		ob := e.reopen(t).Outbox()
		list, err := ob.List(ctx)
		require.NoError(t, err)
		var got []string
		for _, a := range list {
			got = append(got, a.ID+"="+string(a.Data))
		}
		require.Equal(t, "c=send c v2,a=send a,b=send b", strings.Join(got, ","))
		require.NoError(t, ob.Delete(ctx, "a"))
		require.NoError(t, ob.Delete(ctx, "a"))
		_, err = ob.Get(ctx, "a")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err = ob.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
	})
}
