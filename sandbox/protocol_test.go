package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/telegram/auth/qrlogin"
	"github.com/gotd/td/telegram/dcs"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/gotd/td/transport"
)

func TestTransports(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, 2*time.Minute)
	u, err := s.CreateUser(ctx, UserSpec{Phone: "9996630003", FirstName: "Carol"})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		p    dcs.Protocol
		obfs bool
	}{
		{"abridged", transport.Abridged, false},
		{"intermediate", transport.Intermediate, false},
		{"padded-intermediate", transport.PaddedIntermediate, false},
		{"full", transport.Full, false},
		{"obfuscated-abridged", transport.Abridged, true},
		{"obfuscated-intermediate", transport.Intermediate, true},
		{"obfuscated-padded", transport.PaddedIntermediate, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, s, clientConfig{phone: u.Phone, protocol: tc.p, obfs: tc.obfs})
			require.Equal(t, u.ID, c.Self.ID)
			cfg, err := c.API.HelpGetConfig(ctx)
			require.NoError(t, err)
			require.Equal(t, s.DC(), cfg.ThisDC)
			require.Equal(t, s.addr.Port, cfg.DCOptions[0].Port)
			c.Close()
		})
	}
}

func TestUnauthorizedKeyAndUnknownMethod(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	c := connect(t, s, clientConfig{noManager: true, login: func(ctx context.Context, c *telegram.Client) error {
		_, err := c.API().UsersGetUsers(ctx, []tg.InputUserClass{&tg.InputUserSelf{}})
		if !tgerr.Is(err, "AUTH_KEY_UNREGISTERED") {
			t.Errorf("want AUTH_KEY_UNREGISTERED, got %v", err)
		}
		// Still unauthorized: log in now so connect can finish.
		return auth.NewFlow(userAuth{s: s, phone: "9996640004"}, auth.SendCodeOptions{}).Run(ctx, c.Auth())
	}})
	require.NotZero(t, c.Self.ID, "test numbers sign up on first login")
	// A method the sandbox does not implement gets an RPC error...
	_, err := c.API.StoriesGetAllStories(ctx, &tg.StoriesGetAllStoriesRequest{})
	require.True(t, tgerr.Is(err, "INPUT_METHOD_INVALID"), "got %v", err)
	// ...and the connection keeps working.
	_, err = c.API.HelpGetConfig(ctx)
	require.NoError(t, err)
	_, err = c.API.UpdatesGetState(ctx)
	require.NoError(t, err)
}

func TestTwoFactorLogin(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	u, err := s.CreateUser(ctx, UserSpec{Phone: "+1 555 0100", FirstName: "Dan", Password: "correct horse"})
	require.NoError(t, err)

	// Wrong password is refused.
	connectErr := make(chan error, 1)
	c := connect(t, s, clientConfig{noManager: true, login: func(ctx context.Context, c *telegram.Client) error {
		err := auth.NewFlow(userAuth{s: s, phone: u.Phone, password: "wrong"}, auth.SendCodeOptions{}).Run(ctx, c.Auth())
		connectErr <- err
		return auth.NewFlow(userAuth{s: s, phone: u.Phone, password: "correct horse"}, auth.SendCodeOptions{}).Run(ctx, c.Auth())
	}})
	firstErr := <-connectErr
	require.ErrorIs(t, firstErr, auth.ErrPasswordInvalid, "server answers PASSWORD_HASH_INVALID")
	require.Equal(t, u.ID, c.Self.ID)
}

func TestQRLogin(t *testing.T) {
	s := startServer(t, Options{})
	ctx := testCtx(t, time.Minute)
	u, err := s.CreateUser(ctx, UserSpec{Phone: "9996650005", FirstName: "Eve"})
	require.NoError(t, err)
	phone := connect(t, s, clientConfig{phone: u.Phone})

	d := tg.NewUpdateDispatcher()
	loggedIn := qrlogin.OnLoginToken(d)
	desktop := connect(t, s, clientConfig{noManager: true, rawUpdates: d.Handle, login: func(ctx context.Context, c *telegram.Client) error {
		accepted := make(chan error, 1)
		_, err := c.QR().Auth(ctx, loggedIn, func(ctx context.Context, token qrlogin.Token) error {
			// The logged-in phone scans the code while this client waits
			// for updateLoginToken: accepting inside show would race
			// gotd's non-blocking signal and fall back to token expiry.
			go func() {
				_, err := qrlogin.AcceptQR(ctx, phone.API, token)
				accepted <- err
			}()
			return nil
		})
		if err != nil {
			return err
		}
		return <-accepted
	}})
	require.Equal(t, u.ID, desktop.Self.ID)
	require.Eventually(t, func() bool { return s.ConnectedSessions(u.ID) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, s.MaxConcurrentSessions(u.ID))
}

func TestFloodWaitAndPeerFlood(t *testing.T) {
	s := startServer(t, Options{Faults: Faults{
		MethodLimits:   map[string]Limit{"messages.sendMessage": {Count: 3, Window: time.Minute}},
		PeerFloodLimit: 2,
	}})
	ctx := testCtx(t, time.Minute)
	spammer, err := s.CreateUser(ctx, UserSpec{Phone: "9996660006", FirstName: "Spam", Username: "spammer"})
	require.NoError(t, err)
	var targets []*User
	for i, name := range []string{"tone", "ttwo", "tthree"} {
		u, err := s.CreateUser(ctx, UserSpec{Phone: "99967000" + string(rune('1'+i)) + "0", FirstName: name, Username: name})
		require.NoError(t, err)
		targets = append(targets, u)
	}
	c := connect(t, s, clientConfig{phone: spammer.Phone})
	send := func(username string, id int64) error {
		u := c.resolveUser(ctx, username)
		_, err := c.API.MessagesSendMessage(ctx, &tg.MessagesSendMessageRequest{Peer: c.InputUser(u), Message: "buy", RandomID: id})
		return err
	}
	// Two strangers are fine, the third is one too many.
	require.NoError(t, send("tone", 1))
	require.NoError(t, send("ttwo", 2))
	require.True(t, tgerr.Is(send("tthree", 3), "PEER_FLOOD"))
	// The third call above was the third sendMessage: the fourth floods.
	err = send("tone", 4)
	d, ok := tgerr.AsFloodWait(err)
	require.True(t, ok, "want FLOOD_WAIT, got %v", err)
	require.Greater(t, d, time.Duration(0))

	// Live reconfiguration lifts the limits.
	s.SetFaults(Faults{})
	require.NoError(t, send("tthree", 5))
}
