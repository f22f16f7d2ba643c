// Package event turns MTProto updates into tgrunner's event model (the
// pluginv1.Event messages of the plugin contract), and gives each event the
// two keys the journal needs: a dedup key that recognises an update replayed
// by getDifference after a crash, and a chat key that orders events per chat.
//
// It is pure conversion: no I/O, no state. Entities (users, chats,
// channels) come from the update itself, with a fallback lookup for the
// short updates that carry none.
package event
