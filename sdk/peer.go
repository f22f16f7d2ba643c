package sdk

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// UserPeer refers to a user (a private chat).
func UserPeer(id int64) *pluginv1.Peer {
	return &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: id}
}

// ChatPeer refers to a basic group.
func ChatPeer(id int64) *pluginv1.Peer {
	return &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHAT, Id: id}
}

// ChannelPeer refers to a supergroup or a broadcast channel.
func ChannelPeer(id int64) *pluginv1.Peer {
	return &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHANNEL, Id: id}
}

// PeerString renders a peer as the contract's text form: "user:123",
// "chat:45" or "channel:678". It returns "" for nil.
func PeerString(p *pluginv1.Peer) string {
	if p == nil {
		return ""
	}
	var kind string
	switch p.GetKind() {
	case pluginv1.PeerKind_PEER_KIND_USER:
		kind = "user:"
	case pluginv1.PeerKind_PEER_KIND_CHAT:
		kind = "chat:"
	case pluginv1.PeerKind_PEER_KIND_CHANNEL:
		kind = "channel:"
	default:
		kind = "unknown:"
	}
	return kind + strconv.FormatInt(p.GetId(), 10)
}

// ParsePeer is the inverse of PeerString.
func ParsePeer(s string) (*pluginv1.Peer, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("peer %q: want user:ID, chat:ID or channel:ID", s)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("peer %q: id: %w", s, err)
	}
	switch kind {
	case "user":
		return UserPeer(n), nil
	case "chat":
		return ChatPeer(n), nil
	case "channel":
		return ChannelPeer(n), nil
	}
	return nil, fmt.Errorf("peer %q: unknown kind %q, want user, chat or channel", s, kind)
}

// chatOf returns the chat an event happened in, or nil.
func chatOf(ev *pluginv1.Event) *pluginv1.Chat {
	switch p := ev.GetPayload().(type) {
	case *pluginv1.Event_NewMessage:
		return p.NewMessage.GetChat()
	case *pluginv1.Event_EditedMessage:
		return p.EditedMessage.GetChat()
	case *pluginv1.Event_DeletedMessages:
		return p.DeletedMessages.GetChat()
	case *pluginv1.Event_ChatAction:
		return p.ChatAction.GetChat()
	case *pluginv1.Event_Reaction:
		return p.Reaction.GetChat()
	case *pluginv1.Event_Read:
		return p.Read.GetChat()
	case *pluginv1.Event_Typing:
		return p.Typing.GetChat()
	}
	return nil
}

// orderKey names the sequence an event must be handled in order with: its
// chat, or its user for events outside chats.
func orderKey(ev *pluginv1.Event) string {
	if ch := chatOf(ev); ch != nil && ch.GetPeer() != nil {
		return ev.GetAccount() + "/" + PeerString(ch.GetPeer())
	}
	if us := ev.GetUserStatus(); us != nil {
		return ev.GetAccount() + "/user:" + strconv.FormatInt(us.GetUser().GetId(), 10)
	}
	return ev.GetAccount() + "/"
}
