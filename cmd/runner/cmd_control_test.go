package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// cobra's completion command works for every documented shell, with the
// ops commands in the tree.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			root := newRootCmd()
			root.AddCommand(opsCommands()...)
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetArgs([]string{"completion", shell})
			require.NoError(t, root.Execute())
			require.Contains(t, out.String(), "runner")
			require.Greater(t, out.Len(), 1000, "a whole script")
		})
	}
	// The dynamic part: subcommands complete through cobra's __complete.
	root := newRootCmd()
	root.AddCommand(opsCommands()...)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"__complete", "plugins", ""})
	require.NoError(t, root.Execute())
	for _, sub := range []string{"list", "status", "restart", "disable", "enable", "pin"} {
		require.Contains(t, out.String(), sub+"\t")
	}
}

// Plugin names complete from the config when no runner runs.
func TestPluginNameCompletionFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "version: 1\nserver: sandbox\nstorage:\n  dir: "+filepath.Join(dir, "data")+"\nplugins:\n  - name: echo\n    builtin: echo\n  - name: greeter\n    builtin: greeter\n")
	root := newRootCmd()
	root.AddCommand(opsCommands()...)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"__complete", "plugins", "restart", "--config", cfg, ""})
	require.NoError(t, root.Execute())
	lines := strings.Split(out.String(), "\n")
	require.Contains(t, lines, "echo")
	require.Contains(t, lines, "greeter")
}

// pin writes the binary's current sum into the config, keeping the rest.
func TestPluginsPin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "echo-plugin")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho v1\n"), 0o755))
	body := "version: 1\nserver: sandbox\n# my plugins\nplugins:\n  - name: echo\n    path: echo-plugin   # next to the config\n    sha256: 0000000000000000000000000000000000000000000000000000000000000000\n"
	cfg := writeConfig(t, dir, "c.yaml", body)
	run := func(args ...string) (string, error) {
		root := newRootCmd()
		root.AddCommand(opsCommands()...)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--config", cfg))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("plugins", "pin", "echo")
	require.NoError(t, err)
	require.Contains(t, out, "pinned echo")
	sum := sha256.Sum256([]byte("#!/bin/sh\necho v1\n"))
	data, err := os.ReadFile(cfg)
	require.Contains(t, string(data), "sha256: "+hex.EncodeToString(sum[:]))
	require.NoError(t, err)
	require.Contains(t, string(data), "# my plugins")
	require.Contains(t, string(data), "# next to the config")
	require.NotContains(t, string(data), "000000000000")
	out, err = run("plugins", "pin", "echo")
	require.NoError(t, err)
	require.Contains(t, out, "already pinned")
	_, err = run("plugins", "pin", "nope")
	require.ErrorContains(t, err, `no plugin named "nope"`)
}
