// Package sdk is what a tgrunner plugin is written with. It owns the plugin
// side of the plugin contract (sdk/proto): serving it under go-plugin, the
// router that turns journal events into handler calls, the context through
// which handlers act (every action is a call to the runner, which checks
// permissions and passes the guard), typed config, the per-plugin key-value
// store, and scheduled jobs.
//
// A plugin is a small program:
//
//	func main() {
//		p := sdk.New("ping", "1.0.0", sdk.WithDescription("Answers .ping"))
//		p.Command("ping", func(c *sdk.Context) error {
//			_, err := c.Reply("pong")
//			return err
//		}).Describe("Replies pong")
//		sdk.Serve(p)
//	}
//
// The package never imports gotd/td: plugins stay small and quick to build.
// Test plugins with sdk/sdktest, which drives the same code path as the
// runner does.
package sdk
