package config

import (
	"net"
	"path/filepath"
	"strconv"
)

// Ops configures what an operator uses to watch and steer a running
// runner: the HTTP address with metrics, health checks and the status page,
// and the local control socket behind `runner status`, `runner pause` and
// friends.
type Ops struct {
	// Listen is the HTTP address serving /metrics, /healthz, /readyz, the
	// status page at / and /api/status. Empty: no HTTP server (the default;
	// it is opt-in).
	Listen string
	// AllowRemote lets Listen bind a non-loopback address. The status page
	// and metrics have no authentication: put a reverse proxy with auth in
	// front before exposing them.
	AllowRemote bool
	// Socket is the control socket's path. Empty: runner.sock in the
	// storage directory. "off" disables it.
	Socket string
	// IgnoreQuarantined keeps /readyz ready while a plugin is quarantined
	// (YAML: quarantined_blocks_ready: false). By default a quarantined
	// plugin makes the runner not ready.
	IgnoreQuarantined bool
}

// SocketOff disables the control socket in ops.socket.
const SocketOff = "off"

// DefaultSocketName is the control socket's file name in the storage
// directory.
const DefaultSocketName = "runner.sock"

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// SocketPath returns the control socket's path ("" when disabled), given
// the storage directory the runner actually uses.
func (o Ops) SocketPath(storageDir string) string {
	switch o.Socket {
	case SocketOff:
		return ""
	case "":
		return filepath.Join(storageDir, DefaultSocketName)
	}
	return o.Socket
}

func decodeOps(d *decoder, c *Config, top *fields) {
	f := top.sub("ops", "listen", "allow_remote", "socket", "quarantined_blocks_ready")
	if f == nil {
		return
	}
	o := &c.Ops
	f.boolean("allow_remote", &o.AllowRemote)
	blocks := true
	if f.boolean("quarantined_blocks_ready", &blocks) {
		o.IgnoreQuarantined = !blocks
	}
	if v := f.get("socket"); v != nil {
		var s string
		if f.str("socket", &s) {
			if s == SocketOff {
				o.Socket = SocketOff
			} else if f.filePath("socket", &o.Socket) && len(o.Socket) > maxSocketPath {
				d.errorf(v, f.p("socket"), "the path is %d bytes long; unix sockets allow at most %d: choose a shorter path", len(o.Socket), maxSocketPath)
			}
		}
	}
	var listen string
	if !f.str("listen", &listen) {
		return
	}
	v := f.get("listen")
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		d.errorf(v, f.p("listen"), "expected HOST:PORT such as \"127.0.0.1:9465\", got %q", listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		d.errorf(v, f.p("listen"), "port %q must be a number from 0 to 65535", port)
		return
	}
	if !o.AllowRemote && !isLoopback(host) {
		d.errorf(v, f.p("listen"), "%q is not a loopback address; the status page and metrics have no authentication, so set ops.allow_remote: true to listen there on purpose (behind a proxy with auth)", listen)
		return
	}
	o.Listen = listen
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
