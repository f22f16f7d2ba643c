package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/logging"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/sandbox"
)

// loadConfig resolves and loads the config named by --config,
// $TGRUNNER_CONFIG or ./tgrunner.yaml.
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	flagPath, _ := cmd.Flags().GetString("config")
	path := config.Resolve(flagPath, os.LookupEnv)
	cfg, err := config.Load(cmd.Context(), path, config.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// newLogger builds the redacting logger for a loaded config.
func newLogger(cfg *config.Config) (*logging.Logger, error) {
	lg, err := logging.New(cfg.Log, logging.Options{Secrets: cfg.SecretValues()})
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return lg, nil
}

// embeddedSandbox starts the in-process sandbox for server: sandbox, seeds
// it, and makes sure the configured account exists there. It returns the
// server and the phone the runner logs in with.
func embeddedSandbox(ctx context.Context, cfg *config.Config, log *zap.Logger) (*sandbox.Server, string, error) {
	sb, err := sandbox.Start(ctx, sandbox.Options{Dir: "", Logger: log.Named("sandbox")})
	if err != nil {
		return nil, "", fmt.Errorf("start embedded sandbox: %w", err)
	}
	if cfg.Server.SeedFile != "" {
		seed, err := sandbox.LoadSeed(cfg.Server.SeedFile)
		if err != nil {
			_ = sb.Close()
			return nil, "", err
		}
		if err := sb.ApplySeed(ctx, seed); err != nil {
			_ = sb.Close()
			return nil, "", fmt.Errorf("seed sandbox from %s: %w", cfg.Server.SeedFile, err)
		}
	}
	phone := cfg.Account.Phone.Reveal()
	if phone == "" {
		phone = "9996620000"
	}
	if _, ok := sb.UserByPhone(phone); !ok {
		if _, err := sb.CreateUser(ctx, sandbox.UserSpec{Phone: phone, FirstName: "Owner", Username: "owner"}); err != nil {
			_ = sb.Close()
			return nil, "", fmt.Errorf("create sandbox owner %s: %w", phone, err)
		}
	}
	return sb, phone, nil
}

// openStore opens the account's storage directory.
func openStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.Storage.Dir, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	return st, nil
}

// accountConfigName returns the name and config of the account named by
// --account. With a single account the flag may be left out.
func accountConfigName(cfg *config.Config, name string) (string, *config.Config, error) {
	names := cfg.AccountNames()
	if name == "" {
		if len(names) > 1 {
			return "", nil, usageError{fmt.Errorf("the config has %d accounts (%s): choose one with --account NAME",
				len(names), strings.Join(names, ", "))}
		}
		name = names[0]
	}
	acfg, err := cfg.ForAccount(name)
	if err != nil {
		return "", nil, usageError{err}
	}
	return name, acfg, nil
}

// openBackend opens the account's storage for a one-off command (login,
// logout): the bbolt directory, or Redis under the account's lease, which
// it holds until close so that no runner acts for the account meanwhile.
func openBackend(ctx context.Context, cfg *config.Config, account string) (store.Backend, func(), error) {
	if !cfg.UsesRedis() {
		st, err := openStore(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return store.Bolt(st), func() { _ = st.Close() }, nil
	}
	rdb, err := redisClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	locker, err := lease.NewLocker(rdb, lease.Options{TTL: cfg.Storage.LeaseTTL, Holder: "login@" + host + ":" + strconv.Itoa(os.Getpid())})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	le, err := locker.Acquire(ctx, account)
	var held *lease.HeldError
	if errors.As(err, &held) {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("account %s is held by a running runner (%s): stop it first", account, held.Holder)
	}
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	st, err := redisstore.Open(ctx, rdb, account, le, redisstore.Options{})
	release := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = le.Release(rctx)
		cancel()
		_ = rdb.Close()
	}
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("open storage: %w", err)
	}
	return st, func() { _ = st.Close(); release() }, nil
}

// redisClient connects to storage.url.
func redisClient(cfg *config.Config) (*redis.Client, error) {
	opts, err := redisstore.ParseURL(cfg.Storage.URL.Reveal())
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

var _ = runner.ErrNotLoggedIn
