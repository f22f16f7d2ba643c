// Command ping is the smallest useful tgrunner plugin: it answers ".ping"
// with "pong" in the same chat, then, when the runner's config grants the
// edit action too, edits the answer to show how long the round trip
// through the runner took: "pong (12 ms)".
package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/tgrunner/tgrunner/sdk"
)

func newPlugin() *sdk.Plugin {
	p := sdk.New("ping", "0.1.0",
		sdk.WithDescription("Answers .ping with pong"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send", "edit"}}),
	)
	p.Command("ping", ping).Describe("Replies pong, with the round trip in ms")
	return p
}

func ping(c *sdk.Context) error {
	start := time.Now()
	reply, err := c.Reply("pong")
	if err != nil {
		return err
	}
	if !slices.Contains(c.Plugin().Settings().Granted.Actions, "edit") || reply == nil {
		return nil
	}
	ms := time.Since(start).Milliseconds()
	_, err = c.Edit(reply.GetChat().GetPeer(), reply.GetId(), fmt.Sprintf("pong (%d ms)", ms))
	return err
}

func main() { sdk.Serve(newPlugin()) }
