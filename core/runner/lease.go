package runner

import (
	"context"
	"errors"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/tg"
)

// Lease is an exclusive hold on the account shared with other runner
// processes (*lease.Lease implements it). A runner with a Lease makes no
// RPC once Valid is false and disconnects as soon as Lost fires, so two
// processes never act for one account at once.
type Lease interface {
	Valid() bool
	Lost() <-chan struct{}
}

// ErrLeaseLost is returned by Run, and by every RPC refused, once the
// account's lease is no longer held.
var ErrLeaseLost = errors.New("account lease lost: another runner may hold the account; not acting for it")

// leaseGate refuses every outgoing call once the lease is invalid. It sits
// next to the wire, after the flood waits, so a call that waited out a
// FLOOD_WAIT past the lease is refused too.
func leaseGate(l Lease) telegram.Middleware {
	return telegram.MiddlewareFunc(func(next tg.Invoker) telegram.InvokeFunc {
		return func(ctx context.Context, input bin.Encoder, output bin.Decoder) error {
			if !l.Valid() {
				return ErrLeaseLost
			}
			return next.Invoke(ctx, input, output)
		}
	})
}
