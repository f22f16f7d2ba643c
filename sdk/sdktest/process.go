package sdktest

import (
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/wire"
)

// StartProcess runs a built plugin (in any language) the way the runner
// does: a real process under a go-plugin client, gRPC only, AutoMTLS, the
// handshake and protocol versions of sdk/wire. It then plays the runner
// over that connection like New. The process is killed when the test ends.
func StartProcess(t testing.TB, cmd *exec.Cmd, opts ...Option) (*Harness, error) {
	t.Helper()
	api, err := DialProcess(t, cmd, defaults(opts).quiet)
	if err != nil {
		return nil, err
	}
	return Connect(t, api, opts...)
}

// DialProcess starts a built plugin like StartProcess and returns a raw
// client of the contract, for tests and benchmarks that play the runner
// themselves. quiet drops the plugin's log instead of writing it to the
// test log.
func DialProcess(t testing.TB, cmd *exec.Cmd, quiet bool) (pluginv1.PluginClient, error) {
	t.Helper()
	var logger hclog.Logger = hclog.NewNullLogger()
	if !quiet {
		w := &testLogWriter{t: t}
		w.alive.Store(true)
		// Registered first, so it runs after the process is killed.
		t.Cleanup(func() { w.alive.Store(false) })
		logger = hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Debug, Output: w})
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.ClientPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           logger,
		StartTimeout:     30 * time.Second,
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("start plugin %s: %w", cmd.Path, err)
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense plugin %s: %w", cmd.Path, err)
	}
	api, ok := raw.(pluginv1.PluginClient)
	if !ok {
		return nil, fmt.Errorf("plugin %s: dispensed %T, want a pluginv1.PluginClient", cmd.Path, raw)
	}
	if err := rpc.Ping(); err != nil {
		return nil, fmt.Errorf("plugin %s: health ping: %w", cmd.Path, err)
	}
	return api, nil
}

// testLogWriter writes the plugin's forwarded log to the test log until
// the test ends.
type testLogWriter struct {
	t     testing.TB
	alive atomic.Bool
}

func (w *testLogWriter) Write(b []byte) (int, error) {
	if w.alive.Load() {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}
