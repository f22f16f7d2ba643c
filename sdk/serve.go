package sdk

import (
	"fmt"
	"os"
	"runtime"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tgrunner/tgrunner/sdk/wire"
)

// maxMessageBytes bounds one gRPC message on the plugin's server. Events
// and action results carry files (Download), which outgrow gRPC's 4 MiB
// default.
const maxMessageBytes = 64 << 20

// Serve runs the plugin under go-plugin until the runner stops it. It is
// the whole of a plugin's main after registration. Run by hand, without the
// runner, it explains what the binary is and exits with status 1.
func Serve(p *Plugin) {
	if os.Getenv(wire.Handshake.MagicCookieKey) != wire.Handshake.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "%s %s is a tgrunner plugin: the runner starts it, it does nothing on its own.\n"+
			"Add it under `plugins:` in the runner's config (with its sha256, see `runner plugins pin`)\n"+
			"and start the runner, or test it with the sdk/sdktest package. See docs/plugins.md.\n",
			p.name, p.version)
		os.Exit(1)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set && p.maxProcs > 0 {
		runtime.GOMAXPROCS(p.maxProcs)
	}
	p.freeze()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.ServerPlugins(p.Server()),
		GRPCServer:       grpcServer,
		Logger:           p.logger,
	})
}

func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes))
	return plugin.DefaultGRPCServer(opts)
}
