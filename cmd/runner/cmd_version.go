package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and build information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, ok := debug.ReadBuildInfo()
			if !ok {
				fmt.Fprintln(cmd.OutOrStdout(), "tgrunner (no build info)")
				return nil
			}
			version := info.Main.Version
			if version == "" || version == "(devel)" {
				version = "devel"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tgrunner %s (%s)\n", version, info.GoVersion)
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
					fmt.Fprintf(cmd.OutOrStdout(), "  %s=%s\n", s.Key, s.Value)
				}
			}
			for _, d := range info.Deps {
				switch d.Path {
				case "github.com/gotd/td", "github.com/gotd/contrib", "github.com/hashicorp/go-plugin":
					fmt.Fprintf(cmd.OutOrStdout(), "  %s %s\n", d.Path, d.Version)
				}
			}
			return nil
		},
	}
}
