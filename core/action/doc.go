// Package action owns the action executor: the one place that turns a
// contract action (pluginv1.Action) into MTProto calls on the account and
// the answer into a pluginv1.ActionResult.
//
// It validates every action before any RPC, addresses chats through the
// persistent peer cache, feeds every entity it sees back into that cache,
// parses message styling (HTML and a small Markdown dialect, offsets in
// UTF-16 units), and maps Telegram's errors onto the contract's typed error
// codes. It never drops a message silently: an action either succeeds or
// its result carries an error that says why.
//
// The executor does not rate-limit or authorise: the guard wraps it (see
// Kind, TargetChat and IsWrite), and the plugin host serves kv_* actions.
package action
