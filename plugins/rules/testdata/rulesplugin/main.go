// Command rulesplugin serves the rules plugin as a separate binary, so
// the end-to-end tests run it the way the runner runs an external plugin
// (the runner binary serves it as the builtin "rules").
package main

import (
	"github.com/tgrunner/tgrunner/plugins/rules"
	"github.com/tgrunner/tgrunner/sdk"
)

func main() { sdk.Serve(rules.New()) }
