package action

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotd/td/crypto"
	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// One RSA key for the test binary: generating one per sandbox is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		panic(err)
	}
	return k
})

// harness is a sandbox with a few accounts and the owner's executor: a real
// gotd client logged in over TCP, and a peer cache over a real store.
type harness struct {
	t     *testing.T
	ctx   context.Context
	s     *sandbox.Server
	owner *sandbox.User
	alice *sandbox.User
	bob   *sandbox.User
	api   *tg.Client
	peers *peers.Cache
	x     *Executor
	dir   string
	store *store.Store
	opts  Options
	// self is the owner's id as the executor sees it.
	self *atomic.Int64
}

// with returns the harness reporting to t, for subtests.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

var phoneSeq atomic.Int64

// newPhone returns a sandbox test number (99966XYYYY) unique in the binary.
func newPhone() string {
	n := phoneSeq.Add(1)
	return fmt.Sprintf("99966%d%04d", 1+n%9, n)
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s, err := sandbox.Start(ctx, sandbox.Options{Key: testKey()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	h := &harness{t: t, ctx: ctx, s: s, self: new(atomic.Int64)}
	h.owner = h.user("Owner", "owner")
	h.alice = h.user("Alice", "alice")
	h.bob = h.user("Bob", "bob")

	h.dir = filepath.Join(t.TempDir(), "store") // store.Open wants a private directory
	h.openStore()

	_, api := h.login(h.owner.Phone, nil)
	h.api = api
	h.self.Store(h.owner.ID)
	h.opts = opts
	h.x = New(api, h.peers, h.self.Load, opts)
	return h
}

// openStore opens the store and a fresh peer cache over it.
func (h *harness) openStore() {
	h.t.Helper()
	st, err := store.Open(h.ctx, h.dir, store.Options{})
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = st.Close() })
	h.store = st
	h.peers = peers.New(st.Peers())
}

// restart drops the executor and its peer cache and builds new ones over
// the reopened store, as a runner restart does (the session stays).
func (h *harness) restart() {
	h.t.Helper()
	require.NoError(h.t, h.store.Close())
	h.openStore()
	h.x = New(h.api, h.peers, h.self.Load, h.opts)
}

func (h *harness) user(first, username string) *sandbox.User {
	h.t.Helper()
	u, err := h.s.CreateUser(h.ctx, sandbox.UserSpec{Phone: newPhone(), FirstName: first, Username: username})
	require.NoError(h.t, err)
	return u
}

// codeAuth answers gotd's login flow with the code the sandbox sent.
type codeAuth struct {
	s     *sandbox.Server
	phone string
}

func (a codeAuth) Phone(context.Context) (string, error) { return a.phone, nil }
func (a codeAuth) Password(context.Context) (string, error) {
	return "", errors.New("no 2FA in these tests")
}
func (a codeAuth) AcceptTermsOfService(context.Context, tg.HelpTermsOfService) error { return nil }
func (a codeAuth) SignUp(context.Context) (auth.UserInfo, error) {
	return auth.UserInfo{}, errors.New("accounts are created by the driver")
}
func (a codeAuth) Code(context.Context, *tg.AuthSentCode) (string, error) {
	code, ok := a.s.LoginCode(a.phone)
	if !ok {
		return "", errors.New("the sandbox sent no code")
	}
	return code, nil
}

// login runs a real client for phone until the test ends. Pushed updates
// go to onUpdates when given.
func (h *harness) login(phone string, onUpdates func(ctx context.Context, u tg.UpdatesClass) error) (*telegram.Client, *tg.Client) {
	h.t.Helper()
	opts := h.s.ClientOptions()
	opts.SessionStorage = &session.StorageMemory{}
	if onUpdates != nil {
		opts.UpdateHandler = telegram.UpdateHandlerFunc(onUpdates)
	}
	client := telegram.NewClient(1, "hash", opts)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, func(ctx context.Context) error {
			flow := auth.NewFlow(codeAuth{s: h.s, phone: phone}, auth.SendCodeOptions{})
			if err := flow.Run(ctx, client.Auth()); err != nil {
				ready <- err
				return err
			}
			ready <- nil
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	select {
	case err := <-ready:
		require.NoError(h.t, err, "login %s", phone)
	case err := <-done:
		h.t.Fatalf("client stopped before login: %v", err)
	case <-h.ctx.Done():
		h.t.Fatal("login timed out")
	}
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			h.t.Error("client did not stop")
		}
	})
	return client, client.API()
}

// do runs an action as the owner.
func (h *harness) do(a *pb.Action) *pb.ActionResult {
	h.t.Helper()
	res := h.x.Execute(h.ctx, Call{Source: "owner", Action: a})
	require.NotNil(h.t, res)
	return res
}

// must runs an action and fails the test on an error result.
func (h *harness) must(a *pb.Action) *pb.ActionResult {
	h.t.Helper()
	res := h.do(a)
	require.Nil(h.t, res.Error, "%s failed: %v", Kind(a), res.Error)
	return res
}

// fails runs an action and checks its error code.
func (h *harness) fails(a *pb.Action, code pb.ErrorCode) *pb.Error {
	h.t.Helper()
	res := h.do(a)
	require.NotNil(h.t, res.Error, "%s should fail with %v, got %v", Kind(a), code, res.Result)
	require.Equal(h.t, code, res.Error.Code, "%s: %s", Kind(a), res.Error.Message)
	require.Nil(h.t, res.Result)
	return res.Error
}

// resolve makes the owner's executor learn a username; it returns the peer.
func (h *harness) resolve(username string) *pb.Peer {
	h.t.Helper()
	res := h.must(&pb.Action{Kind: &pb.Action_Resolve{Resolve: &pb.Resolve{Query: &pb.Resolve_Username{Username: username}}}})
	require.NotNil(h.t, res.GetChat())
	return res.GetChat().Peer
}

// learnDialogs feeds the owner's dialogs into the peer cache, as the runner
// does from updates (for private chats and groups that have no username).
func (h *harness) learnDialogs() {
	h.t.Helper()
	res, err := h.api.MessagesGetDialogs(h.ctx, &tg.MessagesGetDialogsRequest{OffsetPeer: &tg.InputPeerEmpty{}, Limit: 100})
	require.NoError(h.t, err)
	switch d := res.(type) {
	case *tg.MessagesDialogs:
		require.NoError(h.t, h.peers.Remember(h.ctx, d.Users, d.Chats))
	case *tg.MessagesDialogsSlice:
		require.NoError(h.t, h.peers.Remember(h.ctx, d.Users, d.Chats))
	default:
		h.t.Fatalf("dialogs: %T", res)
	}
}

func userPeer(id int64) *pb.Peer    { return &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: id} }
func chatPeer(id int64) *pb.Peer    { return &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHAT, Id: id} }
func channelPeer(id int64) *pb.Peer { return &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: id} }

func sendText(chat *pb.Peer, text string) *pb.Action {
	return &pb.Action{Kind: &pb.Action_Send{Send: &pb.SendMessage{Chat: chat, Text: text}}}
}

func sendAction(m *pb.SendMessage) *pb.Action { return &pb.Action{Kind: &pb.Action_Send{Send: m}} }

// waitFrom waits for a message from account `from` with the given text.
func (h *harness) waitFrom(from int64, text string) sandbox.Message {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 15*time.Second)
	defer cancel()
	m, err := h.s.WaitMessage(ctx, func(m sandbox.Message) bool { return m.From == from && m.Text == text })
	require.NoError(h.t, err, "waiting for %q from %d", text, from)
	return m
}

// ownerCopyOf finds the owner's id of the newest message in chat with text.
func (h *harness) ownerCopyOf(chat *pb.Peer, text string) int64 {
	h.t.Helper()
	res := h.must(&pb.Action{Kind: &pb.Action_History{History: &pb.GetHistory{Chat: chat, Limit: 50}}})
	for _, m := range res.GetMessages().GetMessages() {
		if m.Text == text {
			return m.Id
		}
	}
	h.t.Fatalf("no message %q in the owner's history of %s", text, peerString(chat))
	return 0
}
