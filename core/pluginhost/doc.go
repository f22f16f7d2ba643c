// Package pluginhost owns the runner's side of the plugin contract: it starts
// plugin processes under hashicorp/go-plugin (gRPC, AutoMTLS, sha256 pin,
// scrubbed environment, own working directory and process group), supervises
// them (crash and hang detection, restart with backoff, quarantine), delivers
// each plugin's events from its durable feed over one bidirectional Session
// stream with a bounded window of unacked events, and checks every action a
// plugin asks for against the permissions its config grants before handing it
// to the executor.
//
// The runner adapts its journal, executor, audit log, key-value store and
// peer resolver to the small interfaces declared in deps.go. The wire
// protocol and the measurements behind its parameters are described in
// docs/plugin-protocol.md.
package pluginhost
