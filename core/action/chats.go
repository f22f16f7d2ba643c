package action

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gotd/td/tg"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// inviteHash takes the hash out of an invite link, or accepts a bare hash.
func inviteHash(link string) (string, error) {
	s := strings.TrimSpace(link)
	if s == "" {
		return "", invalidf("invite_link: empty")
	}
	if strings.ContainsAny(s, "/:") {
		l, err := ParseLink(s)
		if err != nil {
			return "", invalidf("invite_link: %q is not an invite link", link)
		}
		if l.InviteHash == "" {
			return "", invalidf("invite_link: %q is not an invite link (t.me/+HASH or t.me/joinchat/HASH); to join a public chat, resolve it and join by chat", link)
		}
		s = l.InviteHash
	}
	s = strings.TrimPrefix(s, "+")
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "", invalidf("invite_link: %q has a malformed hash", link)
		}
	}
	if s == "" {
		return "", invalidf("invite_link: %q has no hash", link)
	}
	return s, nil
}

// joinedChat picks the joined chat out of an answer's entities.
func (x *Executor) joinedChat(ctx context.Context, u tg.UpdatesClass, want *pb.Peer) *pb.Chat {
	var users []tg.UserClass
	var chats []tg.ChatClass
	switch u := u.(type) {
	case *tg.Updates:
		users, chats = u.Users, u.Chats
	case *tg.UpdatesCombined:
		users, chats = u.Users, u.Chats
	}
	x.remember(ctx, users, chats)
	for _, c := range chats {
		switch c := c.(type) {
		case *tg.Chat:
			if want == nil || want.Kind == pb.PeerKind_PEER_KIND_CHAT && want.Id == c.ID {
				return x.chatOfPeer(&tg.PeerChat{ChatID: c.ID}, users, chats)
			}
		case *tg.Channel:
			if want == nil || want.Kind == pb.PeerKind_PEER_KIND_CHANNEL && want.Id == c.ID {
				return x.chatOfPeer(&tg.PeerChannel{ChannelID: c.ID}, users, chats)
			}
		}
	}
	return nil
}

func (x *Executor) join(ctx context.Context, m *pb.JoinChat) (*pb.ActionResult, error) {
	var (
		res  tg.MessagesChatInviteJoinResultClass
		err  error
		want *pb.Peer
		what string
	)
	switch t := m.GetTarget().(type) {
	case *pb.JoinChat_Chat:
		want, what = t.Chat, peerString(t.Chat)
		if err := checkPeer(t.Chat, "chat"); err != nil {
			return nil, err
		}
		if t.Chat.Kind != pb.PeerKind_PEER_KIND_CHANNEL {
			return nil, invalidf("chat: only channels and supergroups can be joined by reference; a basic group needs an invite_link")
		}
		peer, err := x.inputPeer(ctx, t.Chat, "chat")
		if err != nil {
			return nil, err
		}
		ch, _ := inputChannel(peer)
		res, err = x.api.ChannelsJoinChannel(ctx, ch)
		if errors.Is(err, ErrDoneEarlier) {
			return chatResult(x.knownChat(ctx, t.Chat)), nil
		}
		if err != nil {
			return nil, fmt.Errorf("join %s: %w", what, err)
		}
	case *pb.JoinChat_InviteLink:
		hash, herr := inviteHash(t.InviteLink)
		if herr != nil {
			return nil, herr
		}
		what = "by invite link"
		res, err = x.api.MessagesImportChatInvite(ctx, hash)
		if errors.Is(err, ErrDoneEarlier) {
			if c := x.invitedChat(ctx, hash); c != nil {
				return chatResult(c), nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("join %s: %w", what, err)
		}
	default:
		return nil, invalidf("join: one of chat or invite_link is required")
	}
	okRes, isOK := res.(*tg.MessagesChatInviteJoinResultOk)
	if !isOK {
		return nil, internalf("join %s: Telegram asks to open a bot web view first (%T), which the runner cannot do", what, res)
	}
	if c := x.joinedChat(ctx, okRes.Updates, want); c != nil {
		return chatResult(c), nil
	}
	if want != nil {
		return chatResult(&pb.Chat{Peer: want}), nil
	}
	return nil, internalf("join %s: joined, but Telegram's answer did not name the chat", what)
}

func (x *Executor) leave(ctx context.Context, m *pb.LeaveChat) (*pb.ActionResult, error) {
	if err := checkPeer(m.GetChat(), "chat"); err != nil {
		return nil, err
	}
	if m.GetChat().Kind == pb.PeerKind_PEER_KIND_USER {
		return nil, invalidf("chat: %s is a private chat, which cannot be left", peerString(m.GetChat()))
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	var res tg.UpdatesClass
	if ch, isChannel := inputChannel(peer); isChannel {
		res, err = x.api.ChannelsLeaveChannel(ctx, ch)
	} else {
		res, err = x.api.MessagesDeleteChatUser(ctx, &tg.MessagesDeleteChatUserRequest{ChatID: m.GetChat().Id, UserID: &tg.InputUserSelf{}})
	}
	if errors.Is(err, ErrDoneEarlier) {
		return ok(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("leave %s: %w", peerString(m.GetChat()), err)
	}
	x.joinedChat(ctx, res, m.GetChat()) // remembers the chat's new state
	return ok(), nil
}
