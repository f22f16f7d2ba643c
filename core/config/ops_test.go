package config

import (
	"path/filepath"
	"testing"
)

func TestOpsSection(t *testing.T) {
	base := "version: 1\naccount:\n  api_id: 123456\n  api_hash: ${TG_API_HASH}\n"
	tests := []struct {
		name       string
		yaml       string
		want       Ops
		socketPath string // for storage dir /data
	}{
		{"absent", "", Ops{}, "/data/runner.sock"},
		{"loopback v4", "ops:\n  listen: 127.0.0.1:9465\n", Ops{Listen: "127.0.0.1:9465"}, "/data/runner.sock"},
		{"loopback v6", "ops:\n  listen: \"[::1]:0\"\n", Ops{Listen: "[::1]:0"}, "/data/runner.sock"},
		{"localhost", "ops:\n  listen: localhost:9465\n", Ops{Listen: "localhost:9465"}, "/data/runner.sock"},
		{"remote on purpose", "ops:\n  listen: 0.0.0.0:9465\n  allow_remote: true\n",
			Ops{Listen: "0.0.0.0:9465", AllowRemote: true}, "/data/runner.sock"},
		{"socket off", "ops:\n  socket: \"off\"\n", Ops{Socket: SocketOff}, ""},
		{"socket path", "ops:\n  socket: /run/tgrunner/ctl.sock\n", Ops{Socket: "/run/tgrunner/ctl.sock"}, "/run/tgrunner/ctl.sock"},
		{"quarantine ignored", "ops:\n  quarantined_blocks_ready: false\n", Ops{IgnoreQuarantined: true}, "/data/runner.sock"},
		{"quarantine blocks", "ops:\n  quarantined_blocks_ready: true\n", Ops{}, "/data/runner.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(base+tt.yaml), testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if c.Ops != tt.want {
				t.Errorf("Ops = %+v, want %+v", c.Ops, tt.want)
			}
			if got := c.Ops.SocketPath(filepath.FromSlash("/data")); got != tt.socketPath {
				t.Errorf("SocketPath = %q, want %q", got, tt.socketPath)
			}
		})
	}
}
