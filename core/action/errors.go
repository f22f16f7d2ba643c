package action

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gotd/td/tgerr"

	"github.com/tgrunner/tgrunner/core/peers"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Error is a failure the executor decided on itself (bad input, a refused
// file size), already classified.
type Error struct {
	Code    pb.ErrorCode
	Message string
}

func (e *Error) Error() string { return e.Message }

func invalidf(format string, args ...any) error {
	return &Error{Code: pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, Message: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &Error{Code: pb.ErrorCode_ERROR_CODE_NOT_FOUND, Message: fmt.Sprintf(format, args...)}
}

func internalf(format string, args ...any) error {
	return &Error{Code: pb.ErrorCode_ERROR_CODE_INTERNAL, Message: fmt.Sprintf(format, args...)}
}

// Telegram error types by the contract code they map to.
var (
	forbiddenTypes = map[string]string{
		"CHAT_WRITE_FORBIDDEN":      "the account may not write in this chat",
		"CHAT_SEND_PLAIN_FORBIDDEN": "the account may not send text in this chat",
		"CHAT_SEND_MEDIA_FORBIDDEN": "the account may not send media in this chat",
		"CHAT_RESTRICTED":           "the account is restricted in this chat",
		"CHAT_ADMIN_REQUIRED":       "this needs admin rights in the chat",
		"CHAT_FORWARDS_RESTRICTED":  "this chat does not allow forwarding its messages",
		"USER_BANNED_IN_CHANNEL":    "the account is banned from sending in channels and groups",
		"USER_IS_BLOCKED":           "this user blocked the account",
		"YOU_BLOCKED_USER":          "the account blocked this user; unblock them first",
		"USER_PRIVACY_RESTRICTED":   "the user's privacy settings do not allow this",
		"MESSAGE_AUTHOR_REQUIRED":   "only the author may do this to the message",
		"MESSAGE_DELETE_FORBIDDEN":  "the account may not delete this message",
		"BROADCAST_FORBIDDEN":       "the account may not post in this channel",
		"USER_NOT_PARTICIPANT":      "the account is not a member of this chat",
		"PREMIUM_ACCOUNT_REQUIRED":  "this needs a premium account",
	}
	notFoundTypes = map[string]bool{
		"USERNAME_NOT_OCCUPIED":  true,
		"PHONE_NOT_OCCUPIED":     true,
		"CHANNEL_PRIVATE":        true,
		"CHANNEL_INVALID":        true,
		"INVITE_HASH_INVALID":    true,
		"INVITE_HASH_EXPIRED":    true,
		"MESSAGE_ID_INVALID":     true,
		"MSG_ID_INVALID":         true,
		"PEER_ID_INVALID":        true,
		"USER_ID_INVALID":        true,
		"CHAT_ID_INVALID":        true,
		"FILE_REFERENCE_EXPIRED": true,
	}
	invalidTypes = map[string]bool{
		"MESSAGE_EMPTY":            true,
		"MESSAGE_TOO_LONG":         true,
		"MEDIA_CAPTION_TOO_LONG":   true,
		"MESSAGE_NOT_MODIFIED":     true,
		"USERNAME_INVALID":         true,
		"ENTITY_BOUNDS_INVALID":    true,
		"REACTION_INVALID":         true,
		"REACTION_EMPTY":           true,
		"SCHEDULE_DATE_TOO_LATE":   true,
		"SCHEDULE_DATE_INVALID":    true,
		"SCHEDULE_TOO_MUCH":        true,
		"USER_ALREADY_PARTICIPANT": true,
		"INVITE_REQUEST_SENT":      true,
		"CHANNELS_TOO_MUCH":        true,
		"INPUT_METHOD_INVALID":     true,
		"INPUT_FETCH_FAIL":         true,
	}
)

// ErrorOf classifies any error an action can end with into the contract's
// typed error. Telegram's RPC error type is kept in rpc_error.
func ErrorOf(err error) *pb.Error {
	if err == nil {
		return nil
	}
	var own *Error
	if errors.As(err, &own) {
		return &pb.Error{Code: own.Code, Message: own.Message}
	}
	// A Telegram error wins over the context: the call was answered.
	if rpc, ok := tgerr.As(err); ok {
		return rpcError(rpc, err)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &pb.Error{Code: pb.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED, Message: "the action timed out: " + err.Error()}
	case errors.Is(err, context.Canceled):
		return &pb.Error{Code: pb.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "the action was cancelled (the runner is stopping or the caller went away): " + err.Error()}
	case errors.Is(err, peers.ErrUnknownPeer):
		return &pb.Error{Code: pb.ErrorCode_ERROR_CODE_NOT_FOUND, Message: err.Error()}
	}
	return &pb.Error{Code: pb.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}
}

func rpcError(rpc *tgerr.Error, err error) *pb.Error {
	out := &pb.Error{RpcError: rpc.Type, Message: err.Error()}
	if d, ok := tgerr.AsFloodWait(err); ok {
		out.Code = pb.ErrorCode_ERROR_CODE_FLOOD_WAIT
		out.RetryAfterSeconds = int32(d.Seconds())
		out.Message = fmt.Sprintf("Telegram asks to wait %d s before calling this method again (%s)", out.RetryAfterSeconds, rpc.Type)
		return out
	}
	switch t := rpc.Type; {
	case t == "SLOWMODE_WAIT":
		out.Code = pb.ErrorCode_ERROR_CODE_FLOOD_WAIT
		out.RetryAfterSeconds = int32(rpc.Argument)
		out.Message = fmt.Sprintf("the chat is in slow mode: the account may send again in %d s", rpc.Argument)
	case t == "PEER_FLOOD":
		out.Code = pb.ErrorCode_ERROR_CODE_FORBIDDEN
		out.Message = "PEER_FLOOD: Telegram limits how many people who never wrote to the account it may message first; " +
			"the account is restricted for now (see @SpamBot)"
	case forbiddenTypes[t] != "":
		out.Code = pb.ErrorCode_ERROR_CODE_FORBIDDEN
		out.Message = forbiddenTypes[t] + " (" + t + ")"
	case notFoundTypes[t] || strings.HasSuffix(t, "_ID_INVALID"):
		out.Code = pb.ErrorCode_ERROR_CODE_NOT_FOUND
	case invalidTypes[t]:
		out.Code = pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	case strings.HasSuffix(t, "_INVALID") || strings.HasSuffix(t, "_EMPTY") || strings.HasSuffix(t, "_TOO_LONG"):
		out.Code = pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT
	case strings.HasSuffix(t, "_FORBIDDEN"):
		out.Code = pb.ErrorCode_ERROR_CODE_FORBIDDEN
	default:
		out.Code = pb.ErrorCode_ERROR_CODE_INTERNAL
	}
	return out
}
