package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	return dir
}

const rulesMain = `version: 1
server: sandbox
rules:
  - id: away
    catch_up: run
    triggers: [{trigger: message}]
    conditions:
      - {condition: chat, chats: [private]}
      - {condition: cooldown, period: 1h, per: sender}
    actions:
      - {action: reply, text: "Away, back soon"}
      - {action: forward, to: "@archive_bot"}
rules_files: [rules/*.yaml]
`

func TestRulesWithFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"tgrunner.yaml": rulesMain,
		"rules/b.yaml": `
- id: alert
  triggers: [{trigger: regex, pattern: "(?i)urgent", edited: true}]
  actions: [{action: notify, text: "{{ .Sender.Mention }}: {{ .Message.Text }}"}]
`,
		"rules/a.yaml": `
- id: purge
  triggers: [{trigger: schedule, every: 1h}]
  actions: [{action: delete_old, chat: -1001234567890, older_than: 24h}]
`,
	})
	cfg, err := Load(t.Context(), filepath.Join(dir, "tgrunner.yaml"), LoadOptions{LookupEnv: MapEnv(nil)})
	require.NoError(t, err)
	ids := []string{}
	for _, r := range cfg.Rules {
		ids = append(ids, r.ID)
	}
	require.Equal(t, []string{"away", "purge", "alert"}, ids, "inline rules, then the files in name order")
	require.Len(t, cfg.RulesFiles, 2)
	require.Len(t, cfg.Warnings, 1)
	require.Contains(t, cfg.Warnings[0].String(), "@archive_bot is resolved when the runner connects")

	p, ok := RulesPlugin(cfg)
	require.True(t, ok)
	require.Equal(t, "rules", p.Name)
	require.Equal(t, "rules", p.Builtin)
	require.ElementsMatch(t, []Action{"send", "forward", "resolve", "history", "delete"}, p.Permissions.Actions)
	var chats []string
	for _, c := range p.Permissions.Chats {
		chats = append(chats, c.String())
	}
	require.ElementsMatch(t, []string{"private", "@archive_bot", "-1001234567890", "self"}, chats,
		"the trigger chats of rules that act in them, every target, and self for notify")
	require.ElementsMatch(t, []string{"new_message", "edited_message"}, p.Events)

	// The plugin gets the rules back as JSON, strictly decodable.
	raw, err := p.RawConfig()
	require.NoError(t, err)
	require.NotEmpty(t, raw)
	var v any
	require.NoError(t, p.Config.Decode(&v))
	js, err := json.Marshal(v)
	require.NoError(t, err)
	var back spec.Config
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&back))
	require.Equal(t, cfg.Rules, back.Rules)
	_, problems := spec.Compile("rules", back.Rules)
	require.Empty(t, problems)
}

func TestRulesFileProblemsNameTheFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"tgrunner.yaml": "version: 1\nserver: sandbox\nrules_files: [more.yaml]\n",
		"more.yaml":     "- id: x\n  triggers: [{trigger: message}]\n  actions:\n    - action: reply\n      text: \"{{ .Nope }}\"\n",
	})
	main := filepath.Join(dir, "tgrunner.yaml")
	_, err := Load(t.Context(), main, LoadOptions{LookupEnv: MapEnv(nil)})
	var cerr *Error
	require.True(t, errors.As(err, &cerr), "%v", err)
	require.Len(t, cerr.Problems, 1)
	pr := cerr.Problems[0]
	require.Equal(t, filepath.Join(dir, "more.yaml"), pr.File)
	require.Equal(t, 5, pr.Line)
	require.Equal(t, "rules[0].actions[0].text", pr.Path)
	require.Contains(t, pr.Msg, "can't evaluate field Nope")
}

func TestNoRulesNoPlugin(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("version: 1\nserver: sandbox\nrules:\n  - id: off\n    disabled: true\n    triggers: [{trigger: started}]\n    actions: [{action: notify, text: x}]\n"), LoadOptions{LookupEnv: MapEnv(nil)})
	require.NoError(t, err)
	_, ok := RulesPlugin(cfg)
	require.False(t, ok, "only disabled rules: no plugin")
}
