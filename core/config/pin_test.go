package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSetPluginSHA256(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	old := strings.Repeat("0", 64)
	tests := []struct {
		name, in, want, wantErr string
	}{
		{
			name: "replace an existing value, keeping its comment",
			in: `# my runner
plugins:
  # first
  - name: echo
    path: ./echo   # built by make
    sha256: ` + old + `   # pinned 2024
    args: [-v]
  - name: other
    path: ./other
    sha256: ` + old + `
`,
			want: `# my runner
plugins:
  # first
  - name: echo
    path: ./echo   # built by make
    sha256: ` + sum + ` # pinned 2024
    args: [-v]
  - name: other
    path: ./other
    sha256: ` + old + `
`,
		},
		{
			name: "insert after path, aligned with the other keys",
			in: `plugins:
- name: echo    # the echo plugin
  path: "./echo"
  args: [-v]
`,
			want: `plugins:
- name: echo    # the echo plugin
  path: "./echo"
  sha256: ` + sum + `
  args: [-v]
`,
		},
		{
			name: "quoted old value",
			in:   "plugins:\n  - name: echo\n    path: ./echo\n    sha256: \"" + old + "\"\n",
			want: "plugins:\n  - name: echo\n    path: ./echo\n    sha256: " + sum + "\n",
		},
		{
			name: "empty value",
			in:   "plugins:\n  - name: echo\n    sha256:\n    path: ./echo\n",
			want: "plugins:\n  - name: echo\n    sha256: " + sum + "\n    path: ./echo\n",
		},
		{
			name: "CRLF line endings survive",
			in:   "plugins:\r\n  - name: echo\r\n    path: ./echo\r\n",
			want: "plugins:\r\n  - name: echo\r\n    path: ./echo\r\n    sha256: " + sum + "\r\n",
		},
		{
			name:    "flow style is left to the user",
			in:      "plugins:\n  - {name: echo, path: ./echo}\n",
			wantErr: `plugin "echo" is written in flow style`,
		},
		{
			name:    "unknown plugin",
			in:      "plugins:\n  - name: echo\n    path: ./echo\n",
			wantErr: `no plugin named "nope"`,
		},
		{
			name:    "builtin plugins are not pinned",
			in:      "plugins:\n  - name: nope\n    builtin: ping\n",
			wantErr: `plugin "nope" has no path`,
		},
		{
			name:    "no plugins",
			in:      "account: {}\n",
			wantErr: "the config has no plugins list",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "echo"
			if strings.Contains(tt.wantErr, "nope") {
				name = "nope"
			}
			got, err := SetPluginSHA256([]byte(tt.in), name, strings.ToUpper(sum))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
	_, err := SetPluginSHA256([]byte("plugins: []\n"), "x", "abc")
	require.ErrorContains(t, err, "64 hexadecimal")
}

// TestPinPluginSHA256 pins a real binary into a real config file and loads
// the result.
func TestPinPluginSHA256(t *testing.T) {
	dir := t.TempDir()
	path, _ := executable(t, dir, "echo")
	cfg := writeFile(t, filepath.Join(dir, "tgrunner.yaml"), minimal+`
plugins:
  - name: echo   # says it back
    path: echo
`, 0o640)

	_, err := Load(t.Context(), cfg, testOptions())
	require.ErrorContains(t, err, "plugins[0].sha256: required")

	sum, err := SHA256File(path)
	require.NoError(t, err)
	require.NoError(t, PinPluginSHA256(cfg, "echo", sum))

	c, err := Load(t.Context(), cfg, testOptions())
	require.NoError(t, err)
	require.Equal(t, sum, c.Plugins[0].SHA256)
	data, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.Contains(t, string(data), "  - name: echo   # says it back\n    path: echo\n    sha256: "+sum+"\n")
	st, err := os.Stat(cfg)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary file left behind")
}
