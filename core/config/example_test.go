package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestExampleConfig loads configs/example.yaml, the file users start from,
// with its environment variables and secret file provided.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../../configs/example.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "secrets"), 0o700))
	writeFile(t, filepath.Join(dir, "secrets", "2fa_password"), "pa55 word\n", 0o600)
	path := writeFile(t, filepath.Join(dir, "tgrunner.yaml"), string(data), 0o600)

	env := MapEnv(map[string]string{
		"TG_API_ID":   "123456",
		"TG_API_HASH": testEnv["TG_API_HASH"],
		"TG_PHONE":    "+15551234567",
	})
	c, err := Load(t.Context(), path, LoadOptions{LookupEnv: env})
	require.NoError(t, err)
	require.Empty(t, c.Warnings)

	require.Equal(t, 123456, c.Account.APIID)
	require.Equal(t, "pa55 word", c.Account.Password.Reveal())
	require.Equal(t, "tgrunner on a VPS", c.Account.Device.Model)
	require.Equal(t, ServerProduction, c.Server.Type)
	require.Equal(t, filepath.Join(dir, "data"), c.Storage.Dir)

	// The example spells out the defaults: it must agree with Default().
	def := Default()
	require.Equal(t, def.Log, c.Log)
	require.Equal(t, def.Limits, c.Limits)

	require.Len(t, c.Plugins, 2)
	require.Equal(t, "ping", c.Plugins[0].Builtin)
	echo := c.Plugins[1]
	require.Equal(t, filepath.Join(dir, "plugins", "echo"), echo.Path)
	require.True(t, echo.Disabled)
	require.True(t, echo.Filter.Pattern.MatchString(".echo hello"))
	require.Equal(t, RateLimit{Rate{10, time.Minute}, 3}, echo.Limits.Send)
	raw, err := echo.RawConfig()
	require.NoError(t, err)
	require.Contains(t, string(raw), `reply_prefix: "echo: "`)

	// Missing environment: each variable is named.
	_, err = Load(t.Context(), path, LoadOptions{LookupEnv: MapEnv(nil)})
	require.ErrorContains(t, err, "account.api_id: environment variable TG_API_ID is not set")
	require.ErrorContains(t, err, "account.api_hash: environment variable TG_API_HASH is not set")
	require.ErrorContains(t, err, "account.phone: environment variable TG_PHONE is not set")
}
