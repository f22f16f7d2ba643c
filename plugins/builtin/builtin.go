// Package builtin owns the table of first-party plugins that the runner
// binary serves itself: `runner plugin NAME` looks NAME up here and serves
// it under go-plugin, and the config's `builtin: NAME` names one of them.
package builtin

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tgrunner/tgrunner/plugins/admin"
	"github.com/tgrunner/tgrunner/plugins/alerts"
	"github.com/tgrunner/tgrunner/plugins/autoreply"
	"github.com/tgrunner/tgrunner/plugins/forward"
	"github.com/tgrunner/tgrunner/plugins/pmguard"
	"github.com/tgrunner/tgrunner/plugins/rules"
	"github.com/tgrunner/tgrunner/plugins/schedule"
	"github.com/tgrunner/tgrunner/sdk"
)

// table is fixed at build time: adding a first-party plugin is one line.
var table = map[string]func() *sdk.Plugin{
	"admin":     admin.New,
	"alerts":    alerts.New,
	"autoreply": autoreply.New,
	"forward":   forward.New,
	"pmguard":   pmguard.New,
	"rules":     rules.New,
	"schedule":  schedule.New,
}

// Lookup returns the constructor of the builtin plugin name.
func Lookup(name string) (func() *sdk.Plugin, bool) {
	f, ok := table[name]
	return f, ok
}

// Names lists the builtin plugins, sorted.
func Names() []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnknownError is a name that is not a builtin plugin.
type UnknownError struct{ Name string }

func (e *UnknownError) Error() string {
	return fmt.Sprintf("%q is not a builtin plugin; the builtin plugins are: %s", e.Name, strings.Join(Names(), ", "))
}

// Serve serves the builtin plugin name under go-plugin until the runner
// stops it. It is what `runner plugin NAME` runs.
func Serve(name string) error {
	f, ok := Lookup(name)
	if !ok {
		return &UnknownError{Name: name}
	}
	sdk.Serve(f())
	return nil
}
