// Command noisy prints to stdout before the go-plugin handshake, which a
// plugin must never do.
package main

import (
	"fmt"

	"github.com/tgrunner/tgrunner/core/pluginhost/testdata/plugins/tplug"
)

func main() {
	fmt.Println("hello from noisy, loading config...")
	tplug.Serve(tplug.Plugin{})
}
