package pluginhost

import (
	"context"
	"time"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Feed is one plugin's durable cursor over the account's update journal.
type Feed interface {
	// Read blocks until events with seq > after exist (or ctx ends) and
	// returns up to max of them in seq order. A feed should skip events it
	// has already seen acked; if it returns them, they are delivered again
	// (delivery is at least once).
	Read(ctx context.Context, after uint64, max int) ([]*pluginv1.Event, error)
	// Ack durably marks events handled (any order); unacked ones are
	// redelivered after a restart.
	Ack(ctx context.Context, seqs ...uint64) error
	// Position is the seq after which delivery resumes (everything <= it is
	// acked).
	Position(ctx context.Context) (uint64, error)
}

// FeedSource opens the feed of one plugin instance. The host calls it once
// per instance, when the host starts.
type FeedSource func(ctx context.Context, instance string) (Feed, error)

// Call is one action a plugin asked for, after the host checked the
// plugin's permissions.
type Call struct {
	// Plugin is the instance name; the guard keys its per-plugin rate
	// limits on it.
	Plugin string
	Action *pluginv1.Action
	// CauseSeq is the event that caused the action (0 if none).
	CauseSeq uint64
	// Launch is which process of the instance asked, from 1. An event
	// delivered again after a crash goes to a new process, which answers
	// it afresh.
	Launch int
	// Label is the plugin's own name for the call (e.g. the rule that made
	// it), for the audit log only, already cleaned by the host (see
	// CleanLabel). Limits and permissions stay keyed on Plugin.
	Label string
}

// Executor runs an action on the account (through the guard). It never sees
// which plugin lacks what permission: the host checks permissions first.
type Executor interface {
	Execute(ctx context.Context, call Call) *pluginv1.ActionResult
}

// AuditKind classifies audit entries.
type AuditKind string

// Audit entry kinds.
const (
	// AuditDenied: an action was refused by the plugin's permissions.
	AuditDenied AuditKind = "denied"
	// AuditRawInvoke: a raw TL request was let through to the executor.
	AuditRawInvoke AuditKind = "raw_invoke"
	// AuditQuarantined: the plugin was quarantined.
	AuditQuarantined AuditKind = "quarantined"
	// AuditDropped: events were dropped because the plugin fell behind.
	AuditDropped AuditKind = "dropped"
)

// AuditEntry is one notable thing a plugin did or had done to it.
type AuditEntry struct {
	Time   time.Time
	Plugin string
	Kind   AuditKind
	// Action is the action name ("send", "raw_invoke", ...) when the entry
	// is about an action.
	Action string
	// Chat is the chat concerned, in "user:123" form, when there is one.
	Chat     string
	CauseSeq uint64
	// Label is the call's cleaned label, when the entry is about an action.
	Label string
	// Reason says why, in words a user reading the audit log understands.
	Reason string
}

// Auditor records denials and other notable plugin events.
type Auditor interface {
	Record(ctx context.Context, e AuditEntry)
}

// KV is the runner's key-value storage for plugins. The host serves the
// kv_get/kv_set/kv_delete/kv_list actions from it itself, namespaced by
// instance name, so they need no permission and never reach the Executor.
type KV interface {
	Get(ctx context.Context, plugin, key string) (value []byte, found bool, err error)
	Set(ctx context.Context, plugin, key string, value []byte) error
	Delete(ctx context.Context, plugin, key string) error
	List(ctx context.Context, plugin, prefix string) ([]string, error)
}

// ChatResolver tells what the account knows about a peer: its type
// (private, self, group, supergroup, channel) and username. The host needs
// it to check chat permissions granted by kind or @username. It returns an
// error wrapping ErrUnknownChat when the account does not know the peer.
type ChatResolver interface {
	Chat(ctx context.Context, peer *pluginv1.Peer) (*pluginv1.Chat, error)
}
