package sdk

import (
	"errors"
	"fmt"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Sentinel errors of action calls; match them with errors.Is. The errors
// returned by the runner carry more detail in *ActionError,
// *FloodWaitError or *ThrottledError.
var (
	// ErrForbidden: the plugin lacks the permission for the action or the
	// chat, or the guard never allows it.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: the chat, message or user does not exist or is not
	// reachable by the account.
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument: the action was malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the runner is paused, shutting down or disconnected,
	// or the plugin has no open session.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal: a bug or an unexpected answer on the runner's side.
	ErrInternal = errors.New("internal error")
	// ErrDeadlineExceeded: the runner gave up on the action.
	ErrDeadlineExceeded = errors.New("deadline exceeded")
	// ErrFloodWait matches every *FloodWaitError.
	ErrFloodWait = errors.New("flood wait")
	// ErrThrottled matches every *ThrottledError.
	ErrThrottled = errors.New("throttled")
)

// FloodWaitError: Telegram asked to wait Seconds before the next call of
// this kind. The action was not done.
type FloodWaitError struct {
	Seconds int
	// RPCError is Telegram's error type, e.g. "FLOOD_WAIT_X".
	RPCError string
	Message  string
}

func (e *FloodWaitError) Error() string {
	return fmt.Sprintf("flood wait: retry after %ds", e.Seconds)
}

// Is makes errors.Is(err, ErrFloodWait) true.
func (e *FloodWaitError) Is(target error) bool { return target == ErrFloodWait }

// ThrottledError: the runner's guard held the action back because a limit
// was reached. Seconds says when it may pass, 0 when unknown.
type ThrottledError struct {
	Seconds int
	Message string
}

func (e *ThrottledError) Error() string {
	if e.Seconds > 0 {
		return fmt.Sprintf("throttled by the runner: retry after %ds: %s", e.Seconds, e.Message)
	}
	return "throttled by the runner: " + e.Message
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// ActionError is any other failed action. errors.Is matches it against the
// sentinel of its code (ErrForbidden, ErrNotFound, ...).
type ActionError struct {
	Code     pluginv1.ErrorCode
	Message  string
	RPCError string
}

func (e *ActionError) Error() string {
	s := e.sentinel().Error()
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RPCError != "" {
		s += " (" + e.RPCError + ")"
	}
	return s
}

func (e *ActionError) sentinel() error {
	switch e.Code {
	case pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN:
		return ErrForbidden
	case pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return ErrNotFound
	case pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:
		return ErrInvalidArgument
	case pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE:
		return ErrUnavailable
	case pluginv1.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED:
		return ErrDeadlineExceeded
	default:
		return ErrInternal
	}
}

// Unwrap exposes the sentinel to errors.Is.
func (e *ActionError) Unwrap() error { return e.sentinel() }

// ErrorFromProto turns the contract's error into the SDK's typed error. It
// returns nil for a nil e.
func ErrorFromProto(e *pluginv1.Error) error {
	if e == nil {
		return nil
	}
	switch e.GetCode() {
	case pluginv1.ErrorCode_ERROR_CODE_FLOOD_WAIT:
		return &FloodWaitError{Seconds: int(e.GetRetryAfterSeconds()), RPCError: e.GetRpcError(), Message: e.GetMessage()}
	case pluginv1.ErrorCode_ERROR_CODE_THROTTLED:
		return &ThrottledError{Seconds: int(e.GetRetryAfterSeconds()), Message: e.GetMessage()}
	}
	return &ActionError{Code: e.GetCode(), Message: e.GetMessage(), RPCError: e.GetRpcError()}
}

// ErrorToProto is the inverse of ErrorFromProto, for fakes of the runner
// (sdk/sdktest uses it to inject errors). Sentinels map to their code;
// other errors become ERROR_CODE_INTERNAL.
func ErrorToProto(err error) *pluginv1.Error {
	if err == nil {
		return nil
	}
	var fw *FloodWaitError
	var th *ThrottledError
	var ae *ActionError
	switch {
	case errors.As(err, &fw):
		return &pluginv1.Error{Code: pluginv1.ErrorCode_ERROR_CODE_FLOOD_WAIT, RetryAfterSeconds: int32(fw.Seconds), RpcError: fw.RPCError, Message: fw.Message}
	case errors.As(err, &th):
		return &pluginv1.Error{Code: pluginv1.ErrorCode_ERROR_CODE_THROTTLED, RetryAfterSeconds: int32(th.Seconds), Message: th.Message}
	case errors.As(err, &ae):
		return &pluginv1.Error{Code: ae.Code, Message: ae.Message, RpcError: ae.RPCError}
	}
	codes := []struct {
		err  error
		code pluginv1.ErrorCode
	}{
		{ErrForbidden, pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{ErrNotFound, pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{ErrInvalidArgument, pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{ErrUnavailable, pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE},
		{ErrDeadlineExceeded, pluginv1.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED},
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			msg := ""
			if err != c.err {
				msg = err.Error()
			}
			return &pluginv1.Error{Code: c.code, Message: msg}
		}
	}
	return &pluginv1.Error{Code: pluginv1.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}
}
