package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/store"
)

func runAudit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "runner", SilenceErrors: true, SilenceUsage: true}
	root.PersistentFlags().String("config", "", "config file")
	root.AddCommand(newAuditCmd())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"audit"}, args...))
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestAuditCommand(t *testing.T) {
	t.Setenv("TG_API_HASH", testHash)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, "c.yaml", "account:\n  api_id: 123456\n  api_hash: ${TG_API_HASH}\nstorage:\n  dir: "+data+"\n")

	_, err := runAudit(t, "--config", cfg)
	require.ErrorContains(t, err, "nothing was audited")

	ctx := context.Background()
	st, err := store.Open(ctx, data, store.Options{})
	require.NoError(t, err)
	now := time.Now()
	recs := []guard.AuditRecord{
		{Time: now.Add(-3 * time.Hour), Source: "plugin:echo", Kind: "send", Chat: "user:1", Outcome: guard.OutcomeOK, MessageID: 10, Wait: 1500 * time.Millisecond},
		{Time: now.Add(-2 * time.Hour), Source: "plugin:spam", Kind: "send", Chat: "user:2", Outcome: guard.OutcomeThrottled, Code: "THROTTLED", RetryAfter: 3600, Reason: "likely spam"},
		{Time: now.Add(-time.Hour), Source: "plugin:evil", Kind: "raw_invoke", Method: "account.deleteAccount", Outcome: guard.OutcomeDenied, Code: "FORBIDDEN", Reason: "never allowed"},
		{Time: now.Add(-30 * time.Minute), Source: "plugin:rules", Label: "greet", Kind: "send", Chat: "user:3", Outcome: guard.OutcomeOK, MessageID: 12},
		{Time: now.Add(-time.Minute), Source: "owner", Kind: "send", Chat: "user:1", Outcome: guard.OutcomeOK, MessageID: 11},
	}
	for _, r := range recs {
		require.NoError(t, guard.Append(ctx, st, r))
	}

	// While the storage is held (the runner is running), a clear error.
	_, err = runAudit(t, "--config", cfg)
	require.ErrorContains(t, err, "stop it to read the audit log")
	require.NoError(t, st.Close())

	out, err := runAudit(t, "--config", cfg)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	require.Contains(t, lines[0], "OUTCOME")
	require.Contains(t, lines[1], "plugin:echo")
	require.Contains(t, lines[1], "1.5s")
	require.Contains(t, lines[3], "account.deleteAccount")
	require.Contains(t, lines[4], "plugin:rules (greet)", "the label shows next to the source")

	out, err = runAudit(t, "--config", cfg, "--label", "greet", "--json")
	require.NoError(t, err)
	var labelled guard.AuditRecord
	require.NoError(t, json.Unmarshal([]byte(out), &labelled))
	require.Equal(t, "plugin:rules", labelled.Source)
	require.Equal(t, "greet", labelled.Label)
	require.Contains(t, out, `"label":"greet"`)
	out, err = runAudit(t, "--config", cfg, "--label", "away")
	require.NoError(t, err)
	require.Contains(t, out, "No audit records match.")

	out, err = runAudit(t, "--config", cfg, "--plugin", "spam")
	require.NoError(t, err)
	require.Contains(t, out, "likely spam")
	require.NotContains(t, out, "plugin:echo")

	out, err = runAudit(t, "--config", cfg, "--chat", "user:1", "--json")
	require.NoError(t, err)
	var got []guard.AuditRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r guard.AuditRecord
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		got = append(got, r)
	}
	require.Len(t, got, 2)
	require.Equal(t, int64(11), got[1].MessageID)

	out, err = runAudit(t, "--config", cfg, "--since", "90m", "--outcome", "denied")
	require.NoError(t, err)
	require.Contains(t, out, "plugin:evil")
	require.Equal(t, 2, strings.Count(out, "\n"))

	out, err = runAudit(t, "--config", cfg, "--until", "150m", "--limit", "0")
	require.NoError(t, err)
	require.Contains(t, out, "plugin:echo")
	require.NotContains(t, out, "plugin:spam")

	out, err = runAudit(t, "--config", cfg, "--limit", "1")
	require.NoError(t, err)
	require.Contains(t, out, "owner")
	require.Equal(t, 2, strings.Count(out, "\n"))

	_, err = runAudit(t, "--config", cfg, "--outcome", "fine")
	require.ErrorContains(t, err, "want one of ok, error")
	_, err = runAudit(t, "--config", cfg, "--since", "yesterday")
	require.ErrorContains(t, err, "--since")
}
