package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/tg"
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
