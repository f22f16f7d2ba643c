// Package guard owns the policy layer every outgoing action passes before it
// reaches Telegram: the anti-spam and anti-flood rules that keep a user
// account alive, the global kill switch, quiet hours and dry-run, the
// durable queue of actions that must wait, and the audit log of everything
// the runner did on the account's behalf.
//
// It is the outermost of three layers. Below it, contrib's ratelimit
// middleware spreads all RPCs and contrib's floodwait.Waiter waits out
// FLOOD_WAIT_X answers; both are installed on the gotd client by the runner.
// The guard decides whether an action may happen at all, and when:
//
//   - methods that are never allowed (ForbiddenMethod), except for the owner;
//   - the same text to many chats (likely spam), first messages to strangers
//     per day, joins, invites and contact imports per day;
//   - per-chat, per-group, global and per-source send rates, and slow mode,
//     waited for in FIFO order per chat;
//   - pause, quiet hours and dry-run;
//   - what happens when the floodwait.Waiter gives up (retry later or fail).
//
// docs/guard.md explains each limit, its default and why.
package guard
