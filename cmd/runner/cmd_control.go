package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

// EnvSocket names the environment variable that points the control
// commands at a socket without reading the config.
const EnvSocket = "TGRUNNER_SOCKET"

// opsCommands are the commands that talk to a running runner over its
// control socket, plus backup and restore. main.go adds them to the root.
func opsCommands() []*cobra.Command {
	return []*cobra.Command{
		newStatusCmd(),
		newPauseCmd(),
		newResumeCmd(),
		newReloadCmd(),
		newPluginsCmd(),
		newBackupCmd(),
		newRestoreCmd(),
	}
}

// askRunner sends one request to the running runner over its control
// socket and prints the answer.
func askRunner(cmd *cobra.Command, do func(c *ops.Client) (ops.Result, error)) error {
	c, err := dialRunner(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := do(c)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.Message)
	return nil
}

// addSocketFlag adds --socket and --account to a command that talks to the
// runner.
func addSocketFlag(cmd *cobra.Command) {
	cmd.Flags().String("socket", "", "control socket of the running runner (default: ops.socket from the config, or $"+EnvSocket+")")
	cmd.Flags().String("account", "", "the account, by its name in accounts: (needed when the runner has several and the command is about one)")
}

// accountStorageDir is the bbolt directory `runner run` uses for the
// account --account names (the only one when the config has one).
func accountStorageDir(cmd *cobra.Command, cfg *config.Config) (string, error) {
	if cfg.UsesRedis() {
		return "", errors.New("the storage is in Redis (storage.url): this command works through the running runner's control socket, and none answers")
	}
	base := *cfg
	base.Storage.Dir = runnerStorageDir(cfg)
	name, _ := cmd.Flags().GetString("account")
	_, acfg, err := accountConfigName(&base, name)
	if err != nil {
		return "", err
	}
	return acfg.Storage.Dir, nil
}

// runnerStorageDir is the storage directory `runner run` uses for cfg: the
// sandbox runs in a subdirectory it resets on every start.
func runnerStorageDir(cfg *config.Config) string {
	if cfg.Server.Type == config.ServerSandbox {
		return filepath.Join(cfg.Storage.Dir, "sandbox-run")
	}
	return cfg.Storage.Dir
}

// socketPath resolves the control socket: --socket, $TGRUNNER_SOCKET, then
// the config's ops.socket (by default runner.sock in the storage
// directory). The flag and the variable spare reading the config, whose
// secrets the operator's shell may not have.
func socketPath(cmd *cobra.Command) (string, error) {
	if f := cmd.Flags().Lookup("socket"); f != nil && f.Value.String() != "" {
		return f.Value.String(), nil
	}
	if p, ok := os.LookupEnv(EnvSocket); ok && p != "" {
		return p, nil
	}
	cfg, err := loadConfig(cmd)
	if err != nil {
		return "", fmt.Errorf("%w\n(to reach the runner without reading the config, pass --socket or set $%s)", err, EnvSocket)
	}
	p := cfg.Ops.SocketPath(runnerStorageDir(cfg))
	if p == "" {
		return "", errors.New("the control socket is off in the config (ops.socket: off); turn it on to use this command")
	}
	return p, nil
}

// dialRunner returns a client for the running runner.
func dialRunner(cmd *cobra.Command) (*ops.Client, error) {
	p, err := socketPath(cmd)
	if err != nil {
		return nil, err
	}
	c := ops.NewClient(p)
	if f := cmd.Flags().Lookup("account"); f != nil && f.Value.String() != "" {
		c = c.ForAccount(f.Value.String())
	}
	return c, nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func newPauseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pause [REASON]",
		Short: "Hold every write action of the running runner until resume",
		Long: `pause tells the running runner's guard to hold every write action (sends,
edits, joins...) until runner resume. Updates keep being received and
plugins keep running; their actions wait in the guard's durable queue.
The pause is kept in the account's storage: a restart of the runner, or
the account moving to another runner, does not lift it. The pause and
its reason go to the audit log. With several accounts it pauses all of
them, or the one --account names.`,
		Example: `  runner pause
  runner pause "checking what the echo plugin does"`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return askRunner(cmd, func(c *ops.Client) (ops.Result, error) { return c.Pause(cmd.Context(), strings.Join(args, " ")) })
		},
	}
	addSocketFlag(cmd)
	return cmd
}

func newResumeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Let write actions flow again after runner pause",
		Long: `resume lifts a pause set by runner pause (or by a plugin with the
runner_control permission). Other holds (a PAUSED file in the storage
directory, quiet hours, a flood wait) stay; the answer says if one does.`,
		Example: `  runner resume`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return askRunner(cmd, func(c *ops.Client) (ops.Result, error) { return c.Resume(cmd.Context()) })
		},
	}
	addSocketFlag(cmd)
	return cmd
}

func newReloadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running runner re-read its config",
		Long: `reload asks the running runner to re-read and validate its config file.
An invalid config is refused and the old one keeps running. Only what
changed is restarted; the session stays up. SIGHUP does the same.
The whole config is re-read and applied to every account the runner
runs, so reload takes no --account.`,
		Example: `  runner validate --config /etc/tgrunner/tgrunner.yaml && runner reload
  systemctl reload tgrunner`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name, _ := cmd.Flags().GetString("account"); name != "" {
				return fmt.Errorf("--account %s: reload re-reads the whole config and applies it to every account this runner runs (only what changed restarts); run it without --account", name)
			}
			return askRunner(cmd, func(c *ops.Client) (ops.Result, error) { return c.Reload(cmd.Context()) })
		},
	}
	addSocketFlag(cmd)
	return cmd
}

func newPluginsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List and manage the running runner's plugins",
		Long: `plugins lists the plugins of the running runner and restarts, disables
or enables one of them. pin writes a plugin binary's sha256 into the
config (the runner refuses a plugin whose binary does not match).

disable lasts until enable or until the runner restarts; to keep a plugin
off, set disabled: true in its config entry.`,
		Example: `  runner plugins list
  runner plugins status echo
  runner plugins restart echo
  runner plugins disable echo && runner plugins enable echo
  runner plugins pin echo   # after replacing the echo binary`,
	}
	cmd.AddCommand(newPluginsListCmd("list", "List the plugins with their state, queue and last error"),
		newPluginsStatusCmd(),
		newPluginVerbCmd("restart", "Restart a plugin now (also out of backoff or quarantine)"),
		newPluginVerbCmd("disable", "Stop a plugin and keep it stopped until enable"),
		newPluginVerbCmd("enable", "Start a disabled or quarantined plugin"),
		newPluginsPinCmd(),
	)
	return cmd
}

func newPluginsListCmd(use, short string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  runner plugins " + use + "\n  runner plugins " + use + " --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dialRunner(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ps, err := c.Plugins(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(cmd.OutOrStdout(), ps)
			}
			return printPlugins(cmd.OutOrStdout(), ps)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addSocketFlag(cmd)
	return cmd
}

func newPluginsStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show one plugin in detail (all plugins without NAME)",
		Example: `  runner plugins status echo
  runner plugins status echo --json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completePluginNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dialRunner(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if len(args) == 0 {
				ps, err := c.Plugins(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), ps)
				}
				return printPlugins(cmd.OutOrStdout(), ps)
			}
			p, err := c.Plugin(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(cmd.OutOrStdout(), p)
			}
			return printPlugin(cmd.OutOrStdout(), p)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addSocketFlag(cmd)
	return cmd
}

func printPlugin(out io.Writer, p ops.Plugin) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("Plugin", p.Name)
	state := p.State
	if !p.Since.IsZero() {
		state += " since " + p.Since.Local().Format("2006-01-02 15:04:05")
	}
	row("State", state)
	if p.QuarantineReason != "" {
		row("Quarantined", p.QuarantineReason)
	}
	if !p.NextStart.IsZero() {
		row("Next start", p.NextStart.Local().Format("15:04:05"))
	}
	if p.PID != 0 {
		row("PID", fmt.Sprint(p.PID))
	}
	row("Version", dashIfEmpty(strings.TrimSpace(p.Version+" (sdk "+p.SDK+")")))
	row("Queue", fmt.Sprintf("%d queued, %d in flight, lag %d", p.QueueDepth, p.InFlight, p.Lag))
	row("Events", fmt.Sprintf("%d delivered, %d failed, %d dropped, %d filtered", p.Delivered, p.Failed, p.Dropped, p.Filtered))
	row("Actions", fmt.Sprintf("%d calls, %d denied", p.Actions, p.Denied))
	row("Latency", fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", p.LatencyP50MS, p.LatencyP99MS))
	row("Restarts", fmt.Sprintf("%d (%d crashes in the restart window)", p.Restarts, p.Crashes))
	row("Last error", dashIfEmpty(p.LastError))
	return tw.Flush()
}

func newPluginVerbCmd(verb, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:               verb + " NAME",
		Short:             short,
		Example:           "  runner plugins " + verb + " echo",
		Args:              exactArgs(1, "a plugin name"),
		ValidArgsFunction: completePluginNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return askRunner(cmd, func(c *ops.Client) (ops.Result, error) { return c.PluginControl(cmd.Context(), args[0], verb) })
		},
	}
	addSocketFlag(cmd)
	return cmd
}

func newPluginsPinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pin NAME",
		Short: "Write a plugin binary's current sha256 into the config",
		Long: `pin computes the sha256 of the plugin's binary (its path: in the config)
and writes it as the plugin's sha256: in the config file, keeping the
file's comments and layout. Check the binary is the one you mean to run
first: the pin is what stops a replaced binary from being started.

A running runner picks the new pin up on runner reload or restart.`,
		Example:           "  runner plugins pin echo --config /etc/tgrunner/tgrunner.yaml",
		Args:              exactArgs(1, "a plugin name"),
		ValidArgsFunction: completePluginNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			flagPath, _ := cmd.Flags().GetString("config")
			path := config.Resolve(flagPath, os.LookupEnv)
			bin, old, err := pluginBinary(path, args[0])
			if err != nil {
				return err
			}
			sum, err := config.SHA256File(bin)
			if err != nil {
				return fmt.Errorf("plugin %s: %w", args[0], err)
			}
			if sum == old {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is already pinned to %s\n", args[0], sum)
				return nil
			}
			if err := config.PinPluginSHA256(path, args[0], sum); err != nil {
				return err
			}
			if old == "" {
				old = "(none)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pinned %s (%s) in %s\n  was: %s\n  now: %s\nrun `runner reload` (or restart the runner) to use it\n", args[0], bin, path, old, sum)
			return nil
		},
	}
}

// pluginBinary finds a plugin's path and current pin in the config file
// without loading the whole config: pinning is how a config whose pin no
// longer matches is fixed, and it needs no secrets.
func pluginBinary(path, name string) (bin, pinned string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("read config %s: %w", path, err)
	}
	var doc struct {
		Plugins []struct {
			Name    string `yaml:"name"`
			Path    string `yaml:"path"`
			Builtin string `yaml:"builtin"`
			SHA256  string `yaml:"sha256"`
		} `yaml:"plugins"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", "", fmt.Errorf("read config %s: %w", path, err)
	}
	var names []string
	for _, p := range doc.Plugins {
		names = append(names, p.Name)
		if p.Name != name {
			continue
		}
		if p.Path == "" {
			return "", "", fmt.Errorf("plugin %s has no path: (a builtin plugin is part of the runner and needs no pin)", name)
		}
		bin = os.ExpandEnv(p.Path)
		if !filepath.IsAbs(bin) {
			bin = filepath.Join(filepath.Dir(path), bin)
		}
		return bin, p.SHA256, nil
	}
	return "", "", fmt.Errorf("no plugin named %q in %s (plugins: %s)", name, path, dashIfEmpty(strings.Join(names, ", ")))
}

func writeJSONOut(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs with a usage error naming what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s; see --help", cmd.CommandPath(), what)}
		}
		return nil
	}
}

// completePluginNames completes plugin names from the running runner, or
// from the config when it is not running.
func completePluginNames(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if c, err := dialRunner(cmd); err == nil {
		defer c.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		if ps, err := c.Plugins(ctx); err == nil {
			names := make([]string, len(ps))
			for i, p := range ps {
				names[i] = p.Name
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		}
	}
	flagPath, _ := cmd.Flags().GetString("config")
	if data, err := os.ReadFile(config.Resolve(flagPath, os.LookupEnv)); err == nil {
		var doc struct {
			Plugins []struct {
				Name string `yaml:"name"`
			} `yaml:"plugins"`
		}
		if yaml.Unmarshal(data, &doc) == nil {
			var names []string
			for _, p := range doc.Plugins {
				names = append(names, p.Name)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		}
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// auditThroughRunner reads the audit log from the running runner. ok is
// false when no runner answers (the caller then opens the storage
// directly). cmd_audit.go calls it before opening the store.
func auditThroughRunner(cmd *cobra.Command, f guard.AuditFilter) (recs []guard.AuditRecord, ok bool, err error) {
	c, err := dialRunner(cmd)
	if err != nil {
		return nil, false, nil
	}
	defer c.Close()
	recs, err = c.Audit(cmd.Context(), f)
	var notRunning *ops.NotRunningError
	if errors.As(err, &notRunning) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return recs, true, nil
}

// startOps starts the metrics, health checks and status page (ops.listen)
// and the control socket for `runner run`, and hooks them into opts. Call
// it after the store is open and the stack built, before runner.New; call
// the returned finish with Run's error once Run returns.
func startOps(ctx context.Context, cmd *cobra.Command, cfg *config.Config, st *store.Store, stack *runner.Stack,
	opts *runner.Options, log *zap.Logger) (finish func(runErr error), reload func(context.Context) error, err error) {
	flagPath, _ := cmd.Flags().GetString("config")
	rl := &stackReloader{stack: stack, path: config.Resolve(flagPath, os.LookupEnv), log: log}
	o, err := ops.New(ops.Options{Config: cfg, Store: st, Stack: stack, Reloader: rl, Logger: log.Named("ops")})
	if err != nil {
		return nil, nil, err
	}
	rl.ops = o
	if err := o.Start(ctx); err != nil {
		return nil, nil, err
	}
	o.Attach(opts)
	return func(runErr error) {
		o.Stopping()
		o.SessionDown(runErr)
		if err := o.Close(); err != nil {
			log.Warn("Stop the ops servers", zap.Error(err))
		}
	}, rl.Reload, nil
}

// stackReloader serves `runner reload` with the same reload as SIGHUP.
type stackReloader struct {
	stack *runner.Stack
	path  string
	log   *zap.Logger
	ops   *ops.Ops
}

func (r *stackReloader) Reload(ctx context.Context) error {
	r.ops.Reloading()
	defer r.ops.ReloadDone()
	cfg, err := config.Load(ctx, r.path, config.LoadOptions{})
	if err != nil {
		r.log.Error("Reload", zap.Error(err))
		return fmt.Errorf("the config does not load: %w", err)
	}
	// As in runAccount: the sandbox runs in its own subdirectory, which is
	// not a change of storage.
	cfg.Storage.Dir = runnerStorageDir(cfg)
	rep, err := r.stack.Reload(ctx, cfg)
	if err != nil {
		r.log.Error("Reload", zap.Error(err))
		return err
	}
	r.log.Info("Reloaded", zap.String("config", r.path), zap.Strings("added", rep.Added),
		zap.Strings("removed", rep.Removed), zap.Strings("restarted", rep.Restarted), zap.Bool("limits", rep.LimitsChanged))
	return nil
}
