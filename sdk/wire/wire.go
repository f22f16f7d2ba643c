// Package wire holds what the runner and a plugin must agree on before the
// first byte of the plugin contract flows: the go-plugin handshake, the
// protocol versions, and the glue that registers the contract's gRPC
// service on either side. Both the SDK (plugin side) and the runner's plugin
// host (client side) import it, so the two can never drift apart.
package wire

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ProtocolVersion is the plugin contract version this build speaks
// (package tgrunner.plugin.v1).
const ProtocolVersion = 1

// PluginName is the key of the one plugin every tgrunner plugin process
// serves in its go-plugin PluginSet.
const PluginName = "tgrunner"

// Handshake is the go-plugin handshake. The cookie only stops a plugin
// binary from being run by hand by mistake; it is not a security measure
// (the sha256 pin and AutoMTLS are).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "TGRUNNER_PLUGIN_COOKIE",
	MagicCookieValue: "b7d1c2a4-tgrunner-plugin-v1",
}

// GRPCPlugin adapts the contract to go-plugin. On the plugin side Impl is
// set; on the runner side it is nil and GRPCClient returns a
// pluginv1.PluginClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pluginv1.PluginServer
}

// GRPCServer registers the plugin's implementation of the contract.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("wire: no plugin implementation to serve")
	}
	pluginv1.RegisterPluginServer(s, p.Impl)
	return nil
}

// GRPCClient returns a pluginv1.PluginClient on the runner's side.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginClient(c), nil
}

// ServerPlugins is the VersionedPlugins map a plugin process serves.
func ServerPlugins(impl pluginv1.PluginServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}

// ClientPlugins is the VersionedPlugins map the runner offers.
func ClientPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{}},
	}
}
