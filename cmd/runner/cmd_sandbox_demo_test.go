package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
)

// TestMain lets this test binary stand in for the runner binary when the
// plugin host re-executes it as `<binary> plugin NAME` for builtin
// plugins: the same command, in process.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "plugin" {
		root := testRoot()
		root.SetArgs(os.Args[1:])
		if err := root.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(exitError)
		}
		os.Exit(exitOK)
	}
	os.Exit(m.Run())
}

// testRoot is the root command with `plugin` registered even before
// main.go registers it.
func testRoot() *cobra.Command {
	root := newRootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "plugin" {
			return root
		}
	}
	root.AddCommand(newPluginCmd())
	return root
}

func execRoot(ctx context.Context, in io.Reader, out io.Writer, args ...string) error {
	root := testRoot()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(out)
	if in != nil {
		root.SetIn(in)
	}
	return root.ExecuteContext(ctx)
}

// Every example script and the demo's tour, through the real command:
// embedded sandbox, runner, plugin processes.
func TestSandboxScripts(t *testing.T) {
	scripts, err := filepath.Glob("../../configs/examples/*.script.yaml")
	require.NoError(t, err)
	scripts = append(scripts, "../../configs/sandbox.script.yaml")
	require.GreaterOrEqual(t, len(scripts), 7)
	for _, path := range scripts {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var out syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			// The tour runs the demo's default config from the repository.
			args := []string{"sandbox", "--script", path, "--color", "never"}
			if strings.HasSuffix(path, "configs/sandbox.script.yaml") {
				args = append(args, "--config", "../../configs/sandbox.yaml")
			}
			err := execRoot(ctx, nil, &out, args...)
			require.NoError(t, err, out.String())
			require.Regexp(t, `✓ .*: \d+ steps? passed`, out.String())
		})
	}
}

// A mismatch fails the command with what was expected and what came.
func TestSandboxScriptMismatch(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "wrong.script.yaml")
	require.NoError(t, os.WriteFile(script, []byte(`
config: `+absPath(t, "../../configs/examples/pm-guard.yaml")+`
steps:
  - as: carol
    say: hi
    expect:
      - {text: "Welcome, Carol!", within: 3s}
`), 0o600))
	var out syncBuffer
	err := execRoot(context.Background(), nil, &out, "sandbox", "--script", script, "--color", "never")
	require.Error(t, err)
	var se *scriptError
	require.ErrorAs(t, err, &se)
	msg := err.Error()
	require.Contains(t, msg, "wrong.script.yaml:4: step 1 (Carol → Owner: \"hi\"): expected within 3s")
	require.Contains(t, msg, `a message from Owner in Carol, text "Welcome, Carol!"`)
	require.Contains(t, msg, "got instead:\n  Carol → Owner: hi\n  Owner → Carol: Hi Carol, I only read messages from people I know.")
	require.Contains(t, msg, "[pmguard]")
	require.Contains(t, out.String(), "✗ ")

	// The process exits non-zero.
	require.Equal(t, exitError, run([]string{"sandbox", "--script", script, "--color", "never"}))
}

func absPath(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}

func TestSandboxScriptErrors(t *testing.T) {
	for name, tc := range map[string]struct{ script, want string }{
		"typo":        {"steps:\n  - as: alice\n    sai: hi\n", "line 3: field sai not found"},
		"no steps":    {"timeout: 5s\n", ":1: steps: the script has none"},
		"bad regex":   {"steps:\n  - say: hi\n    expect:\n      - {match: '('}\n", ":4: steps[0].expect[0].match: error parsing regexp"},
		"bad within":  {"steps:\n  - say: hi\n    expect:\n      - {contains: x, within: soon}\n", `:4: steps[0].expect[0].within: "soon" is not a duration`},
		"empty step":  {"steps:\n  - as: bob\n", ":2: steps[0]: say something or expect something"},
		"none alone":  {"steps:\n  - expect_none: [{from: owner}]\n", ":2: steps[0].expect_none: needs say"},
		"bad timeout": {"timeout: 0s\nsteps:\n  - say: hi\n", `timeout: "0s" is not a duration`},
	} {
		path := filepath.Join(t.TempDir(), "s.yaml")
		require.NoError(t, os.WriteFile(path, []byte(tc.script), 0o600))
		_, err := loadScript(path)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), tc.want, name)
		require.Contains(t, err.Error(), path, name)
	}
	// The command calls these usage errors, before starting anything.
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(path, []byte("steps: []\n"), 0o600))
	require.Equal(t, exitUsage, run([]string{"sandbox", "--script", path}))
}

// Every example config loads, with the environment it names provided, and
// each plugin example has its script.
func TestExampleConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../../configs/examples/*.yaml")
	require.NoError(t, err)
	files = append(files, "../../configs/sandbox.yaml")
	var configs int
	for _, f := range files {
		if strings.HasSuffix(f, ".script.yaml") {
			continue
		}
		configs++
		cfg, err := config.Load(context.Background(), f, config.LoadOptions{LookupEnv: config.MapEnv(map[string]string{
			"TG_API_HASH": "0123456789abcdef0123456789abcdef", "TG_PHONE": "+15551234567",
		})})
		require.NoError(t, err, f)
		require.Equal(t, config.ServerSandbox, cfg.Server.Type, f)
		if strings.HasPrefix(filepath.Base(f), "rules-") || filepath.Base(f) == "sandbox.yaml" {
			continue
		}
		require.NotEmpty(t, cfg.Plugins, f)
		_, err = os.Stat(strings.TrimSuffix(f, ".yaml") + ".script.yaml")
		require.NoError(t, err, "%s has no script demonstrating it", f)
	}
	require.GreaterOrEqual(t, configs, 6)
}

// The interactive chat: typed lines go out as the chosen person, and the
// answers show up labelled with the plugin that sent them.
func TestSandboxDemoChat(t *testing.T) {
	in, typing := io.Pipe()
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- execRoot(ctx, in, &out, "sandbox", "--config", "../../configs/sandbox.yaml", "--color", "never")
	}()
	waitFor := func(want string) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			select {
			case err := <-done:
				t.Fatalf("demo ended (%v) before %q:\n%s", err, want, out.String())
			case <-ctx.Done():
				t.Fatalf("no %q in:\n%s", want, out.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitFor("Type a message")
	type_ := func(line string) {
		_, err := io.WriteString(typing, line+"\n")
		require.NoError(t, err)
	}
	type_("hello there")
	waitFor("Alice → Owner: hello there")
	waitFor("Owner → Alice: Hi Alice, I'm away right now and will answer when I'm back.  [autoreply]")
	type_("/to friends")
	type_("/as bob")
	type_("good morning")
	waitFor("Bob → Friends: good morning")
	waitFor("Owner → Friends: Good morning, Bob! ☀️  [rules]")
	type_("/to nowhere")
	waitFor(`no chat called "nowhere"`)
	type_("/as owner")
	type_("/to saved")
	type_(".ping")
	waitFor("Owner → Saved Messages (edited): pong")
	type_("/quit")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the demo did not stop on /quit")
	}
}
