// Command flooder is a test plugin that tries to flood a chat: ".flood N"
// sends N messages as fast as it can, all at once.
package main

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/tgrunner/tgrunner/sdk"
)

func main() {
	p := sdk.New("flooder", "0.0.1", sdk.WithPermissions(sdk.Permissions{Actions: []string{"send"}}))
	p.Command("flood", func(c *sdk.Context) error {
		n, err := strconv.Atoi(c.ArgText())
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				if _, err := c.Send(c.ChatPeer(), fmt.Sprintf("flood %d", i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	sdk.Serve(p)
}
