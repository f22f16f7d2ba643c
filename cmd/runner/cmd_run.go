package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

func newRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the account: receive updates, run plugins and automations",
		Long: `Run connects the logged-in account, catches up on every update missed
while it was down, and runs the configured plugins and automations until
SIGINT or SIGTERM. The first signal stops gracefully (in-flight actions
finish, state is flushed); a second one exits at once.`,
		Example: `  runner run --config /etc/tgrunner/tgrunner.yaml
  TGRUNNER_CONFIG=./tgrunner.yaml runner run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			lg, err := newLogger(cfg)
			if err != nil {
				return err
			}
			defer lg.Close()
			return runAccount(cmd, cfg, lg.Logger)
		},
	}
}

func runAccount(cmd *cobra.Command, cfg *config.Config, log *zap.Logger) error {
	ctx := cmd.Context()
	if cfg.Server.Type == config.ServerSandbox {
		// The embedded sandbox lives in memory: a session or update state
		// from an earlier run would point at a world that is gone.
		cfg.Storage.Dir = runnerStorageDir(cfg)
		if err := os.RemoveAll(cfg.Storage.Dir); err != nil {
			return fmt.Errorf("reset sandbox storage: %w", err)
		}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	opts := runner.Options{Logger: log}
	if cfg.Server.Type == config.ServerSandbox {
		sb, phone, err := embeddedSandbox(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer sb.Close()
		opts.Sandbox = sb
		opts.Login = runner.SandboxLogin(sb, phone, cfg.Account.Password.Reveal())
		log.Info("Embedded sandbox started", zap.String("addr", sb.Addr()))
	}
	stack, err := buildStack(cfg, st, log)
	if err != nil {
		return err
	}
	opts.Services = []runner.Service{stack}
	finishOps, reload, err := startOps(ctx, cmd, cfg, st, stack, &opts, log)
	if err != nil {
		return err
	}
	go pauseOnSignals(ctx, stack, log)
	go reloadOnSIGHUP(ctx, reload, log)
	r := runner.New(cfg, store.Bolt(st), opts)
	runErr := r.Run(ctx)
	finishOps(runErr)
	if runErr != nil {
		return fmt.Errorf("run: %w", runErr)
	}
	log.Info("Stopped")
	return nil
}

// pauseOnSignals pauses all outgoing actions on SIGUSR1 and resumes on
// SIGUSR2: the kill switch for scripts (`kill -USR1 $(pidof runner)`).
func pauseOnSignals(ctx context.Context, stack *runner.Stack, log *zap.Logger) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			g := stack.Guard()
			if g == nil {
				log.Warn("Signal ignored: the runner is not connected yet", zap.String("signal", sig.String()))
				continue
			}
			if sig == syscall.SIGUSR1 {
				g.Pause("SIGUSR1")
				log.Warn("Paused: outgoing actions wait until SIGUSR2 or `runner resume`")
			} else {
				g.Resume()
				log.Info("Resumed")
			}
		}
	}
}

// reloadOnSIGHUP re-reads the config on SIGHUP, as `runner reload` does.
// An invalid config is rejected and the running one stays.
func reloadOnSIGHUP(ctx context.Context, reload func(context.Context) error, log *zap.Logger) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigs:
			// reload logs what it did, or why the old config stays.
			_ = reload(ctx)
		}
	}
}
