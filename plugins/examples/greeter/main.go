// Command greeter greets people who say hi, and counts the greetings.
package main

import (
	"strconv"
	"time"
	_ "time/tzdata" // zones even where the system has none

	"github.com/tgrunner/tgrunner/sdk"
)

type Config struct {
	Greeting string `json:"greeting"`
}

func newPlugin() *sdk.Plugin {
	p := sdk.New("greeter", "1.0.0",
		sdk.WithDescription("Greets people who say hi"),
		// What the plugin asks for. The runner's config decides what it gets.
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send"}}),
	)
	cfg := sdk.NewConfig(p, Config{Greeting: "Hello"}) // defaults

	// ".hi" or ".hi Bob", in any chat.
	p.Command("hi", func(c *sdk.Context) error {
		name := c.ArgText()
		if name == "" {
			name = c.Sender().GetFirstName()
		}
		n, err := count(c)
		if err != nil {
			return err
		}
		_, err = c.Reply(cfg.Get().Greeting + ", " + name + "! (greeting #" + strconv.Itoa(n) + ")")
		return err
	}).Describe("Greets you or someone").Usage("[name]")

	// Every morning at 9 in Berlin, write to Saved Messages.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	p.Cron("0 9 * * *", func(c *sdk.Context) error {
		me, err := c.Me()
		if err != nil {
			return err
		}
		_, err = c.Send(sdk.UserPeer(me.GetId()), "Good morning")
		return err
	}).In(berlin)
	return p
}

// count keeps a counter in the plugin's key-value store, which the runner
// keeps for it across restarts.
func count(c *sdk.Context) (int, error) {
	v, _, err := c.KV().Get("count")
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(string(v))
	n++
	return n, c.KV().Set("count", []byte(strconv.Itoa(n)))
}

func main() { sdk.Serve(newPlugin()) }
