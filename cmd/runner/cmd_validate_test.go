package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

const testHash = "0123456789abcdef0123456789abcdef"

// runCmd executes "runner ARGS..." in process, with the persistent --config
// flag main.go defines on the root command.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "runner", SilenceErrors: true}
	root.PersistentFlags().String("config", "", "config file")
	root.AddCommand(newValidateCmd())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func writeConfig(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

const goodConfig = `account:
  api_id: 123456
  api_hash: ${TG_API_HASH}
limits:
  dry_run: true
plugins:
  - name: ping
    builtin: ping
`

func TestValidateGood(t *testing.T) {
	t.Setenv("TG_API_HASH", testHash)
	dir := t.TempDir()
	path := writeConfig(t, dir, "a.yaml", goodConfig)

	stdout, stderr, err := runCmd(t, "validate", path)
	require.NoError(t, err)
	require.Empty(t, stderr)
	require.Equal(t, path+`: valid
  account  api_id 123456, api_hash env TG_API_HASH, phone asked at login, 2FA password not set
  server   production
  storage  `+filepath.Join(dir, "data")+`
  log      info, text, stderr, phone numbers: plus
  limits   per chat 1/s (burst 3), groups 20/min, global 30/min, plugin 20/min; first contacts 5/day; DRY RUN
  plugins  1: ping: builtin ping
`, stdout)
	require.NotContains(t, stdout, testHash)
}

func TestValidateResolution(t *testing.T) {
	t.Setenv("TG_API_HASH", testHash)
	dir := t.TempDir()
	flagFile := writeConfig(t, dir, "flag.yaml", goodConfig)
	envFile := writeConfig(t, dir, "env.yaml", goodConfig)
	writeConfig(t, dir, "tgrunner.yaml", goodConfig)

	stdout, _, err := runCmd(t, "validate", "--config", flagFile)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(stdout, flagFile+": valid"), stdout)

	stdout, _, err = runCmd(t, "--config", flagFile, "validate", flagFile)
	require.NoError(t, err, "the same file as flag and argument is fine")
	require.True(t, strings.HasPrefix(stdout, flagFile+": valid"), stdout)

	t.Setenv("TGRUNNER_CONFIG", envFile)
	stdout, _, err = runCmd(t, "validate")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(stdout, envFile+": valid"), stdout)

	stdout, _, err = runCmd(t, "validate", "--config", flagFile)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(stdout, flagFile+": valid"), "--config wins over $TGRUNNER_CONFIG: %s", stdout)

	t.Setenv("TGRUNNER_CONFIG", "")
	t.Chdir(dir)
	stdout, _, err = runCmd(t, "validate")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(stdout, "./tgrunner.yaml: valid"), stdout)

	_, _, err = runCmd(t, "validate", "--config", flagFile, envFile)
	require.ErrorContains(t, err, "both --config")
}

func TestValidateBad(t *testing.T) {
	t.Setenv("TG_API_HASH", testHash)
	dir := t.TempDir()
	path := writeConfig(t, dir, "bad.yaml", `account:
  api_id: 17349
  api_hsh: ${TG_API_HASH}
log:
  level: verbose
`)
	stdout, stderr, err := runCmd(t, "validate", path)
	require.EqualError(t, err, path+" is not valid: 4 problems")
	require.Empty(t, stdout)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	require.Len(t, lines, 4, stderr)
	require.True(t, strings.HasPrefix(lines[0], path+":1:1: account.api_hash: required"), lines[0])
	require.True(t, strings.HasPrefix(lines[1], path+":2:3: account.api_id: 17349 is a published api_id"), lines[1])
	require.Equal(t, path+`:3:3: account.api_hsh: unknown key; did you mean "api_hash"?`, lines[2])
	require.Equal(t, path+`:5:10: log.level: expected one of debug, info, warn, error; got "verbose"`, lines[3])
	require.NotContains(t, stderr, "Usage:", "a bad config is not a usage error")
}

func TestValidateMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, _, err := runCmd(t, "validate", missing)
	require.ErrorContains(t, err, "config file "+missing+" not found")

	_, _, err = runCmd(t, "validate", "a.yaml", "b.yaml")
	require.ErrorContains(t, err, "accepts at most 1 arg")
}

func TestValidateWarnings(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "w.yaml", "account:\n  api_id: 123456\n  api_hash: "+testHash+"\n  allow_literal_secrets: true\n")
	stdout, stderr, err := runCmd(t, "validate", path)
	require.NoError(t, err)
	require.Contains(t, stdout, "api_hash literal")
	require.Equal(t, "warning: "+path+":3:3: account.api_hash: written literally in the config (allowed by account.allow_literal_secrets); anyone who can read the file can read it\n", stderr)
}
