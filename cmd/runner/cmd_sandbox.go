package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/sandbox"
)

// newSandboxCmd is the demo (bare `runner sandbox`), scripted
// conversations (--script) and the standalone server (serve): a local
// MTProto server instead of the real network, no account needed.
func newSandboxCmd() *cobra.Command {
	var script, color string
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Try tgrunner without an account: an interactive chat with your automations",
		Long: `Without arguments, runner sandbox starts the embedded sandbox, seeds an owner
account, a few people, a group and a channel, runs the runner as the owner
with configs/sandbox.yaml (every first-party plugin and a few rules; --config
picks another config with server: sandbox), and opens a chat in the
terminal: you type as one of the people (/as NAME, /to CHAT) and watch the
owner's automations answer, each answer labelled with the plugin or rule
that sent it.

With --script FILE it plays a scripted conversation instead and exits
non-zero, with what it expected and what it got, when an answer does not
come. docs/sandbox.md describes both.`,
		Example: `  runner sandbox
  runner sandbox --config configs/examples/pm-guard.yaml
  runner sandbox --script configs/examples/pm-guard.script.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			useColor, err := colorChoice(color, cmd.OutOrStdout())
			if err != nil {
				return usageError{err}
			}
			configPath, _ := cmd.Flags().GetString("config")
			opts := demoOptions{ConfigPath: configPath, Out: cmd.OutOrStdout(), Color: useColor, Prompt: isTerminal(cmd.OutOrStdout())}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if script != "" {
				return runScript(ctx, script, opts)
			}
			d, err := startDemo(ctx, opts)
			if err != nil {
				return err
			}
			defer d.close()
			return d.chat(ctx, cmd.InOrStdin())
		},
	}
	cmd.Flags().StringVar(&script, "script", "", "play this scripted conversation (YAML) and check the answers, non-interactively")
	cmd.Flags().StringVar(&color, "color", "auto", "colours: auto (on a terminal, unless NO_COLOR is set), always or never")
	cmd.AddCommand(newSandboxServeCmd())
	return cmd
}

// colorChoice decides whether to print ANSI colours.
func colorChoice(mode string, out io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		_, noColor := os.LookupEnv("NO_COLOR")
		return !noColor && isTerminal(out), nil
	}
	return false, fmt.Errorf("--color: %q: want auto, always or never", mode)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newSandboxServeCmd() *cobra.Command {
	var listen, dir, seedPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the sandbox MTProto server until interrupted",
		Long: `Run the sandbox standalone for any MTProto client. It prints the address,
the DC and the public-key path, and creates the accounts, group and
channels of the seed (a default seed without --seed). Test numbers
99966XYYYY log in with code XXXXX.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serveSandbox(ctx, cmd.OutOrStdout(), listen, dir, seedPath)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "TCP address to listen on")
	cmd.Flags().StringVar(&dir, "dir", "", "directory keeping the server RSA key across restarts")
	cmd.Flags().StringVar(&seedPath, "seed", "", "YAML seed file with users, contacts, groups and channels")
	return cmd
}

// serveSandbox runs the server until ctx is done.
func serveSandbox(ctx context.Context, out io.Writer, listen, dir, seedPath string) error {
	seed := sandbox.DefaultSeed()
	if seedPath != "" {
		var err error
		if seed, err = sandbox.LoadSeed(seedPath); err != nil {
			return err
		}
	}
	srv, err := sandbox.Start(ctx, sandbox.Options{Listen: listen, Dir: dir})
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()
	res, err := srv.ApplySeedResult(ctx, seed)
	if err != nil {
		return err
	}

	keyDir := dir
	if keyDir == "" {
		if keyDir, err = os.MkdirTemp("", "tgrunner-sandbox-"); err != nil {
			return fmt.Errorf("create temp dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(keyDir) }()
	}
	keyPath := filepath.Join(keyDir, "public_key.pem")
	if err := os.WriteFile(keyPath, srv.PublicKeyPEM(), 0o644); err != nil {
		return fmt.Errorf("write public key %s: %w", keyPath, err)
	}

	fmt.Fprintf(out, "sandbox listening on %s (DC %d)\n", srv.Addr(), srv.DC())
	fmt.Fprintf(out, "public key: %s\n", keyPath)
	fmt.Fprintln(out, "accounts:")
	for _, u := range seed.Users {
		user, _ := srv.UserByPhone(u.Phone)
		code, isTest := testCode(user.Phone)
		line := fmt.Sprintf("  %-12s id=%d phone=%s", u.FirstName, user.ID, user.Phone)
		if user.Username != "" {
			line += " @" + user.Username
		}
		if isTest {
			line += " code=" + code
		} else {
			line += " code=(sent on login; shown by the driver)"
		}
		if u.Password != "" {
			line += " (2FA on)"
		}
		fmt.Fprintln(out, line)
	}
	printIDs(out, "groups", res.Groups)
	printIDs(out, "channels", res.Channels)
	fmt.Fprintln(out, "press Ctrl+C to stop")

	<-ctx.Done()
	fmt.Fprintln(out, "sandbox stopped")
	return nil
}

func printIDs(out io.Writer, title string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "%s:\n", title)
	for _, n := range names {
		fmt.Fprintf(out, "  %-12s id=%d\n", n, m[n])
	}
}

// testCode follows the test-number convention: 99966XYYYY logs in with XXXXX.
func testCode(phone string) (string, bool) {
	if len(phone) == 10 && phone[:5] == "99966" {
		x := phone[5:6]
		return x + x + x + x + x, true
	}
	return "", false
}
