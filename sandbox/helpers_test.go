package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gotd/td/crypto"
	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/telegram/dcs"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/tg"
)

// One RSA key for the whole test binary: generating one per test is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		panic(err)
	}
	return k
})

func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Key == nil && opts.Dir == "" {
		opts.Key = testKey()
	}
	s, err := Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// userAuth answers gotd's login flow from the sandbox driver.
type userAuth struct {
	s        *Server
	phone    string
	password string
	first    string
}

func (a userAuth) Phone(context.Context) (string, error) { return a.phone, nil }
func (a userAuth) Password(context.Context) (string, error) {
	if a.password == "" {
		return "", errors.New("no password")
	}
	return a.password, nil
}

func (a userAuth) Code(context.Context, *tg.AuthSentCode) (string, error) {
	code, ok := a.s.LoginCode(a.phone)
	if !ok {
		return "", errors.New("no code")
	}
	return code, nil
}

func (a userAuth) AcceptTermsOfService(context.Context, tg.HelpTermsOfService) error { return nil }
func (a userAuth) SignUp(context.Context) (auth.UserInfo, error) {
	name := a.first
	if name == "" {
		name = "New"
	}
	return auth.UserInfo{FirstName: name}, nil
}

// testClient is a real gotd client connected to the sandbox over TCP.
type testClient struct {
	t         testing.TB
	Client    *telegram.Client
	API       *tg.Client
	Self      *tg.User
	Dispatch  tg.UpdateDispatcher
	stop      context.CancelFunc
	closeOnce sync.Once
	done      chan error
}

type clientConfig struct {
	phone    string
	password string
	protocol dcs.Protocol
	obfs     bool
	// noManager skips updates.Manager (raw pushes go to rawUpdates).
	noManager  bool
	rawUpdates func(ctx context.Context, u tg.UpdatesClass) error
	storage    session.Storage
	setup      func(d *tg.UpdateDispatcher)
	login      func(ctx context.Context, c *telegram.Client) error
	// manager reuses an updates.Manager (and its state storage) across
	// client restarts.
	manager *updates.Manager
}

// connect starts a client, logs it in and runs updates.Manager. It returns
// once the manager has its state.
func connect(t testing.TB, s *Server, cfg clientConfig) *testClient {
	t.Helper()
	d := tg.NewUpdateDispatcher()
	if cfg.setup != nil {
		cfg.setup(&d)
	}
	opts := s.ClientOptions()
	if cfg.protocol != nil || cfg.obfs {
		p := cfg.protocol
		if p == nil {
			p = dcs.Protocol(nil)
		}
		opts.Resolver = dcs.Plain(dcs.PlainOptions{Protocol: p, Obfuscated: cfg.obfs})
	}
	if cfg.storage == nil {
		cfg.storage = &session.StorageMemory{}
	}
	opts.SessionStorage = cfg.storage
	var mgr *updates.Manager
	if cfg.noManager {
		if cfg.rawUpdates != nil {
			opts.UpdateHandler = telegram.UpdateHandlerFunc(cfg.rawUpdates)
		}
	} else if cfg.manager != nil {
		mgr = cfg.manager
		mgr.Reset()
		opts.UpdateHandler = mgr
	} else {
		mgr = updates.New(updates.Config{Handler: d})
		opts.UpdateHandler = mgr
	}
	client := telegram.NewClient(1, "hash", opts)
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testClient{t: t, Client: client, API: client.API(), Dispatch: d, stop: cancel, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		tc.done <- client.Run(ctx, func(ctx context.Context) error {
			if cfg.login != nil {
				if err := cfg.login(ctx, client); err != nil {
					ready <- err
					return err
				}
			} else if cfg.phone != "" {
				st, err := client.Auth().Status(ctx)
				if err != nil {
					ready <- err
					return err
				}
				if !st.Authorized {
					flow := auth.NewFlow(userAuth{s: s, phone: cfg.phone, password: cfg.password}, auth.SendCodeOptions{})
					if err := flow.Run(ctx, client.Auth()); err != nil {
						ready <- err
						return err
					}
				}
			}
			self, err := client.Self(ctx)
			if err != nil {
				ready <- err
				return err
			}
			tc.Self = self
			if mgr == nil {
				ready <- nil
				<-ctx.Done()
				return ctx.Err()
			}
			return mgr.Run(ctx, client.API(), self.ID, updates.AuthOptions{
				OnStart: func(context.Context) { ready <- nil },
			})
		})
	}()
	select {
	case err := <-ready:
		if err != nil {
			cancel()
			t.Fatalf("connect: %v", err)
		}
	case err := <-tc.done:
		cancel()
		t.Fatalf("client stopped: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("connect timeout")
	}
	t.Cleanup(tc.Close)
	return tc
}

func (c *testClient) Close() {
	c.closeOnce.Do(func() {
		c.stop()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.t.Errorf("client did not stop")
		}
	})
}

func (c *testClient) InputUser(u *tg.User) *tg.InputPeerUser {
	return &tg.InputPeerUser{UserID: u.ID, AccessHash: u.AccessHash}
}

// resolve finds a user by username through the client.
func (c *testClient) resolveUser(ctx context.Context, username string) *tg.User {
	c.t.Helper()
	res, err := c.API.ContactsResolveUsername(ctx, &tg.ContactsResolveUsernameRequest{Username: username})
	require.NoError(c.t, err)
	for _, u := range res.Users {
		if u, ok := u.(*tg.User); ok && u.Username == username {
			return u
		}
	}
	c.t.Fatalf("user %s not resolved", username)
	return nil
}
