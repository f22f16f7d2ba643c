package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const minimal = `
account:
  api_id: 123456
  api_hash: ${TG_API_HASH}
`

func parse(t *testing.T, dir, yml string) (*Config, error) {
	t.Helper()
	return Parse("tgrunner.yaml", []byte(yml), LoadOptions{LookupEnv: MapEnv(testEnv), BaseDir: dir})
}

func mustParse(t *testing.T, dir, yml string) *Config {
	t.Helper()
	c, err := parse(t, dir, yml)
	require.NoError(t, err)
	return c
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode)) // umask must not decide the test
	return path
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	c := mustParse(t, dir, minimal)

	require.Equal(t, 123456, c.Account.APIID)
	require.Equal(t, testEnv["TG_API_HASH"], c.Account.APIHash.Reveal())
	require.Equal(t, SourceEnv, c.Account.APIHash.Source())
	require.Equal(t, "env TG_API_HASH", c.Account.APIHash.Describe())
	require.False(t, c.Account.Phone.IsSet())
	require.False(t, c.Account.Password.IsSet())
	require.Equal(t, ServerProduction, c.Server.Type)
	require.Equal(t, filepath.Join(dir, "data"), c.Storage.Dir)
	require.Equal(t, Log{Level: "info", Format: "text", Redact: Redact{PhoneNumbers: "plus", MinDigits: 9}}, c.Log)

	l := c.Limits
	require.False(t, l.DryRun)
	require.True(t, l.PersistWaiting)
	require.Equal(t, RateLimit{Rate{1, time.Second}, 3}, l.Send.PerChat)
	require.Equal(t, RateLimit{Rate{20, time.Minute}, 3}, l.Send.PerGroup)
	require.Equal(t, RateLimit{Rate{30, time.Minute}, 5}, l.Send.Global)
	require.Equal(t, RateLimit{Rate{20, time.Minute}, 5}, l.Send.Plugin)
	require.Equal(t, FirstContacts{PerDay: 5, PeerFloodPause: 24 * time.Hour}, l.FirstContacts)
	require.Equal(t, 5, l.DuplicateText.MaxChats)
	require.Equal(t, time.Hour, l.DuplicateText.Window)
	require.Equal(t, DailyLimits{Joins: 5, Invites: 5, ContactImports: 5}, l.Daily)
	require.Nil(t, l.QuietHours)
	require.Equal(t, FloodWait{MaxWait: time.Minute, MaxRetries: 5, OnExceed: "retry_later"}, l.FloodWait)
	require.Equal(t, RPCLimit{Interval: 200 * time.Millisecond, Burst: 5}, l.RPC)
	require.Empty(t, c.Plugins)
	require.Empty(t, c.Warnings)
	require.NoError(t, c.Validate())
}

func TestPluginDefaults(t *testing.T) {
	c := mustParse(t, t.TempDir(), minimal+`
limits:
  send:
    plugin: {rate: 10/min, burst: 2}
plugins:
  - name: ping
    builtin: ping
`)
	require.Len(t, c.Plugins, 1)
	p := c.Plugins[0]
	require.Equal(t, "ping", p.Builtin)
	require.Empty(t, p.Permissions.Actions, "least privilege: nothing granted by default")
	require.Empty(t, p.Permissions.Chats)
	require.Equal(t, PluginTimeouts{Start: 10 * time.Second, Event: 30 * time.Second}, p.Timeouts)
	require.Equal(t, PluginQueue{Size: 1024, Overflow: "block"}, p.Queue)
	require.Equal(t, PluginRestart{BackoffMin: time.Second, BackoffMax: 2 * time.Minute, MaxCrashes: 5, Window: 10 * time.Minute}, p.Restart)
	require.Equal(t, RateLimit{Rate{10, time.Minute}, 2}, p.Limits.Send, "inherits limits.send.plugin")
	require.Nil(t, p.Limits.JoinsPerDay)
	require.Equal(t, "any", p.Filter.Direction)
	require.False(t, p.Disabled)
}

// executable writes a fake plugin binary and returns its path and sha256.
func executable(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	content := "#!/bin/sh\necho " + name + "\n"
	path := writeFile(t, filepath.Join(dir, name), content, 0o755)
	sum := sha256.Sum256([]byte(content))
	return path, hex.EncodeToString(sum[:])
}

func pemKey(t *testing.T, pkix bool) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	if pkix {
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}))
}

func TestGoodConfigs(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the YAML
		check func(t *testing.T, c *Config, dir string)
	}{
		{
			name: "secret files are read and trimmed",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "hash"), "\n  0123456789ABCDEF0123456789abcdef \n", 0o600)
				writeFile(t, filepath.Join(dir, "pw"), "two words\n", 0o400)
				writeFile(t, filepath.Join(dir, "phone"), "+44 20 7946 0958\n", 0o600)
				return `
account:
  api_id: 123456
  api_hash_file: hash
  password_file: ./pw
  phone_file: ` + filepath.Join(dir, "phone") + "\n"
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, "0123456789ABCDEF0123456789abcdef", c.Account.APIHash.Reveal())
				require.Equal(t, "two words", c.Account.Password.Reveal())
				require.Equal(t, "+44 20 7946 0958", c.Account.Phone.Reveal())
				require.Equal(t, "file "+filepath.Join(dir, "hash"), c.Account.APIHash.Describe())
				require.Equal(t, SourceFile, c.Account.Password.Source())
			},
		},
		{
			name: "env secrets, api_id from env, literal phone",
			setup: func(t *testing.T, dir string) string {
				return `
account:
  api_id: ${TG_API_ID}
  api_hash: ${TG_API_HASH}
  password: ${TG_PASSWORD}
  phone: +15551234567
  device: {model: VPS, system_version: Debian 13, app_version: "1.0", lang_code: en, system_lang_code: en-US}
`
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, 987654, c.Account.APIID)
				require.Equal(t, testEnv["TG_PASSWORD"], c.Account.Password.Reveal())
				require.Equal(t, "+15551234567", c.Account.Phone.Reveal(), "YAML must not turn the phone into a number")
				require.Equal(t, SourceLiteral, c.Account.Phone.Source())
				require.Equal(t, Device{"VPS", "Debian 13", "1.0", "en", "en-US"}, c.Account.Device)
				require.ElementsMatch(t, []string{testEnv["TG_API_HASH"], testEnv["TG_PASSWORD"], "+15551234567", "15551234567", "+15551234567"}, c.SecretValues())
			},
		},
		{
			name: "literal secrets allowed on request, with warnings",
			setup: func(t *testing.T, dir string) string {
				return `
account:
  api_id: 123456
  api_hash: 0123456789abcdef0123456789abcdef
  password: hunter2hunter2
  allow_literal_secrets: true
`
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, SourceLiteral, c.Account.APIHash.Source())
				require.Len(t, c.Warnings, 2)
				require.Equal(t, "account.api_hash", c.Warnings[0].Path)
				require.Equal(t, 4, c.Warnings[0].Line)
				require.NotContains(t, c.Warnings[1].String(), "hunter2")
			},
		},
		{
			name: "published api_id allowed explicitly",
			setup: func(t *testing.T, dir string) string {
				return "account: {api_id: 17349, api_hash: '${TG_API_HASH}', allow_published_api_id: true}\n"
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Len(t, c.Warnings, 1)
				require.Contains(t, c.Warnings[0].Msg, "API_ID_PUBLISHED_FLOOD")
			},
		},
		{
			name: "published api_id is fine against the test servers",
			setup: func(t *testing.T, dir string) string {
				return "account: {api_id: 17349, api_hash: '${TG_API_HASH}'}\nserver: test\n"
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, ServerTest, c.Server.Type)
				require.Equal(t, 2, c.Server.DC)
				require.Empty(t, c.Warnings)
			},
		},
		{
			name:  "sandbox shorthand needs no account",
			setup: func(t *testing.T, dir string) string { return "server: sandbox\n" },
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, ServerSandbox, c.Server.Type)
				require.Equal(t, 17349, c.Account.APIID)
				require.Equal(t, SourceDefault, c.Account.APIHash.Source())
				require.Empty(t, c.Warnings)
			},
		},
		{
			name: "sandbox mapping with a seed file",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "seed.yaml"), "users: []\n", 0o644)
				return "server: {type: sandbox, seed_file: seed.yaml}\n"
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, filepath.Join(dir, "seed.yaml"), c.Server.SeedFile)
			},
		},
		{
			name: "custom server with PKCS#1 and PKIX keys",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "server.pem"), pemKey(t, false)+pemKey(t, true), 0o644)
				return minimal + `
server:
  type: custom
  address: 127.0.0.1:8443
  dc: 2
  public_key_file: server.pem
  obfuscated: true
`
			},
			check: func(t *testing.T, c *Config, dir string) {
				s := c.Server
				require.Equal(t, ServerCustom, s.Type)
				require.Equal(t, "127.0.0.1:8443", s.Address)
				require.Equal(t, 2, s.DC)
				require.True(t, s.Obfuscated)
				require.Len(t, s.PublicKeys, 2)
				require.Equal(t, filepath.Join(dir, "server.pem"), s.PublicKeyFile)
			},
		},
		{
			name: "paths expand env and resolve against the config directory",
			setup: func(t *testing.T, dir string) string {
				return minimal + `
storage:
  dir: ${STATE_DIR}/tg
log:
  file: logs/runner.log
  level: debug
  format: json
  redact: {phone_numbers: digits, min_digits: 7}
`
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Equal(t, "/var/lib/tgrunner/tg", c.Storage.Dir)
				require.Equal(t, filepath.Join(dir, "logs/runner.log"), c.Log.File)
				require.Equal(t, Log{Level: "debug", Format: "json", File: c.Log.File, Redact: Redact{"digits", 7}}, c.Log)
			},
		},
		{
			name: "limits: shorthand rates, mappings, quiet hours across midnight",
			setup: func(t *testing.T, dir string) string {
				return minimal + `
limits:
  dry_run: true
  persist_waiting: false
  send:
    per_chat: 2/s
    per_group: {rate: 10/min, burst: 2}
    global: {burst: 9}
    plugin: 3/10s
  first_contacts: {per_day: 0, peer_flood_pause: 48h}
  duplicate_text: {max_chats: 3, window: 30m, allow: [newsletter]}
  daily: {joins: 1, invites: 0, contact_imports: 2}
  quiet_hours: {from: "23:30", to: "7:00", time_zone: Europe/Berlin}
  flood_wait: {max_wait: 5m, max_retries: 2, on_exceed: fail}
  rpc: {interval: 50ms, burst: 10}
`
			},
			check: func(t *testing.T, c *Config, dir string) {
				l := c.Limits
				require.True(t, l.DryRun)
				require.False(t, l.PersistWaiting)
				require.Equal(t, RateLimit{Rate{2, time.Second}, 3}, l.Send.PerChat, "shorthand keeps the default burst")
				require.Equal(t, RateLimit{Rate{10, time.Minute}, 2}, l.Send.PerGroup)
				require.Equal(t, RateLimit{Rate{30, time.Minute}, 9}, l.Send.Global)
				require.Equal(t, Rate{3, 10 * time.Second}, l.Send.Plugin.Rate)
				require.Equal(t, FirstContacts{0, 48 * time.Hour}, l.FirstContacts)
				require.Equal(t, DuplicateText{3, 30 * time.Minute, []string{"newsletter"}}, l.DuplicateText)
				require.Equal(t, DailyLimits{1, 0, 2}, l.Daily)
				require.NotNil(t, l.QuietHours)
				require.Equal(t, 23*60+30, l.QuietHours.From)
				require.Equal(t, 7*60, l.QuietHours.To)
				require.Equal(t, "Europe/Berlin", l.QuietHours.Location.String())
				require.Equal(t, FloodWait{5 * time.Minute, 2, "fail"}, l.FloodWait)
				require.Equal(t, RPCLimit{50 * time.Millisecond, 10}, l.RPC)
			},
		},
		{
			name: "plugins: external pinned, builtin, disabled, free-form config",
			setup: func(t *testing.T, dir string) string {
				_, sum := executable(t, dir, "echo-plugin")
				return minimal + `
plugins:
  - name: echo
    path: ./echo-plugin
    sha256: ` + strings.ToUpper(sum) + `
    args: [--prefix, "."]
    config:
      greeting: hi   # kept as written
      nested: {list: [1, 2]}
    permissions:
      actions: [send, react, read_history]
      chats: [private, "@Durov_Fan", -1001234567890, 42, self]
    events: [new_message, edited_message]
    filter: {chats: [group], direction: incoming, pattern: "^\\.echo"}
    env: [LANG, TZ]
    timeouts: {start: 5s, event: 2s}
    queue: {size: 64, overflow: drop_oldest}
    restart: {backoff_min: 500ms, backoff_max: 1m, max_crashes: 3, window: 5m}
    limits: {send: 5/min, joins_per_day: 0, first_contacts_per_day: 1}
  - name: ping
    builtin: ping
  - name: old
    path: /nonexistent/old-plugin
    sha256: ` + strings.Repeat("ab", 32) + `
    disabled: true
`
			},
			check: func(t *testing.T, c *Config, dir string) {
				require.Len(t, c.Plugins, 3)
				p := c.Plugins[0]
				require.Equal(t, filepath.Join(dir, "echo-plugin"), p.Path)
				require.Equal(t, strings.ToLower(p.SHA256), p.SHA256)
				require.Equal(t, []string{"--prefix", "."}, p.Args)
				raw, err := p.RawConfig()
				require.NoError(t, err)
				require.Contains(t, string(raw), "greeting: hi")
				require.Contains(t, string(raw), "# kept as written")
				require.True(t, p.Permissions.Can("react"))
				require.False(t, p.Permissions.Can("delete"))
				require.Equal(t, []ChatRef{{Kind: "private"}, {Username: "durov_fan"}, {ID: -1001234567890}, {ID: 42}, {Kind: "self"}}, p.Permissions.Chats)
				require.Equal(t, "@durov_fan", p.Permissions.Chats[1].String())
				require.Equal(t, []string{"new_message", "edited_message"}, p.Events)
				require.Equal(t, "incoming", p.Filter.Direction)
				require.True(t, p.Filter.Pattern.MatchString(".echo hi"))
				require.Equal(t, []string{"LANG", "TZ"}, p.Env)
				require.Equal(t, PluginQueue{64, "drop_oldest"}, p.Queue)
				require.Equal(t, 3, p.Restart.MaxCrashes)
				require.Equal(t, RateLimit{Rate{5, time.Minute}, 5}, p.Limits.Send)
				require.NotNil(t, p.Limits.JoinsPerDay)
				require.Equal(t, 0, *p.Limits.JoinsPerDay)
				require.Nil(t, p.Limits.InvitesPerDay)
				require.True(t, c.Plugins[2].Disabled)
			},
		},
	}
	env := map[string]string{"TG_API_ID": "987654", "STATE_DIR": "/var/lib/tgrunner"}
	for k, v := range testEnv {
		env[k] = v
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			yml := tt.setup(t, dir)
			c, err := Parse("tgrunner.yaml", []byte(yml), LoadOptions{LookupEnv: MapEnv(env), BaseDir: dir})
			require.NoError(t, err)
			tt.check(t, c, dir)
			warnings := c.Warnings
			require.NoError(t, c.Validate(), "a loaded config stays valid")
			require.Equal(t, warnings, c.Warnings, "validating again does not pile up warnings")
		})
	}
}

// Cases that need real files with particular permissions or contents, which
// git cannot keep in testdata.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string
		want  string
	}{
		{
			name: "world-readable secret file",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "hash"), "0123456789abcdef0123456789abcdef", 0o644)
				return "account: {api_id: 1234, api_hash_file: hash}\n"
			},
			want: "tgrunner.yaml:1:40: account.api_hash_file: $DIR/hash: readable by group or others (mode 0644); run: chmod 600 $DIR/hash",
		},
		{
			name: "empty secret file",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "pw"), " \n", 0o600)
				return minimal + "  password_file: pw\n"
			},
			want: "tgrunner.yaml:5:18: account.password_file: $DIR/pw: file is empty",
		},
		{
			name: "secret file is a directory",
			setup: func(t *testing.T, dir string) string {
				return minimal + "  password_file: .\n"
			},
			want: "tgrunner.yaml:5:18: account.password_file: $DIR: is a directory, expected a file",
		},
		{
			name: "plugin binary changed since pinning",
			setup: func(t *testing.T, dir string) string {
				executable(t, dir, "echo")
				return minimal + "plugins:\n  - name: echo\n    path: echo\n    sha256: " + strings.Repeat("0", 64) + "\n"
			},
			want: "tgrunner.yaml:8:5: plugins[0].sha256: does not match $DIR/echo (its sha256 is 7f0a6a0a9b0b1c0e7b4cfa12a7bd1d7f4a4f5a2d0fd0c38e39d0f1d0e1b5ad1d); if you trust the new binary, run `runner plugins pin echo`",
		},
		{
			name: "plugin binary not executable",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "echo"), "x", 0o644)
				return minimal + "plugins:\n  - name: echo\n    path: echo\n    sha256: " + strings.Repeat("0", 64) + "\n"
			},
			want: "tgrunner.yaml:7:5: plugins[0].path: $DIR/echo: not executable; run: chmod +x $DIR/echo",
		},
		{
			name: "plugin binary missing",
			setup: func(t *testing.T, dir string) string {
				return minimal + "plugins:\n  - name: echo\n    path: echo\n    sha256: " + strings.Repeat("0", 64) + "\n"
			},
			want: "tgrunner.yaml:7:5: plugins[0].path: $DIR/echo: no such file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := parse(t, dir, tt.setup(t, dir))
			require.Error(t, err)
			got := strings.ReplaceAll(err.Error(), dir, "$DIR")
			if strings.Contains(tt.want, "its sha256 is") {
				// The hash depends on the script text; compare around it.
				_, sum := executable(t, t.TempDir(), "echo")
				tt.want = strings.Replace(tt.want, "7f0a6a0a9b0b1c0e7b4cfa12a7bd1d7f4a4f5a2d0fd0c38e39d0f1d0e1b5ad1d", sum, 1)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestPublishedAPIIDSentinel(t *testing.T) {
	for _, id := range []int{4, 5, 6, 8, 9, 2040, 2496, 2834, 10840, 17349, 21724, 611335} {
		_, err := parse(t, t.TempDir(), "account: {api_id: "+formatInt(int64(id))+", api_hash: '${TG_API_HASH}'}\n")
		require.ErrorIs(t, err, ErrPublishedAPIID, "api_id %d", id)
		require.Contains(t, err.Error(), "my.telegram.org")
	}
	_, err := parse(t, t.TempDir(), minimal)
	require.NoError(t, err)
	_, err = parse(t, t.TempDir(), "account: {api_id: abc}\n")
	require.NotErrorIs(t, err, ErrPublishedAPIID)
}

func TestResolve(t *testing.T) {
	env := MapEnv(map[string]string{EnvConfigPath: "/etc/tgrunner/tgrunner.yaml"})
	none := MapEnv(nil)
	empty := MapEnv(map[string]string{EnvConfigPath: ""})
	require.Equal(t, "my.yaml", Resolve("my.yaml", env))
	require.Equal(t, "/etc/tgrunner/tgrunner.yaml", Resolve("", env))
	require.Equal(t, "./tgrunner.yaml", Resolve("", none))
	require.Equal(t, "./tgrunner.yaml", Resolve("", empty))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "tgrunner.yaml"), minimal+"storage: {dir: state}\n", 0o600)
	c, err := Load(t.Context(), path, testOptions())
	require.NoError(t, err)
	require.Equal(t, path, c.File)
	require.Equal(t, filepath.Join(dir, "state"), c.Storage.Dir, "relative to the config file, not the working directory")

	_, err = Load(t.Context(), filepath.Join(dir, "missing.yaml"), testOptions())
	require.ErrorIs(t, err, fs.ErrNotExist)
	var cerr *Error
	require.False(t, errors.As(err, &cerr))
}

func TestValidateCodeBuilt(t *testing.T) {
	c := Default()
	c.Account.APIID = 123456
	c.Account.APIHash = NewSecret(testEnv["TG_API_HASH"])
	c.Plugins = []Plugin{defaultPlugin(c.Limits.Send.Plugin)}
	c.Plugins[0].Name = "ping"
	c.Plugins[0].Builtin = "ping"
	require.NoError(t, c.Validate())

	c.Server = Server{Type: ServerCustom}
	c.Limits.Send.PerChat.Burst = 0
	c.Plugins = append(c.Plugins, c.Plugins[0])
	err := c.Validate()
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, ": server.address: required with type: custom (HOST:PORT)\n"+
		": server.dc: required with type: custom (the data center id to start with)\n"+
		": server.public_key_file: required with type: custom (the server's RSA public key, PEM)\n"+
		": limits.send.per_chat: burst must be at least 1\n"+
		`: plugins[1].name: "ping" is already used by plugins[0]`, err.Error())
}
