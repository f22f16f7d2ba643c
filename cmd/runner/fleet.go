package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
)

// fleetOps serves the ops endpoints (metrics labelled by account, health,
// status page, control socket) of a runner with several accounts or with
// accounts under leases, and reloads every account it runs on SIGHUP or
// `runner reload`.
type fleetOps struct {
	ops     *ops.Ops
	pauses  *lease.Pauses // under leases: the fleet's pause switches
	path    string
	prepare func(*config.Config)
	log     *zap.Logger

	mu     sync.Mutex
	cfg    *config.Config
	stacks map[string]*runner.Stack
}

// startFleetOps starts the ops servers for cfg's accounts, with the default
// control socket in dir. locker is set when the accounts run under leases;
// pause and resume then go through the fleet's pause switches.
// prepare adjusts a reloaded config the way the caller adjusted cfg (the
// sandbox's storage directory). finish stops the servers; call it once the
// accounts have stopped.
func startFleetOps(ctx context.Context, cfg *config.Config, dir, path string, prepare func(*config.Config),
	locker *lease.Locker, log *zap.Logger) (*fleetOps, func(error), error) {
	f := &fleetOps{path: path, prepare: prepare, log: log, cfg: cfg, stacks: map[string]*runner.Stack{}}
	opts := ops.Options{Config: cfg, Dir: dir, Reloader: f, Logger: log.Named("ops")}
	if locker != nil {
		f.pauses = lease.NewPauses(locker.Client(), locker.Prefix())
		opts.Leases, opts.Holder, opts.Pauses = locker, locker.Holder(), f.pauses
		opts.Relay = lease.NewRelay(locker.Client(), locker.Prefix(), locker.Holder())
	}
	o, err := ops.New(opts)
	if err != nil {
		return nil, nil, err
	}
	if err := o.Start(ctx); err != nil {
		return nil, nil, err
	}
	f.ops = o
	go reloadOnSIGHUP(ctx, f.Reload, log)
	var once sync.Once
	return f, func(error) {
		once.Do(func() {
			o.Stopping()
			if err := o.Close(); err != nil {
				log.Warn("Stop the ops servers", zap.Error(err))
			}
		})
	}, nil
}

// config is the config as last reloaded: an account that starts later (a
// lease acquired) runs with it.
func (f *fleetOps) config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

// pauseCheck is the guard's view of account name's fleet pause switch, or
// nil without leases.
func (f *fleetOps) pauseCheck(name string) func(ctx context.Context) (string, bool, error) {
	if f == nil || f.pauses == nil {
		return nil
	}
	return func(ctx context.Context) (string, bool, error) {
		st, on, err := f.pauses.Get(ctx, name)
		return st.Reason, on, err
	}
}

// serve records that account name runs here over st and stack, and hooks
// ro for ops. Call the returned func with Run's result.
func (f *fleetOps) serve(name string, ro *runner.Options, st store.Backend, stack *runner.Stack) func(error) {
	if f == nil {
		return func(error) {}
	}
	acc := f.ops.Account(name)
	if acc == nil {
		return func(error) {}
	}
	acc.Serve(ro, st, stack)
	f.mu.Lock()
	f.stacks[name] = stack
	f.mu.Unlock()
	return func(err error) {
		f.mu.Lock()
		if f.stacks[name] == stack {
			delete(f.stacks, name)
		}
		f.mu.Unlock()
		acc.Stopped(err)
	}
}

// Reload re-reads the config and applies it to every account running
// here, as the one-account reload does for its account. Adding or
// removing accounts, or moving the storage, needs a restart. Accounts that
// start later run with the new config.
func (f *fleetOps) Reload(ctx context.Context) error {
	f.ops.Reloading()
	defer f.ops.ReloadDone()
	err := f.reload(ctx)
	if err != nil {
		f.log.Error("Reload", zap.Error(err))
	}
	return err
}

func (f *fleetOps) reload(ctx context.Context) error {
	cfg, err := config.Load(ctx, f.path, config.LoadOptions{})
	if err != nil {
		return fmt.Errorf("the config does not load: %w", err)
	}
	if f.prepare != nil {
		f.prepare(cfg)
	}
	f.mu.Lock()
	old := f.cfg
	running := make([]string, 0, len(f.stacks))
	for name := range f.stacks {
		running = append(running, name)
	}
	stacks := f.stacks
	f.mu.Unlock()
	sort.Strings(running)
	if !slices.Equal(cfg.AccountNames(), old.AccountNames()) {
		return fmt.Errorf("accounts: %s → %s: %w", strings.Join(old.AccountNames(), ", "), strings.Join(cfg.AccountNames(), ", "),
			runner.ErrRestartNeeded)
	}
	if cfg.Storage.URL.Reveal() != old.Storage.URL.Reveal() || cfg.Storage.LeaseTTL != old.Storage.LeaseTTL {
		return fmt.Errorf("storage.url or storage.lease_ttl changed: %w", runner.ErrRestartNeeded)
	}
	var errs []error
	var done []string
	for _, name := range running {
		f.mu.Lock()
		stack := stacks[name]
		f.mu.Unlock()
		if stack == nil {
			continue // stopped meanwhile
		}
		acfg, err := cfg.ForAccount(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep, err := stack.Reload(ctx, acfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("account %s: %w", name, err))
			continue
		}
		done = append(done, name)
		f.log.Info("Reloaded", zap.String("account", name), zap.String("config", f.path), zap.Strings("added", rep.Added),
			zap.Strings("removed", rep.Removed), zap.Strings("restarted", rep.Restarted), zap.Bool("limits", rep.LimitsChanged))
	}
	if err := errors.Join(errs...); err != nil {
		if len(done) > 0 {
			return fmt.Errorf("%w (accounts %s took the new config)", err, strings.Join(done, ", "))
		}
		return err
	}
	f.mu.Lock()
	f.cfg = cfg
	f.mu.Unlock()
	return nil
}
