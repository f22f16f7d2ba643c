package main

import (
	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/plugins/builtin"
)

// newPluginCmd serves one builtin plugin. The plugin host starts it as
// `<runner> plugin NAME` for config entries with `builtin: NAME`; it is not
// meant to be run by hand.
func newPluginCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "plugin NAME",
		Short:  "Serve a builtin plugin (started by the runner, not by hand)",
		Hidden: true,
		Long: `Serve a builtin plugin under the plugin protocol. The runner starts this
itself for every config entry with "builtin: NAME"; run by hand, the plugin
explains that and exits. Builtin plugins: ` + joinNames(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{cobra.ExactArgs(1)(cmd, args)}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if err := builtin.Serve(args[0]); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
}

func joinNames() string {
	s := ""
	for i, n := range builtin.Names() {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}
