package runner

import (
	"context"
	"fmt"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/tg"
)

// updatesHook hands the updates carried by RPC results (our own sends,
// edits...) to the updates manager, as gotd's hook.UpdateHook does, but as
// a decoded copy: the caller goes on reading the result while the intake
// encodes its copy, and TL encoding writes flag fields, so sharing the
// objects would be a data race.
func updatesHook(handle func(ctx context.Context, u tg.UpdatesClass) error) telegram.Middleware {
	return telegram.MiddlewareFunc(func(next tg.Invoker) telegram.InvokeFunc {
		return func(ctx context.Context, input bin.Encoder, output bin.Decoder) error {
			if err := next.Invoke(ctx, input, output); err != nil {
				return err
			}
			box, ok := output.(*tg.UpdatesBox)
			if !ok || box.Updates == nil {
				return nil
			}
			var b bin.Buffer
			if err := box.Updates.Encode(&b); err != nil {
				return fmt.Errorf("copy updates: %w", err)
			}
			cp, err := tg.DecodeUpdates(&b)
			if err != nil {
				return fmt.Errorf("copy updates: %w", err)
			}
			return handle(ctx, cp)
		}
	})
}
