package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
)

func newStorageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Manage the storage backends (bbolt directory, Redis)",
	}
	cmd.AddCommand(newStorageMigrateCmd())
	return cmd
}

func newStorageMigrateCmd() *cobra.Command {
	var from, to, account string
	cmd := &cobra.Command{
		Use:   "migrate --from DIR|URL --to DIR|URL --account NAME",
		Short: "Copy one account's storage between a bbolt directory and Redis",
		Long: `migrate copies everything an account keeps (session, updates state, access
hashes, peers, plugin data, audit log, outbox, and the updates journal with
its dedup index and consumer positions) from a bbolt storage directory into
Redis, or back. Consumers resume exactly where they were.

Stop the runner first. On the Redis side migrate takes the account's lease,
so it refuses while a runner holds the account; the bbolt side is locked
the same way. The target must be empty. The source is left unchanged:
delete it yourself once the runner works from the target.

URLs: redis://user:password@host:6379/0, rediss://... for TLS (options:
tls_ca_file, tls_cert_file, tls_key_file, tls_server_name, password_file).`,
		Example: `  runner storage migrate --from /var/lib/tgrunner --to redis://tgr@redis:6379/0?password_file=/run/secrets/redis --account main
  runner storage migrate --from rediss://redis.internal:6380/0 --to ./restored --account main`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stats, err := migrateStorage(cmd.Context(), from, to, account)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "migrated account %s from %s to %s: %s\n", account, redactSpec(from), redactSpec(to), stats)
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "source: a storage directory or a redis:// URL")
	cmd.Flags().StringVar(&to, "to", "", "target: a storage directory or a redis:// URL (must be empty)")
	cmd.Flags().StringVar(&account, "account", "", "account name (the key namespace in Redis)")
	return cmd
}

func redactSpec(s string) string {
	if redisstore.IsURL(s) {
		return redisstore.Redact(s)
	}
	return s
}

type storageSide struct {
	exp   store.Exporter
	imp   store.Importer
	close func()
}

// openSide opens a storage directory or a Redis URL for account, holding
// the directory lock or the account's lease.
func openSide(ctx context.Context, spec, account, role string) (*storageSide, error) {
	if spec == "" {
		return nil, fmt.Errorf("--%s is required: a storage directory or a redis:// URL", role)
	}
	if !redisstore.IsURL(spec) {
		if role == "from" {
			if _, err := os.Stat(spec); err != nil {
				return nil, fmt.Errorf("--from %s: %w", spec, err)
			}
		}
		st, err := store.Open(ctx, spec, store.Options{Journal: store.JournalOptions{CompactInterval: -1}})
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", role, err)
		}
		return &storageSide{exp: st, imp: st, close: func() { _ = st.Close() }}, nil
	}
	if account == "" {
		return nil, errors.New("--account is required with a Redis side: it names the account's key namespace")
	}
	if err := lease.ValidAccount(account); err != nil {
		return nil, fmt.Errorf("--account: %w", err)
	}
	opts, err := redisstore.ParseURL(spec)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", role, err)
	}
	rdb := redis.NewClient(opts)
	host, _ := os.Hostname()
	locker, err := lease.NewLocker(rdb, lease.Options{Holder: "storage-migrate@" + host + ":" + strconv.Itoa(os.Getpid())})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	le, err := locker.Acquire(ctx, account)
	var held *lease.HeldError
	if errors.As(err, &held) {
		_ = rdb.Close()
		return nil, fmt.Errorf("--%s: account %s is held by a running runner (%s): stop it first", role, account, held.Holder)
	}
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("--%s: %w", role, err)
	}
	st, err := redisstore.Open(ctx, rdb, account, le, redisstore.Options{Journal: store.JournalOptions{CompactInterval: -1}})
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = le.Release(rctx)
		cancel()
		_ = rdb.Close()
		return nil, fmt.Errorf("--%s: %w", role, err)
	}
	return &storageSide{exp: st, imp: st, close: func() {
		_ = st.Close()
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = le.Release(rctx)
		cancel()
		_ = rdb.Close()
	}}, nil
}

func migrateStorage(ctx context.Context, from, to, account string) (redisstore.MigrateStats, error) {
	if from != "" && from == to {
		return redisstore.MigrateStats{}, errors.New("--from and --to name the same storage")
	}
	src, err := openSide(ctx, from, account, "from")
	if err != nil {
		return redisstore.MigrateStats{}, err
	}
	defer src.close()
	dst, err := openSide(ctx, to, account, "to")
	if err != nil {
		return redisstore.MigrateStats{}, err
	}
	defer dst.close()
	stats, err := redisstore.Migrate(ctx, src.exp, dst.imp)
	if errors.Is(err, redisstore.ErrNotEmpty) {
		return stats, fmt.Errorf("--to %s already holds data for this account: migrate only into an empty storage", redactSpec(to))
	}
	return stats, err
}
