package runner

import (
	"errors"
	"fmt"

	"github.com/gotd/td/tgerr"
)

// ErrNotLoggedIn means the session in the storage directory is missing or
// no longer authorized.
var ErrNotLoggedIn = errors.New("not logged in: run `runner login` first")

// FatalError is a condition where going on would harm the account. Its
// message is written for a person, not a developer.
type FatalError struct {
	// Type is Telegram's error type, e.g. AUTH_KEY_DUPLICATED.
	Type string
	// Advice says what to do about it.
	Advice string
	Err    error
}

func (e *FatalError) Error() string {
	return fmt.Sprintf("%s: %s", e.Type, e.Advice)
}

func (e *FatalError) Unwrap() error { return e.Err }

var fatalAdvice = map[string]string{
	"API_ID_PUBLISHED_FLOOD": "Telegram limits this published api_id server-side. " +
		"Create your own at https://my.telegram.org → API development tools and put it in account.api_id/api_hash.",
	"AUTH_KEY_DUPLICATED": "the same session was used from two places at once, and Telegram revoked it. " +
		"Stop every other runner using this storage directory, then run `runner login` again.",
	"SESSION_REVOKED":       "the session was terminated (from another device or by logging out). Run `runner login` again.",
	"AUTH_KEY_UNREGISTERED": "the session is no longer valid on the server. Run `runner login` again.",
	"USER_DEACTIVATED":      "this account has been deleted or deactivated; the runner cannot act for it.",
	"USER_DEACTIVATED_BAN": "this account is banned by Telegram; the runner stopped so as not to make things worse. " +
		"Appeal through https://telegram.org/faq#q-what-if-my-account-was-banned if you believe it is a mistake.",
	"PHONE_NUMBER_BANNED": "this phone number is banned by Telegram.",
}

// Explain turns the errors that must stop the runner into a FatalError, and
// returns any other error unchanged.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return err
	}
	for typ, advice := range fatalAdvice {
		if tgerr.Is(err, typ) {
			return &FatalError{Type: typ, Advice: advice, Err: err}
		}
	}
	return err
}
