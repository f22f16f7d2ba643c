package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/sandbox"
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
	flagPath, _ := cmd.Flags().GetString("config")
	path := config.Resolve(flagPath, os.LookupEnv)
	if cfg.UsesRedis() {
		return runOnRedis(cmd.Context(), cfg, path, nil, log)
	}
	if len(cfg.Accounts) > 0 {
		return runAccounts(cmd.Context(), cfg, path, log)
	}
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
	opts.Account = runner.DefaultAccount
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

// runAccounts runs every account of accounts: in this process, each with
// its own storage directory, session, guard, plugins and journal. One
// account stopping on an error does not stop the others; Run returns once
// all have stopped, with every account's error. One set of ops servers
// (metrics labelled by account, health, status page, control socket)
// serves them all, and a reload applies to each.
func runAccounts(ctx context.Context, cfg *config.Config, path string, log *zap.Logger) error {
	var sb *sandbox.Server
	if cfg.Server.Type == config.ServerSandbox {
		cfg.Storage.Dir = runnerStorageDir(cfg)
		if err := os.RemoveAll(cfg.Storage.Dir); err != nil {
			return fmt.Errorf("reset sandbox storage: %w", err)
		}
		var err error
		if sb, _, err = embeddedSandbox(ctx, cfg, log); err != nil {
			return err
		}
		defer sb.Close()
		log.Info("Embedded sandbox started", zap.String("addr", sb.Addr()))
	}
	fleet, finish, err := startFleetOps(ctx, cfg, cfg.Storage.Dir, path, prepareReload(cfg), nil, log)
	if err != nil {
		return err
	}
	defer finish(nil)
	names := cfg.AccountNames()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		acfg, err := cfg.ForAccount(name)
		if err != nil {
			return err
		}
		alog := log.With(zap.String("account", name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runOneAccount(ctx, acfg, name, i, sb, fleet, alog); err != nil {
				alog.Error("Account stopped", zap.Error(err))
				errs[i] = fmt.Errorf("account %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	err = errors.Join(errs...)
	finish(err)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	log.Info("Stopped")
	return nil
}

// prepareReload adjusts a reloaded config as runAccounts adjusted cfg: the
// sandbox runs in its own subdirectory, which is not a change of storage.
func prepareReload(cfg *config.Config) func(*config.Config) {
	if cfg.Server.Type != config.ServerSandbox {
		return nil
	}
	return func(c *config.Config) { c.Storage.Dir = runnerStorageDir(c) }
}

// runOneAccount runs account name (the i-th) until ctx ends.
func runOneAccount(ctx context.Context, cfg *config.Config, name string, i int, sb *sandbox.Server, fleet *fleetOps, log *zap.Logger) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return serveAccount(ctx, cfg, name, i, store.Bolt(st), nil, sb, fleet, log)
}

// serveAccount runs one account's runner and stack over st until ctx ends
// (or, with a lease, until the lease is lost).
func serveAccount(ctx context.Context, cfg *config.Config, name string, i int, st store.Backend, le runner.Lease,
	sb *sandbox.Server, fleet *fleetOps, log *zap.Logger) error {
	opts := runner.Options{Logger: log, Account: name, Lease: le}
	if sb != nil {
		phone := cfg.Account.Phone.Reveal()
		switch {
		case phone != "":
		case name == runner.DefaultAccount:
			phone = "9996620000" // embeddedSandbox's owner
		default:
			// Distinct owners, so no two accounts share a session.
			phone = fmt.Sprintf("99966%05d", i+1)
		}
		if _, ok := sb.UserByPhone(phone); !ok {
			if _, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: phone, FirstName: "Owner " + name}); err != nil {
				return fmt.Errorf("create sandbox owner: %w", err)
			}
		}
		opts.Sandbox = sb
		opts.Login = runner.SandboxLogin(sb, phone, cfg.Account.Password.Reveal())
	}
	stack, err := runner.NewStack(cfg, st, log)
	if err != nil {
		return err
	}
	stack.PauseCheck = fleet.pauseCheck(name)
	opts.Services = []runner.Service{stack}
	go pauseOnSignals(ctx, stack, log)
	done := fleet.serve(name, &opts, st, stack)
	err = runner.New(cfg, st, opts).Run(ctx)
	done(err)
	return err
}

// runOnRedis runs the config's accounts with storage in Redis. Every
// account runs under its lease: of all the runner processes sharing the
// Redis, only the holder connects it; a runner that dies or stalls past
// storage.lease_ttl loses its accounts to the others, which resume them
// from the shared journal. sb, when set, is the server the accounts log in
// to (tests); the embedded sandbox cannot be shared between processes.
func runOnRedis(ctx context.Context, cfg *config.Config, path string, sb *sandbox.Server, log *zap.Logger) error {
	rdb, err := redisClient(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if sb == nil && cfg.Server.Type == config.ServerSandbox {
		if sb, _, err = embeddedSandbox(ctx, cfg, log); err != nil {
			return err
		}
		defer sb.Close()
	}
	locker, err := lease.NewLocker(rdb, lease.Options{TTL: cfg.Storage.LeaseTTL})
	if err != nil {
		return err
	}
	names := cfg.AccountNames()
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	fleet, finish, err := startFleetOps(ctx, cfg, runnerStorageDir(cfg), path, nil, locker, log)
	if err != nil {
		return err
	}
	defer func() { finish(nil) }()
	mgr, err := lease.NewManager(locker, lease.ManagerOptions{
		Accounts: names,
		Log:      log.Named("lease"),
		Start: func(ctx context.Context, le *lease.Lease) error {
			name := le.Account()
			// The config as last reloaded.
			acfg, err := fleet.config().ForAccount(name)
			if err != nil {
				return err
			}
			alog := log.With(zap.String("account", name))
			st, err := redisstore.Open(ctx, rdb, name, le, redisstore.Options{})
			if err != nil {
				return fmt.Errorf("open storage of account %s: %w", name, err)
			}
			defer st.Close()
			alog.Info("Account lease acquired", zap.Uint64("token", le.Token()), zap.String("storage", st.Describe()))
			return serveAccount(ctx, acfg, name, index[name], st, le, sb, fleet, alog)
		},
		// The manager logs why each account stopped: a handover to a
		// runner that joined (Info), a lost lease or an error (Warn).
	})
	if err != nil {
		return err
	}
	log.Info("Running accounts under leases", zap.Strings("accounts", names), zap.String("holder", locker.Holder()),
		zap.Duration("lease_ttl", locker.TTL()))
	if err := mgr.Run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("run: %w", err)
	}
	log.Info("Stopped")
	return nil
}
