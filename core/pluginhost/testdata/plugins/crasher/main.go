// Command crasher dies (an unrecovered panic) on every third event it
// receives, counting from its own start.
package main

import (
	"github.com/tgrunner/tgrunner/core/pluginhost/testdata/plugins/tplug"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func main() {
	n := 0
	tplug.Serve(tplug.Plugin{Handle: func(s *tplug.Session, ev *pluginv1.Event) error {
		n++
		if n%3 == 0 {
			panic("crasher: third event")
		}
		return nil
	}})
}
