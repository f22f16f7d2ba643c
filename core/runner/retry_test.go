package runner

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gotd/td/tgerr"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{tgerr.New(500, "RPC_CALL_FAIL"), true},
		{tgerr.New(500, "WORKER_BUSY_TOO_LONG_RETRY"), true},
		{tgerr.New(500, "Timedout"), true},
		{tgerr.New(-503, "Timeout"), true},
		{tgerr.New(500, "No workers running"), true},
		{fmt.Errorf("rpc: %w", tgerr.New(500, "INTERNAL")), true},
		{tgerr.New(500, "RANDOM_ID_DUPLICATE"), false}, // the retry found the first attempt
		{tgerr.New(500, "AUTH_RESTART"), false},
		{tgerr.New(420, "FLOOD_WAIT_3"), false}, // the waiter's business
		{tgerr.New(400, "PEER_ID_INVALID"), false},
		{errors.New("connection reset"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
