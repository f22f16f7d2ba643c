// Package runner hosts one account's MTProto session. It builds the gotd
// client for the configured server, runs the updates manager with the
// persistent state and the journaling intake, and runs the consumers of the
// journal (the plugin host, the action path) for as long as the session
// lives. It owns the order of start-up and shutdown.
package runner
