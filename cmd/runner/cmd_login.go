package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/tg"
	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
)

// secretFlags name where a secret comes from when nobody is at the
// terminal: a file descriptor, an environment variable or a command.
type secretFlags struct {
	name string
	fd   int
	env  string
	cmd  string
}

func (s *secretFlags) register(cmd *cobra.Command, name, what string) {
	s.name = name
	cmd.Flags().IntVar(&s.fd, name+"-fd", -1, "read the "+what+" from this file descriptor")
	cmd.Flags().StringVar(&s.env, name+"-env", "", "read the "+what+" from this environment variable")
	cmd.Flags().StringVar(&s.cmd, name+"-cmd", "", "run this command (no shell) and read the "+what+" from its output")
}

func (s secretFlags) set() bool { return s.fd >= 0 || s.env != "" || s.cmd != "" }

// read returns the secret, or prompts without echo when no source is set.
func (s secretFlags) read(ctx context.Context, prompt string, in *os.File, out io.Writer) (string, error) {
	switch {
	case s.fd >= 0:
		f := os.NewFile(uintptr(s.fd), fmt.Sprintf("fd%d", s.fd))
		if f == nil {
			return "", fmt.Errorf("file descriptor %d is not open", s.fd)
		}
		line, err := bufio.NewReader(f).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read file descriptor %d: %w", s.fd, err)
		}
		return strings.TrimSpace(line), nil
	case s.env != "":
		v, ok := os.LookupEnv(s.env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.env)
		}
		return strings.TrimSpace(v), nil
	case s.cmd != "":
		args := strings.Fields(s.cmd)
		c := exec.CommandContext(ctx, args[0], args[1:]...)
		c.Stderr = os.Stderr
		b, err := c.Output()
		if err != nil {
			return "", fmt.Errorf("run %s: %w", filepath.Base(args[0]), err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if !term.IsTerminal(int(in.Fd())) {
		return "", fmt.Errorf("%s needed but stdin is not a terminal: use --%s-fd, --%s-env or --%s-cmd",
			strings.ToLower(prompt), s.name, s.name, s.name)
	}
	fmt.Fprintf(out, "%s: ", prompt)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func newLoginCmd() *cobra.Command {
	var (
		qr        bool
		signUp    bool
		firstName string
		lastName  string
		phone     string
		code      secretFlags
		password  secretFlags
		account   string
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log the account in and keep the session in the storage directory",
		Long: `Log in interactively: phone, then the code Telegram sends, then the 2FA
password if the account has one. The code and the password are never
echoed or logged. With --qr, scan the code shown in the terminal from
Settings → Devices → Link Desktop Device in an official app; it refreshes
when it expires.

For automation, take the code and password from a file descriptor, an
environment variable or a command instead of the terminal.`,
		Example: `  runner login
  runner login --qr
  runner login --code-env TG_CODE --password-fd 3 3<secret.txt
  runner login --sign-up --first-name Ann   # a number with no account yet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			lg, err := newLogger(cfg)
			if err != nil {
				return err
			}
			defer lg.Close()
			name, cfg, err := accountConfigName(cfg, account)
			if err != nil {
				return err
			}
			st, closeStore, err := openBackend(ctx, cfg, name)
			if err != nil {
				return err
			}
			defer closeStore()
			if cfg.Server.Type == config.ServerSandbox {
				return errors.New("server: sandbox logs in by itself on `runner run`; nothing to do")
			}
			out := cmd.ErrOrStderr()
			if phone == "" {
				phone = cfg.Account.Phone.Reveal()
			}
			if phone == "" && !qr {
				fmt.Fprint(out, "Phone number (international format): ")
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil {
					return fmt.Errorf("read phone: %w", err)
				}
				phone = strings.TrimSpace(line)
			}
			src := runner.CodeSource{
				PhoneNumber: phone,
				GetCode: func(ctx context.Context, sent *tg.AuthSentCode) (string, error) {
					c, err := code.read(ctx, "Login code", os.Stdin, out)
					if err == nil {
						lg.Redactor.Register(c)
					}
					return c, err
				},
				GetPassword: func(ctx context.Context) (string, error) {
					if cfg.Account.Password.IsSet() && !password.set() {
						return cfg.Account.Password.Reveal(), nil
					}
					p, err := password.read(ctx, "2FA password", os.Stdin, out)
					if err == nil {
						lg.Redactor.Register(p)
					}
					return p, err
				},
			}
			if signUp {
				if firstName == "" {
					return usageError{errors.New("--sign-up needs --first-name")}
				}
				src.SignUpAs = auth.UserInfo{FirstName: firstName, LastName: lastName}
			}
			opts := runner.LoginOptions{Source: src, QR: qr, ShowQR: func(_ context.Context, url string, expires time.Time) error {
				fmt.Fprintf(out, "\nScan this code in an official app (Settings → Devices → Link Desktop Device). It expires at %s.\n\n",
					expires.Local().Format("15:04:05"))
				qrterminal.GenerateWithConfig(url, qrterminal.Config{Level: qrterminal.L, Writer: out, HalfBlocks: true,
					BlackChar: qrterminal.BLACK_BLACK, WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE,
					WhiteBlackChar: qrterminal.WHITE_BLACK, QuietZone: 2})
				return nil
			}}
			self, err := runner.Login(ctx, cfg, st, nil, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in as %s (id %d). The session is in %s.\n",
				strings.TrimSpace(self.FirstName+" "+self.LastName), self.ID, st.Describe())
			return nil
		},
	}
	cmd.Flags().BoolVar(&qr, "qr", false, "log in by scanning a QR code")
	cmd.Flags().BoolVar(&signUp, "sign-up", false, "create an account for a number that has none")
	cmd.Flags().StringVar(&firstName, "first-name", "", "first name for --sign-up")
	cmd.Flags().StringVar(&lastName, "last-name", "", "last name for --sign-up")
	cmd.Flags().StringVar(&phone, "phone", "", "phone number (default account.phone)")
	cmd.Flags().StringVar(&account, "account", "", "the account to log in, by its name in accounts: (needed when there are several)")
	code.register(cmd, "code", "login code")
	password.register(cmd, "password", "2FA password")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Terminate the session on the server and wipe it locally",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			name, cfg, err := accountConfigName(cfg, account)
			if err != nil {
				return err
			}
			st, closeStore, err := openBackend(cmd.Context(), cfg, name)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := runner.Logout(cmd.Context(), cfg, st, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Logged out; the session was wiped.")
			return nil
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account to log out, by its name in accounts: (needed when there are several)")
	return cmd
}
