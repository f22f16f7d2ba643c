// Command runner is tgrunner: a self-hosted automation runner for user
// accounts. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/core/runner"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitFatal   = 3 // the account needs attention (banned, session revoked...)
	exitLogin   = 4 // not logged in
	exitSignal2 = 130
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "runner",
		Short: "tgrunner: a safe automation runner for your user account",
		Long: `tgrunner logs in to one user account, receives every update without
losing one, and runs plugins and YAML automations out of process, with
every outgoing call passing an anti-spam guard.

Try it without an account: runner sandbox`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().String("config", "", "config file (default $TGRUNNER_CONFIG, then ./tgrunner.yaml)")
	root.AddCommand(opsCommands()...)
	root.AddCommand(
		newRunCmd(),
		newValidateCmd(),
		newLoginCmd(),
		newLogoutCmd(),
		newSandboxCmd(),
		newAuditCmd(),
		newPluginCmd(),
		newStorageCmd(),
		newVersionCmd(),
	)
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first SIGINT/SIGTERM asks for a graceful stop; a second one
	// exits at once (state stays consistent: every write is a bbolt tx).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "second signal: exiting now")
		os.Exit(exitSignal2)
	}()

	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var fatal *runner.FatalError
	switch {
	case errors.As(err, &fatal):
		return exitFatal
	case errors.Is(err, runner.ErrNotLoggedIn):
		return exitLogin
	case isUsageError(err):
		return exitUsage
	}
	return exitError
}

type usageError struct{ error }

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
