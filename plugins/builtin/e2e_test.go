package builtin_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/plugins/builtin"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// TestMain makes this test binary serve builtin plugins the way the runner
// binary does: the plugin host re-executes its own binary (here, the test
// binary) as `<binary> plugin NAME`, and builtin.Serve is exactly what
// `runner plugin NAME` runs.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		if err := builtin.Serve(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var serverKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// world is a sandbox seeded like `runner sandbox`, with the runner logged
// in as the owner and the configured builtin plugins running as processes.
type world struct {
	sb                       *sandbox.Server
	owner, alice, bob, carol int64
	friends, news, chat      int64 // basic group, channel, supergroup
	st                       *store.Store
	stack                    *runner.Stack

	mu      sync.Mutex
	journal []*pb.Event
}

func newWorld(t *testing.T, plugins string) *world {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Key: serverKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	seed, err := sandbox.LoadSeed("../../configs/sandbox-seed.yaml")
	require.NoError(t, err)
	res, err := sb.ApplySeedResult(ctx, seed)
	require.NoError(t, err)
	w := &world{
		sb: sb, owner: res.Users["owner"], alice: res.Users["alice"], bob: res.Users["bob"], carol: res.Users["carol"],
		friends: res.Groups["Friends"], news: res.Channels["Sandbox News"], chat: res.Channels["Sandbox Chat"],
	}

	yml := "version: 1\nserver: sandbox\nplugins:\n" + w.expand(plugins)
	cfg, err := config.Parse("e2e.yaml", []byte(yml), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err, yml)
	cfg.Storage.Dir = t.TempDir() + "/data"
	cfg.Account.Phone = config.NewSecret("9996620000")

	w.st, err = store.Open(ctx, cfg.Storage.Dir, store.Options{})
	require.NoError(t, err)
	w.stack, err = runner.NewStack(cfg, store.Bolt(w.st), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	ready := make(chan struct{}, 1)
	r := runner.New(cfg, store.Bolt(w.st), runner.Options{
		Sandbox:  sb,
		Login:    runner.SandboxLogin(sb, "9996620000", ""),
		Services: []runner.Service{w.stack},
		OnReady:  func(*runner.Session) { ready <- struct{}{} },
		Observe: func(entries []store.Entry) {
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, e := range entries {
				if ev, err := runner.DecodeEntry(e); err == nil {
					w.journal = append(w.journal, ev)
				}
			}
		},
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, w.st.Close())
	})
	for _, ch := range []<-chan struct{}{ready, w.stack.Ready()} {
		select {
		case <-ch:
		case err := <-done:
			t.Fatalf("runner stopped: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatal("runner and plugins not up in 60s")
		}
	}
	return w
}

// expand fills in the ids of the seeded world: {owner}, {alice}, {news}...
func (w *world) expand(s string) string {
	return strings.NewReplacer(
		"{owner}", fmt.Sprint(w.owner), "{alice}", fmt.Sprint(w.alice), "{bob}", fmt.Sprint(w.bob),
		"{carol}", fmt.Sprint(w.carol), "{friends}", fmt.Sprint(w.friends), "{news}", fmt.Sprint(w.news),
		"{chat}", fmt.Sprint(w.chat),
	).Replace(s)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (w *world) say(t *testing.T, from int64, to sandbox.Peer, text string) int {
	t.Helper()
	id, err := w.sb.As(from).SendText(ctxT(t), to, text)
	require.NoError(t, err)
	return id
}

// waitFrom waits for a message by from in peer (as from names it) whose
// text satisfies ok.
func (w *world) waitFrom(t *testing.T, from int64, peer sandbox.Peer, ok func(string) bool) sandbox.Message {
	t.Helper()
	m, err := w.sb.WaitMessage(ctxT(t), func(m sandbox.Message) bool {
		return m.From == from && m.Peer == peer && !m.Deleted && ok(m.Text)
	})
	require.NoError(t, err)
	return m
}

// waitEdited waits until the owner's message id in peer reads text.
func (w *world) waitEdited(t *testing.T, peer sandbox.Peer, id int, ok func(string) bool) string {
	t.Helper()
	m, err := w.sb.WaitMessage(ctxT(t), func(m sandbox.Message) bool {
		return m.From == w.owner && m.Peer == peer && m.ID == id && ok(m.Text)
	})
	require.NoError(t, err)
	return m.Text
}

// handled waits until plugin has acknowledged the journal event whose
// message text is text: a barrier before asserting that it did nothing.
func (w *world) handled(t *testing.T, plugin, text string) {
	t.Helper()
	ctx := ctxT(t)
	c, err := w.st.Journal().Consumer(ctx, "plugin:"+plugin, store.ConsumerOptions{})
	require.NoError(t, err)
	for {
		var seq uint64
		w.mu.Lock()
		for _, ev := range w.journal {
			if ev.GetNewMessage().GetText() == text {
				seq = ev.GetSeq()
			}
		}
		w.mu.Unlock()
		if seq != 0 {
			p, err := c.Position(ctx)
			require.NoError(t, err)
			if p.Low >= seq || slices.Contains(p.Above, seq) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("plugin %s did not handle %q (journaled at seq %d)", plugin, text, seq)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sentBy lists the texts from sent to peer so far.
func (w *world) sentBy(from int64, peer sandbox.Peer) []string {
	var out []string
	for _, m := range w.sb.Messages(peer) {
		if m.From == from && !m.Deleted {
			out = append(out, m.Text)
		}
	}
	return out
}

func has(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}

func itoa(n int) string { return fmt.Sprint(n) }

func contains(ss []string, s string) bool { return slices.Contains(ss, s) }

func waitTick() <-chan time.Time { return time.After(20 * time.Millisecond) }
