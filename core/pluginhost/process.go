package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/wire"
)

// Typed start failures; a *StartError wraps one of them.
var (
	// ErrChecksumMismatch: the binary's sha256 is not the pinned one.
	ErrChecksumMismatch = errors.New("sha256 mismatch")
	// ErrStdoutNoise: the plugin printed to stdout before the go-plugin
	// handshake line.
	ErrStdoutNoise = errors.New("output on stdout before the handshake")
	// ErrStartTimeout: no handshake within the start timeout.
	ErrStartTimeout = errors.New("start timeout")
	// ErrExitedEarly: the process exited before the handshake.
	ErrExitedEarly = errors.New("exited before the handshake")
)

// StartError is a plugin process that could not be started.
type StartError struct {
	Plugin string
	Kind   error // one of the Err* above, or nil
	Detail string
	Err    error
}

func (e *StartError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("plugin %q: start: %s", e.Plugin, e.Detail)
	}
	return fmt.Sprintf("plugin %q: start: %v", e.Plugin, e.Err)
}

func (e *StartError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// executable is what to exec and the sha256 it must have.
type executable struct {
	path string
	args []string
	sum  []byte
}

// process is one started plugin process and its gRPC client.
type process struct {
	client *plugin.Client
	conn   *grpc.ClientConn
	api    pluginv1.PluginClient
	pid    int
}

// maxMessageBytes bounds one gRPC message in either direction: downloads
// and uploads travel inside actions. The plugin's server must allow the same.
const maxMessageBytes = 64 << 20

// launch starts the plugin process and completes the go-plugin handshake.
func launch(spec Spec, bin executable, env []string, log *zap.Logger) (*process, error) {
	startErr := func(kind error, detail string, err error) error {
		return &StartError{Plugin: spec.Name, Kind: kind, Detail: detail, Err: err}
	}
	if err := os.MkdirAll(spec.WorkDir, 0o700); err != nil {
		return nil, startErr(nil, "", fmt.Errorf("working directory: %w", err))
	}
	// MkdirAll leaves an existing directory's mode alone.
	if err := os.Chmod(spec.WorkDir, 0o700); err != nil {
		return nil, startErr(nil, "", fmt.Errorf("working directory: %w", err))
	}

	cmd := exec.Command(bin.path, append(bin.args, spec.Args...)...)
	cmd.Dir = spec.WorkDir
	// go-plugin appends its handshake variables; SkipHostEnv keeps it from
	// appending the runner's whole environment.
	cmd.Env = append([]string{}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so a stop kills its children too.
		Setpgid: true,
		// If the runner dies without a chance to clean up, the kernel kills
		// the plugin. (Pdeathsig follows the forking thread; the Go runtime
		// does not retire threads unless a locked goroutine exits.)
		Pdeathsig: syscall.SIGKILL,
	}

	hlog := newZapHCLog(log)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.ClientPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SecureConfig:     &plugin.SecureConfig{Checksum: bin.sum, Hash: sha256.New()},
		StartTimeout:     spec.StartTimeout,
		Logger:           hlog,
		// Lines the plugin prints after the handshake (go-plugin forwards
		// them over its stdio stream) are logged, never lost.
		SyncStdout: &lineWriter{log: func(l string) { log.Info("plugin stdout", zap.String("line", l)) }},
		SyncStderr: &lineWriter{log: func(l string) { log.Info("plugin stderr", zap.String("line", l)) }},
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes))},
		// Not Managed: go-plugin's managed list is global and only grows;
		// the host kills every client it made itself.
	})

	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		if cmd.Process != nil {
			killGroup(cmd.Process.Pid)
		}
		return nil, classifyStartError(spec.Name, bin, err)
	}
	p := &process{client: client, pid: cmd.Process.Pid}
	gc, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		p.kill()
		return nil, startErr(nil, "", fmt.Errorf("go-plugin returned a %T, not a gRPC client", rpc))
	}
	p.conn = gc.Conn
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		p.kill()
		return nil, startErr(nil, "", fmt.Errorf("dispense: %w", err))
	}
	p.api, ok = raw.(pluginv1.PluginClient)
	if !ok {
		p.kill()
		return nil, startErr(nil, "", fmt.Errorf("dispensed a %T, not a plugin client", raw))
	}
	return p, nil
}

const unrecognizedPrefix = "Unrecognized remote plugin message: "

func classifyStartError(name string, bin executable, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		got := "unreadable"
		if sum, herr := fileSHA256(bin.path); herr == nil {
			got = sum
		}
		return &StartError{Plugin: name, Kind: ErrChecksumMismatch, Err: err, Detail: fmt.Sprintf(
			"%s has sha256 %s, but the config pins %s; refusing to start it (if you trust the new binary, run `runner plugins pin`)",
			bin.path, got, hex.EncodeToString(bin.sum))}
	case strings.Contains(msg, unrecognizedPrefix):
		noise, _, _ := strings.Cut(msg[strings.Index(msg, unrecognizedPrefix)+len(unrecognizedPrefix):], "\n")
		return &StartError{Plugin: name, Kind: ErrStdoutNoise, Err: err, Detail: fmt.Sprintf(
			"it printed %q to stdout before the go-plugin handshake; a plugin must not write to stdout before it calls Serve (log to stderr instead)",
			noise)}
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return &StartError{Plugin: name, Kind: ErrStartTimeout, Err: err, Detail: "no go-plugin handshake within the start timeout"}
	case strings.Contains(msg, "plugin exited before we could connect"):
		return &StartError{Plugin: name, Kind: ErrExitedEarly, Err: err, Detail: "the process exited before the go-plugin handshake (see its log lines above)"}
	}
	return &StartError{Plugin: name, Err: err}
}

// kill ends the process and its whole process group at once.
func (p *process) kill() {
	killGroup(p.pid)
	p.client.Kill()
}

// stop lets go-plugin close the connection (the plugin's Serve returns and
// the process exits), then kills whatever is left of its process group:
// go-plugin's Kill only ever kills the direct child.
func (p *process) stop() {
	p.client.Kill()
	killGroup(p.pid)
}

func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// ping is a health check with a deadline (go-plugin's Ping has none).
func (p *process) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// scrubbedEnv returns the allow-listed variables from the runner's
// environment, minus anything that looks like a runner secret or is listed
// in deny.
func scrubbedEnv(allow []string, deny map[string]bool) []string {
	var env []string
	for _, name := range allow {
		if deny[name] || looksLikeRunnerSecret(name) {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}
