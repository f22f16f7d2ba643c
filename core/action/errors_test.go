package action

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gotd/td/tgerr"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/peers"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func TestErrorOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("send to user:5: %w", err) }
	for _, tc := range []struct {
		name  string
		err   error
		code  pb.ErrorCode
		rpc   string
		retry int32
		msg   string
	}{
		{"flood wait", tgerr.New(420, "FLOOD_WAIT_42"), pb.ErrorCode_ERROR_CODE_FLOOD_WAIT, "FLOOD_WAIT", 42, "wait 42 s"},
		{"wrapped flood wait", wrap(tgerr.New(420, "FLOOD_WAIT_7")), pb.ErrorCode_ERROR_CODE_FLOOD_WAIT, "FLOOD_WAIT", 7, ""},
		{"premium flood wait", tgerr.New(420, "FLOOD_PREMIUM_WAIT_5"), pb.ErrorCode_ERROR_CODE_FLOOD_WAIT, "FLOOD_PREMIUM_WAIT", 5, ""},
		{"slow mode", tgerr.New(420, "SLOWMODE_WAIT_30"), pb.ErrorCode_ERROR_CODE_FLOOD_WAIT, "SLOWMODE_WAIT", 30, "slow mode"},
		{"peer flood", tgerr.New(400, "PEER_FLOOD"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "PEER_FLOOD", 0, "never wrote"},
		{"write forbidden", tgerr.New(403, "CHAT_WRITE_FORBIDDEN"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "CHAT_WRITE_FORBIDDEN", 0, "may not write"},
		{"banned in channel", tgerr.New(400, "USER_BANNED_IN_CHANNEL"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "USER_BANNED_IN_CHANNEL", 0, ""},
		{"admin required", tgerr.New(400, "CHAT_ADMIN_REQUIRED"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "CHAT_ADMIN_REQUIRED", 0, "admin"},
		{"blocked by user", tgerr.New(400, "USER_IS_BLOCKED"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "USER_IS_BLOCKED", 0, "blocked"},
		{"blocked the user", tgerr.New(400, "YOU_BLOCKED_USER"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "YOU_BLOCKED_USER", 0, "unblock"},
		{"other forbidden", tgerr.New(403, "CHAT_SEND_POLL_FORBIDDEN"), pb.ErrorCode_ERROR_CODE_FORBIDDEN, "CHAT_SEND_POLL_FORBIDDEN", 0, ""},
		{"peer id", tgerr.New(400, "PEER_ID_INVALID"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "PEER_ID_INVALID", 0, ""},
		{"user id", tgerr.New(400, "USER_ID_INVALID"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "USER_ID_INVALID", 0, ""},
		{"channel", tgerr.New(400, "CHANNEL_INVALID"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "CHANNEL_INVALID", 0, ""},
		{"private channel", tgerr.New(400, "CHANNEL_PRIVATE"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "CHANNEL_PRIVATE", 0, ""},
		{"message id", tgerr.New(400, "MESSAGE_ID_INVALID"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "MESSAGE_ID_INVALID", 0, ""},
		{"any id", tgerr.New(400, "STICKER_ID_INVALID"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "STICKER_ID_INVALID", 0, ""},
		{"username", tgerr.New(400, "USERNAME_NOT_OCCUPIED"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "USERNAME_NOT_OCCUPIED", 0, ""},
		{"empty", tgerr.New(400, "MESSAGE_EMPTY"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "MESSAGE_EMPTY", 0, ""},
		{"too long", tgerr.New(400, "MESSAGE_TOO_LONG"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "MESSAGE_TOO_LONG", 0, ""},
		{"bad entities", tgerr.New(400, "ENTITY_BOUNDS_INVALID"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "ENTITY_BOUNDS_INVALID", 0, ""},
		{"unknown method", tgerr.New(400, "INPUT_METHOD_INVALID"), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "INPUT_METHOD_INVALID", 0, ""},
		{"server error", tgerr.New(500, "INTERNAL_SERVER_ERROR"), pb.ErrorCode_ERROR_CODE_INTERNAL, "INTERNAL_SERVER_ERROR", 0, "INTERNAL_SERVER_ERROR"},
		{"unknown peer", wrap(peers.ErrUnknownPeer), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "", 0, "resolve it by username first"},
		{"deadline", wrap(context.DeadlineExceeded), pb.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED, "", 0, "timed out"},
		{"canceled", wrap(context.Canceled), pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "", 0, "cancelled"},
		{"own invalid", wrap(invalidf("text: empty")), pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "", 0, "text: empty"},
		{"own not found", notFoundf("message 3: not found"), pb.ErrorCode_ERROR_CODE_NOT_FOUND, "", 0, "message 3"},
		{"anything else", errors.New("disk on fire"), pb.ErrorCode_ERROR_CODE_INTERNAL, "", 0, "disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ErrorOf(tc.err)
			require.Equal(t, tc.code, e.Code, e.Message)
			require.Equal(t, tc.rpc, e.RpcError)
			require.Equal(t, tc.retry, e.RetryAfterSeconds)
			require.NotEmpty(t, e.Message)
			require.Contains(t, e.Message, tc.msg)
		})
	}
	require.Nil(t, ErrorOf(nil))
}

func TestErrorResult(t *testing.T) {
	r := ErrorResult(pb.ErrorCode_ERROR_CODE_THROTTLED, "slow down")
	require.Nil(t, r.Result)
	require.Equal(t, pb.ErrorCode_ERROR_CODE_THROTTLED, r.Error.Code)
	require.Equal(t, "slow down", r.Error.Message)
}
