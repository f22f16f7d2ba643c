package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/core/config"
)

// newValidateCmd checks a config without connecting anywhere: syntax,
// types, secrets (env variables and files are read), key files, plugin
// checksums and the api_id rules.
func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a config file without connecting",
		Long: `Check a config file without connecting to Telegram.

The file is FILE, else --config, else $TGRUNNER_CONFIG, else ./tgrunner.yaml.
Every problem is printed on stderr as file:line:col: key: message, and the
command exits non-zero. Environment variables and secret files the config
refers to are read, so run it as the user the runner runs as.`,
		Example: `  runner validate
  runner validate /etc/tgrunner/tgrunner.yaml
  TGRUNNER_CONFIG=prod.yaml runner validate`,
		Args: cobra.MaximumNArgs(1),
		RunE: runValidate,
	}
}

func runValidate(cmd *cobra.Command, args []string) error {
	flagPath, _ := cmd.Flags().GetString("config")
	if len(args) == 1 {
		if flagPath != "" && flagPath != args[0] {
			return fmt.Errorf("both --config %s and FILE %s given; pass one", flagPath, args[0])
		}
		flagPath = args[0]
	}
	path := config.Resolve(flagPath, os.LookupEnv)
	// From here on the problem is the config, not how the command was used.
	cmd.SilenceUsage = true

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, err := config.Load(ctx, path, config.LoadOptions{})
	stderr := cmd.ErrOrStderr()
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		fmt.Fprintln(stderr, cerr.Error())
		return fmt.Errorf("%s is not valid: %s", path, plural(len(cerr.Problems), "problem"))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("config file %s not found: pass it as FILE or --config, set $%s, or start from configs/example.yaml", path, config.EnvConfigPath)
	case err != nil:
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	printSummary(cmd.OutOrStdout(), cfg)
	return nil
}

func printSummary(w io.Writer, c *config.Config) {
	a := c.Account
	fmt.Fprintf(w, "%s: valid\n", c.File)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-8s %s\n", name, fmt.Sprintf(format, args...))
	}
	phone := a.Phone.Describe()
	if !a.Phone.IsSet() {
		phone = "asked at login"
	}
	row("account", "api_id %d, api_hash %s, phone %s, 2FA password %s", a.APIID, a.APIHash.Describe(), phone, a.Password.Describe())

	s := c.Server
	switch s.Type {
	case config.ServerCustom:
		transport := "plain"
		if s.Obfuscated {
			transport = "obfuscated"
		}
		row("server", "custom %s, DC %d, %s, %s transport", s.Address, s.DC, plural(len(s.PublicKeys), "public key"), transport)
	case config.ServerTest:
		row("server", "test, DC %d", s.DC)
	case config.ServerSandbox:
		if s.SeedFile != "" {
			row("server", "sandbox, seeded from %s", s.SeedFile)
		} else {
			row("server", "sandbox")
		}
	default:
		row("server", "%s", s.Type)
	}
	row("storage", "%s", c.Storage.Dir)

	logTo := "stderr"
	if c.Log.File != "" {
		logTo = c.Log.File
	}
	row("log", "%s, %s, %s, phone numbers: %s", c.Log.Level, c.Log.Format, logTo, c.Log.Redact.PhoneNumbers)

	l := c.Limits
	var mode []string
	if l.DryRun {
		mode = append(mode, "DRY RUN")
	}
	if q := l.QuietHours; q != nil {
		mode = append(mode, fmt.Sprintf("quiet %02d:%02d-%02d:%02d %s", q.From/60, q.From%60, q.To/60, q.To%60, q.TimeZone))
	}
	row("limits", "per chat %s (burst %d), groups %s, global %s, plugin %s; first contacts %d/day%s",
		l.Send.PerChat.Rate, l.Send.PerChat.Burst, l.Send.PerGroup.Rate, l.Send.Global.Rate, l.Send.Plugin.Rate,
		l.FirstContacts.PerDay, prefixed("; ", strings.Join(mode, "; ")))

	var plugins []string
	for _, p := range c.Plugins {
		desc := p.Name + ": "
		if p.Builtin != "" {
			desc += "builtin " + p.Builtin
		} else {
			desc += p.Path + " (pinned)"
		}
		if p.Disabled {
			desc += ", disabled"
		}
		plugins = append(plugins, desc)
	}
	if len(plugins) == 0 {
		row("plugins", "none")
	} else {
		row("plugins", "%d: %s", len(plugins), strings.Join(plugins, "; "))
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
