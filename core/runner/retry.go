package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/action"
)

// Telegram's passing internal errors: the server had trouble, the request
// may simply be repeated (tdl retries these five times; Telegram's docs
// say to retry 500s).
var retryableTypes = map[string]bool{
	"RPC_CALL_FAIL":              true,
	"RPC_MCGET_FAIL":             true,
	"WORKER_BUSY_TOO_LONG_RETRY": true,
	"INTERNAL":                   true,
	"INTERNAL_SERVER_ERROR":      true,
	"MSG_WAIT_FAILED":            true,
	"HISTORY_GET_FAILED":         true,
	"TIMEOUT":                    true,
	"TIMEDOUT":                   true,
	"NO_WORKERS_RUNNING":         true,
}

// retryable reports whether err is a passing internal error.
func retryable(err error) bool {
	rpcErr, ok := tgerr.As(err)
	if !ok {
		return false
	}
	if rpcErr.Code == -503 {
		return true // "Timeout": the answer did not come in time
	}
	t := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(rpcErr.Type), " ", "_"))
	return retryableTypes[t]
}

// retryInternal repeats a call Telegram answered with a passing internal
// error, up to attempts in all, waiting base, 2×base, 4×base... between
// them. A send carries a random_id fixed before the first attempt, so if
// the first attempt was carried out and only its answer lost, the retry
// is answered RANDOM_ID_DUPLICATE, which the action layer takes as sent:
// nothing goes out twice. An edit, join or leave repeated that way gets
// the answer for "already so" (MESSAGE_NOT_MODIFIED...), which comes back
// marked action.ErrDoneEarlier.
func retryInternal(attempts int, base time.Duration, log *zap.Logger) telegram.Middleware {
	return telegram.MiddlewareFunc(func(next tg.Invoker) telegram.InvokeFunc {
		return func(ctx context.Context, input bin.Encoder, output bin.Decoder) error {
			wait := base
			for attempt := 1; ; attempt++ {
				err := next.Invoke(ctx, input, output)
				if attempt > 1 && err != nil && action.DoneAnswer(methodID(input), err) {
					// An earlier attempt went through and only its answer
					// was lost: this is the repeat noticing.
					return fmt.Errorf("%w: %w", action.ErrDoneEarlier, err)
				}
				if err == nil || attempt >= attempts || !retryable(err) {
					return err
				}
				log.Warn("Telegram answered with a passing internal error; retrying",
					zap.String("method", methodName(input)), zap.Int("attempt", attempt), zap.Duration("in", wait), zap.Error(err))
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return err
				case <-t.C:
				}
				wait *= 2
			}
		}
	})
}

func methodID(input bin.Encoder) uint32 {
	if t, ok := input.(interface{ TypeID() uint32 }); ok {
		return t.TypeID()
	}
	return 0
}

func methodName(input bin.Encoder) string {
	if n, ok := input.(interface{ TypeName() string }); ok {
		return n.TypeName()
	}
	return "unknown"
}

// Retries of passing internal errors: 5 attempts, 200 ms to 1.6 s apart.
const (
	retryAttempts = 5
	retryBase     = 200 * time.Millisecond
)
