package runner_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/auth/qrlogin"
	"github.com/gotd/td/tg"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dir, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestLoginByCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := openStore(t, e.dir)
	self, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owner.Phone, "")})
	require.NoError(t, err)
	require.Equal(t, e.owner.ID, self.ID)
	data, err := st.Session().LoadSession(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, data, "the session is stored")
	// A second login keeps the authorized session instead of asking again.
	self, err = runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.CodeSource{PhoneNumber: e.owner.Phone}})
	require.NoError(t, err)
	require.Equal(t, e.owner.ID, self.ID)
}

func TestLoginWithTwoStepPassword(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	require.NoError(t, e.sb.SetPassword(ctx, e.owner.ID, "correct horse"))

	st := openStore(t, e.dir)
	_, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owner.Phone, "wrong")})
	require.Error(t, err, "a wrong 2FA password is refused")

	self, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owner.Phone, "correct horse")})
	require.NoError(t, err)
	require.Equal(t, e.owner.ID, self.ID)
}

func TestLoginRefusesUnknownNumberWithoutSignUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := openStore(t, e.dir)
	_, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, "9996624444", "")})
	require.ErrorIs(t, err, runner.ErrSignUpRefused)

	src := runner.SandboxLogin(e.sb, "9996624444", "")
	src.SignUpAs.FirstName = "Newcomer"
	self, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: src})
	require.NoError(t, err)
	require.Equal(t, "Newcomer", self.FirstName)
}

// QR login: the runner shows a token, the owner's phone (another
// authorized session) accepts it, and the runner ends up logged in.
func TestLoginByQR(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The "phone": an already authorized session of the owner.
	phoneStore := openStore(t, filepath.Join(t.TempDir(), "phone"))
	_, err := runner.Login(ctx, e.cfg, store.Bolt(phoneStore), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owner.Phone, "")})
	require.NoError(t, err)
	phoneOpts := e.sb.ClientOptions()
	phoneOpts.SessionStorage = phoneStore.Session()
	phone := telegram.NewClient(1, "sandbox", phoneOpts)

	accepted := make(chan error, 1)
	show := func(ctx context.Context, link string, expires time.Time) error {
		require.True(t, expires.After(time.Now()), "token expiry in the future")
		u, err := url.Parse(link)
		require.NoError(t, err)
		require.Equal(t, "tg", u.Scheme)
		token, err := qrlogin.ParseTokenURL(link)
		require.NoError(t, err)
		go func() {
			accepted <- phone.Run(ctx, func(ctx context.Context) error {
				_, err := qrlogin.AcceptQR(ctx, tg.NewClient(phone), token)
				return err
			})
		}()
		return nil
	}
	st := openStore(t, e.dir)
	self, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{QR: true, ShowQR: show})
	require.NoError(t, err)
	require.Equal(t, e.owner.ID, self.ID)
	select {
	case err := <-accepted:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the phone never accepted the token")
	}
}

// A session the server no longer knows is reported as "log in again", and
// logout wipes the local session.
func TestLogoutWipesSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st := openStore(t, e.dir)
	_, err := runner.Login(ctx, e.cfg, store.Bolt(st), e.sb, runner.LoginOptions{Source: runner.SandboxLogin(e.sb, e.owner.Phone, "")})
	require.NoError(t, err)
	require.NoError(t, runner.Logout(ctx, e.cfg, store.Bolt(st), e.sb))
	_, err = st.Session().LoadSession(ctx)
	require.Error(t, err, "no session after logout")

	// Running without a session and without a way to log in says so.
	require.NoError(t, st.Close())
	st2 := openStore(t, e.dir)
	r := runner.New(e.cfg, store.Bolt(st2), runner.Options{Sandbox: e.sb})
	err = r.Run(ctx)
	require.True(t, errors.Is(err, runner.ErrNotLoggedIn), "got %v", err)
	_ = sandbox.UserPeer
}
