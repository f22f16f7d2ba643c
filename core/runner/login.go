package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/telegram/auth/qrlogin"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// CodeSource supplies a login code, a 2FA password and sign-up details. It
// is what `runner login` asks the person (or reads from a file descriptor,
// an environment variable or a command) and what the sandbox answers by
// itself.
type CodeSource struct {
	PhoneNumber string
	// GetCode returns the code Telegram sent.
	GetCode func(ctx context.Context, sent *tg.AuthSentCode) (string, error)
	// GetPassword returns the 2FA password; nil means the account has none.
	GetPassword func(ctx context.Context) (string, error)
	// SignUpAs registers an unknown number under this name; empty refuses
	// to sign up.
	SignUpAs auth.UserInfo
}

// ErrSignUpRefused is returned for a number with no account when sign-up
// was not asked for.
var ErrSignUpRefused = errors.New("this phone number has no account; pass --sign-up to create one")

var _ auth.UserAuthenticator = CodeSource{}

// Phone implements auth.UserAuthenticator.
func (c CodeSource) Phone(context.Context) (string, error) {
	if c.PhoneNumber == "" {
		return "", errors.New("no phone number: set account.phone or pass --phone")
	}
	return c.PhoneNumber, nil
}

// Password implements auth.UserAuthenticator.
func (c CodeSource) Password(ctx context.Context) (string, error) {
	if c.GetPassword == nil {
		return "", errors.New("the account has two-step verification: set account.password or pass --password-fd/--password-env")
	}
	return c.GetPassword(ctx)
}

// Code implements auth.UserAuthenticator.
func (c CodeSource) Code(ctx context.Context, sent *tg.AuthSentCode) (string, error) {
	if c.GetCode == nil {
		return "", errors.New("no source for the login code")
	}
	return c.GetCode(ctx, sent)
}

// AcceptTermsOfService implements auth.UserAuthenticator.
func (c CodeSource) AcceptTermsOfService(context.Context, tg.HelpTermsOfService) error {
	return nil
}

// SignUp implements auth.UserAuthenticator.
func (c CodeSource) SignUp(context.Context) (auth.UserInfo, error) {
	if c.SignUpAs.FirstName == "" {
		return auth.UserInfo{}, ErrSignUpRefused
	}
	return c.SignUpAs, nil
}

// LoginCoder is the part of the sandbox that hands out login codes.
type LoginCoder interface {
	LoginCode(phone string) (string, bool)
}

// SandboxLogin logs in to the embedded sandbox without asking anyone: the
// sandbox itself tells the code.
func SandboxLogin(sb LoginCoder, phone, password string) CodeSource {
	cs := CodeSource{
		PhoneNumber: phone,
		GetCode: func(context.Context, *tg.AuthSentCode) (string, error) {
			code, ok := sb.LoginCode(phone)
			if !ok {
				return "", fmt.Errorf("sandbox has no login code for %s", phone)
			}
			return code, nil
		},
	}
	if password != "" {
		cs.GetPassword = func(context.Context) (string, error) { return password, nil }
	}
	return cs
}

// LoginOptions choose how Login proves the account.
type LoginOptions struct {
	// Source answers the phone/code/password flow.
	Source CodeSource
	// QR logs in by a QR token instead: ShowQR is called with the tg://
	// login URL each time a new token is issued (they expire).
	QR     bool
	ShowQR func(ctx context.Context, url string, expires time.Time) error
}

// Login authorizes the account and stores the session in the store. It
// returns the logged-in user. An already authorized session is kept.
func Login(ctx context.Context, cfg *config.Config, st store.Backend, sb *sandbox.Server, opts LoginOptions) (*tg.User, error) {
	copts, err := ClientOptions(cfg, sb)
	if err != nil {
		return nil, err
	}
	copts.SessionStorage = st.Session()
	d := tg.NewUpdateDispatcher()
	copts.UpdateHandler = d
	loggedIn := qrlogin.OnLoginToken(d)
	client := telegram.NewClient(cfg.Account.APIID, cfg.Account.APIHash.Reveal(), copts)
	var self *tg.User
	err = client.Run(ctx, func(ctx context.Context) error {
		status, err := client.Auth().Status(ctx)
		if err != nil {
			return err
		}
		if !status.Authorized {
			if opts.QR {
				show := func(ctx context.Context, t qrlogin.Token) error {
					if opts.ShowQR == nil {
						return errors.New("no way to show the QR code")
					}
					return opts.ShowQR(ctx, t.URL(), t.Expires())
				}
				if _, err := client.QR().Auth(ctx, loggedIn, show); err != nil {
					if errors.Is(err, auth.ErrPasswordAuthNeeded) || tgerr.Is(err, "SESSION_PASSWORD_NEEDED") {
						if err := checkPassword(ctx, client, opts.Source); err != nil {
							return err
						}
					} else {
						return fmt.Errorf("QR login: %w", err)
					}
				}
			} else {
				flow := auth.NewFlow(opts.Source, auth.SendCodeOptions{})
				if err := flow.Run(ctx, client.Auth()); err != nil {
					if errors.Is(err, ErrSignUpRefused) {
						return ErrSignUpRefused
					}
					return err
				}
			}
		}
		self, err = client.Self(ctx)
		if err != nil {
			return err
		}
		if err := rememberLoginState(ctx, client.API(), st, self.ID); err != nil {
			return err
		}
		return waitSessionSaved(ctx, st.Session())
	})
	if err != nil {
		return nil, Explain(err)
	}
	return self, nil
}

// waitSessionSaved waits until the session is in the storage. gotd saves
// it in the background after the connection is ready, with the client's
// context: returning from Run before the save completes loses the session
// (seen with Redis under load), and the login would be for nothing.
func waitSessionSaved(ctx context.Context, ss store.SessionStore) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		data, err := ss.LoadSession(ctx)
		if err == nil && len(data) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("logged in, but the session was not saved to the storage (%v); run login again", err)
		case <-tick.C:
		}
	}
}

// rememberLoginState stores the update state as of the login, so the first
// `runner run` catches up on everything that arrived since, instead of
// starting from whatever the server state is by then.
func rememberLoginState(ctx context.Context, api *tg.Client, st store.Backend, selfID int64) error {
	if _, found, err := st.UpdateState().GetState(ctx, selfID); err != nil || found {
		return err
	}
	remote, err := api.UpdatesGetState(ctx)
	if err != nil {
		return fmt.Errorf("get update state: %w", err)
	}
	if err := st.UpdateState().SetState(ctx, selfID, updates.State{Pts: remote.Pts, Qts: remote.Qts, Date: remote.Date, Seq: remote.Seq}); err != nil {
		return err
	}
	return rememberChannels(ctx, api, st, selfID)
}

// rememberChannels records the pts and access hash of every channel the
// account is in, so that posts made while the runner is down are fetched
// with getChannelDifference. Without it the updates manager starts
// tracking a channel only at its first live update, and what came before
// is skipped.
func rememberChannels(ctx context.Context, api *tg.Client, st store.Backend, selfID int64) error {
	req := &tg.MessagesGetDialogsRequest{OffsetPeer: &tg.InputPeerEmpty{}, Limit: 100}
	cache := peers.New(st.Peers())
	for page := 0; page < 100; page++ {
		res, err := api.MessagesGetDialogs(ctx, req)
		if err != nil {
			return fmt.Errorf("get dialogs: %w", err)
		}
		mod, ok := res.AsModified()
		if !ok {
			return nil
		}
		if err := cache.Remember(ctx, mod.GetUsers(), mod.GetChats()); err != nil {
			return err
		}
		hashes := map[int64]int64{}
		for _, c := range mod.GetChats() {
			if ch, ok := c.(*tg.Channel); ok && !ch.Min {
				hashes[ch.ID] = ch.AccessHash
			}
		}
		dialogs := mod.GetDialogs()
		for _, d := range dialogs {
			dlg, ok := d.(*tg.Dialog)
			if !ok {
				continue
			}
			pc, ok := dlg.Peer.(*tg.PeerChannel)
			if !ok {
				continue
			}
			pts, ok := dlg.GetPts()
			hash, known := hashes[pc.ChannelID]
			if !ok || !known {
				continue
			}
			if _, found, err := st.UpdateState().GetChannelPts(ctx, selfID, pc.ChannelID); err != nil || found {
				continue
			}
			if err := st.AccessHashes().SetChannelAccessHash(ctx, selfID, pc.ChannelID, hash); err != nil {
				return err
			}
			if err := st.UpdateState().SetChannelPts(ctx, selfID, pc.ChannelID, pts); err != nil {
				return err
			}
		}
		slice, isSlice := res.(*tg.MessagesDialogsSlice)
		if !isSlice || len(dialogs) == 0 || len(dialogs) < req.Limit || len(slice.Dialogs) >= slice.Count {
			return nil
		}
		// Continue after the oldest dialog of this page.
		last := mod.GetMessages()
		if len(last) == 0 {
			return nil
		}
		if m, ok := last[len(last)-1].(interface{ GetDate() int }); ok {
			req.OffsetDate = m.GetDate()
		}
	}
	return nil
}

func checkPassword(ctx context.Context, client *telegram.Client, src CodeSource) error {
	pw, err := src.Password(ctx)
	if err != nil {
		return err
	}
	if _, err := client.Auth().Password(ctx, pw); err != nil {
		return fmt.Errorf("2FA password: %w", err)
	}
	return nil
}

// Logout terminates the session on the server (auth.logOut) and wipes it
// from the store. A session the server no longer knows is wiped all the
// same.
func Logout(ctx context.Context, cfg *config.Config, st store.Backend, sb *sandbox.Server) error {
	copts, err := ClientOptions(cfg, sb)
	if err != nil {
		return err
	}
	copts.SessionStorage = st.Session()
	client := telegram.NewClient(cfg.Account.APIID, cfg.Account.APIHash.Reveal(), copts)
	err = client.Run(ctx, func(ctx context.Context) error {
		status, err := client.Auth().Status(ctx)
		if err != nil || !status.Authorized {
			return err
		}
		_, err = client.API().AuthLogOut(ctx)
		return err
	})
	if err != nil && !tgerr.Is(err, "AUTH_KEY_UNREGISTERED", "SESSION_REVOKED") {
		return fmt.Errorf("log out: %w", Explain(err))
	}
	if err := st.Session().DeleteSession(ctx); err != nil {
		return fmt.Errorf("wipe session: %w", err)
	}
	return nil
}
