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

// newSandboxCmd groups the sandbox commands: a local MTProto server that
// any client can use instead of the real network.
func newSandboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "A local emulator of the messaging network, for trying tgrunner without an account",
	}
	cmd.AddCommand(newSandboxServeCmd())
	return cmd
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
