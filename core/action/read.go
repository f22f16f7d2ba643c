package action

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"

	"github.com/tgrunner/tgrunner/core/event"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// messagesOf unpacks any messages.Messages answer.
func messagesOf(res tg.MessagesMessagesClass) ([]tg.MessageClass, []tg.UserClass, []tg.ChatClass) {
	switch r := res.(type) {
	case *tg.MessagesMessages:
		return r.Messages, r.Users, r.Chats
	case *tg.MessagesMessagesSlice:
		return r.Messages, r.Users, r.Chats
	case *tg.MessagesChannelMessages:
		return r.Messages, r.Users, r.Chats
	}
	return nil, nil, nil
}

// inChat reports whether a message's peer is the chat ref.
func (x *Executor) inChat(p tg.PeerClass, ref *pb.Peer) bool {
	got := event.PeerOf(p)
	return got != nil && got.Kind == ref.Kind && got.Id == ref.Id
}

// fetchInChat gets messages by id and keeps only those in the chat ref,
// in the order asked. messages.getMessages ignores the chat, so without the
// filter a caller could read another chat's messages by id. With
// requireAll, a missing id is NOT_FOUND.
func (x *Executor) fetchInChat(ctx context.Context, peer tg.InputPeerClass, ref *pb.Peer, ids []int, requireAll bool) ([]tg.MessageClass, error) {
	in := make([]tg.InputMessageClass, len(ids))
	for i, id := range ids {
		in[i] = &tg.InputMessageID{ID: id}
	}
	var (
		res tg.MessagesMessagesClass
		err error
	)
	if ch, isChannel := inputChannel(peer); isChannel {
		res, err = x.api.ChannelsGetMessages(ctx, &tg.ChannelsGetMessagesRequest{Channel: ch, ID: in})
	} else {
		res, err = x.api.MessagesGetMessages(ctx, in)
	}
	if err != nil {
		return nil, fmt.Errorf("get messages in %s: %w", peerString(ref), err)
	}
	msgs, users, chats := messagesOf(res)
	x.remember(ctx, users, chats)
	byID := map[int]tg.MessageClass{}
	for _, m := range msgs {
		var p tg.PeerClass
		switch m := m.(type) {
		case *tg.Message:
			p = m.PeerID
		case *tg.MessageService:
			p = m.PeerID
		default:
			continue
		}
		if x.inChat(p, ref) {
			byID[m.GetID()] = m
		}
	}
	out := make([]tg.MessageClass, 0, len(ids))
	for _, id := range ids {
		m, found := byID[id]
		if !found {
			if requireAll {
				return nil, notFoundf("message %d: not found in %s", id, peerString(ref))
			}
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// convertMessages turns messages into the contract's form. Service
// messages (joins, pins) have no place in pb.Message and are skipped.
func (x *Executor) convertMessages(msgs []tg.MessageClass, users []tg.UserClass, chats []tg.ChatClass) []*pb.Message {
	e := x.entities(users, chats)
	out := make([]*pb.Message, 0, len(msgs))
	for _, m := range msgs {
		if m, ok := m.(*tg.Message); ok {
			out = append(out, event.MessageOf(m, e))
		}
	}
	return out
}

func (x *Executor) history(ctx context.Context, m *pb.GetHistory) (*pb.ActionResult, error) {
	limit := int(m.GetLimit())
	switch {
	case limit == 0:
		limit = DefaultHistoryLimit
	case limit < 0 || limit > MaxHistoryLimit:
		return nil, invalidf("limit: %d, must be 1-%d (0 means %d)", limit, MaxHistoryLimit, DefaultHistoryLimit)
	}
	if m.GetOffsetId() < 0 || m.GetOffsetId() > 1<<31-1 {
		return nil, invalidf("offset_id: %d is not a message id", m.GetOffsetId())
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	res, err := x.api.MessagesGetHistory(ctx, &tg.MessagesGetHistoryRequest{Peer: peer, OffsetID: int(m.GetOffsetId()), Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", peerString(m.GetChat()), err)
	}
	msgs, users, chats := messagesOf(res)
	x.remember(ctx, users, chats)
	return messagesResult(x.convertMessages(msgs, users, chats)), nil
}

func (x *Executor) getMessages(ctx context.Context, m *pb.GetMessages) (*pb.ActionResult, error) {
	ids, err := checkIDs(m.GetMessageIds(), "message_ids")
	if err != nil {
		return nil, err
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	msgs, err := x.fetchInChat(ctx, peer, m.GetChat(), ids, false)
	if err != nil {
		return nil, err
	}
	return messagesResult(x.convertMessages(msgs, nil, nil)), nil
}

func (x *Executor) getMe(ctx context.Context) (*pb.ActionResult, error) {
	users, err := x.api.UsersGetUsers(ctx, []tg.InputUserClass{&tg.InputUserSelf{}})
	if err != nil {
		return nil, fmt.Errorf("get me: %w", err)
	}
	x.remember(ctx, users, nil)
	for _, u := range users {
		if u, ok := u.(*tg.User); ok && u.Self {
			return &pb.ActionResult{Result: &pb.ActionResult_User{User: event.UserOf(u, u.ID)}}, nil
		}
	}
	return nil, internalf("get me: Telegram's answer did not include the account")
}

func (x *Executor) getChat(ctx context.Context, m *pb.GetChat) (*pb.ActionResult, error) {
	ref := m.GetChat()
	peer, err := x.inputPeer(ctx, ref, "chat")
	if err != nil {
		return nil, err
	}
	switch p := peer.(type) {
	case *tg.InputPeerSelf, *tg.InputPeerUser:
		var in tg.InputUserClass = &tg.InputUserSelf{}
		if u, isUser := p.(*tg.InputPeerUser); isUser {
			in = &tg.InputUser{UserID: u.UserID, AccessHash: u.AccessHash}
		}
		users, err := x.api.UsersGetUsers(ctx, []tg.InputUserClass{in})
		if err != nil {
			return nil, fmt.Errorf("get chat %s: %w", peerString(ref), err)
		}
		x.remember(ctx, users, nil)
		for _, u := range users {
			if u, isUser := u.(*tg.User); isUser && u.ID == ref.Id {
				return chatResult(event.ChatOfUser(u, u.ID, x.self())), nil
			}
		}
		return nil, notFoundf("get chat %s: Telegram does not know this user", peerString(ref))
	case *tg.InputPeerChat:
		full, err := x.api.MessagesGetFullChat(ctx, p.ChatID)
		if err != nil {
			return nil, fmt.Errorf("get chat %s: %w", peerString(ref), err)
		}
		x.remember(ctx, full.Users, full.Chats)
		for _, c := range full.Chats {
			if c, isChat := c.(*tg.Chat); isChat && c.ID == p.ChatID {
				out := event.ChatOfChat(c, c.ID)
				if f, isFull := full.FullChat.(*tg.ChatFull); isFull {
					if parts, hasList := f.Participants.(*tg.ChatParticipants); hasList {
						out.MembersCount = int32(len(parts.Participants))
					}
				}
				return chatResult(out), nil
			}
		}
		return nil, notFoundf("get chat %s: the account is not in this group", peerString(ref))
	case *tg.InputPeerChannel:
		ch, _ := inputChannel(p)
		full, err := x.api.ChannelsGetFullChannel(ctx, ch)
		if err != nil {
			return nil, fmt.Errorf("get chat %s: %w", peerString(ref), err)
		}
		x.remember(ctx, full.Users, full.Chats)
		for _, c := range full.Chats {
			if c, isChannel := c.(*tg.Channel); isChannel && c.ID == p.ChannelID {
				out := event.ChatOfChannel(c, c.ID)
				if f, isFull := full.FullChat.(*tg.ChannelFull); isFull {
					if n, has := f.GetParticipantsCount(); has {
						out.MembersCount = int32(n)
					}
					if s, has := f.GetSlowmodeSeconds(); has {
						out.SlowModeSeconds = int32(s)
					}
				}
				return chatResult(out), nil
			}
		}
		return nil, notFoundf("get chat %s: Telegram's answer did not include the channel", peerString(ref))
	}
	return nil, invalidf("chat: cannot address %s", peerString(ref))
}

// chatOfPeer describes a resolved peer from the entities that came with it.
func (x *Executor) chatOfPeer(p tg.PeerClass, users []tg.UserClass, chats []tg.ChatClass) *pb.Chat {
	e := x.entities(users, chats)
	switch p := p.(type) {
	case *tg.PeerUser:
		return event.ChatOfUser(e.Users[p.UserID], p.UserID, x.self())
	case *tg.PeerChat:
		return event.ChatOfChat(e.Chats[p.ChatID], p.ChatID)
	case *tg.PeerChannel:
		return event.ChatOfChannel(e.Channels[p.ChannelID], p.ChannelID)
	}
	return nil
}

func validUsername(u string) bool {
	if len(u) < 3 || len(u) > 32 {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (x *Executor) resolve(ctx context.Context, m *pb.Resolve) (*pb.ActionResult, error) {
	switch q := m.GetQuery().(type) {
	case *pb.Resolve_Username:
		name := strings.TrimPrefix(strings.TrimSpace(q.Username), "@")
		if !validUsername(name) {
			return nil, invalidf("username: %q is not a username (3-32 letters, digits or _)", q.Username)
		}
		return x.resolveUsername(ctx, name)
	case *pb.Resolve_Phone:
		return x.resolvePhone(ctx, q.Phone, "phone")
	case *pb.Resolve_Link:
		l, err := ParseLink(q.Link)
		if err != nil {
			return nil, err
		}
		switch {
		case l.Username != "":
			return x.resolveUsername(ctx, l.Username)
		case l.Phone != "":
			return x.resolvePhone(ctx, l.Phone, "link")
		case l.InviteHash != "":
			return nil, invalidf("link: %q is an invite link; resolve cannot look inside invites without joining (use the join action with invite_link)", q.Link)
		case l.ChannelID != 0:
			c := x.peers.Channel(l.ChannelID)
			if c == nil {
				return nil, notFoundf("link: channel %d is not known to the account (t.me/c/ links only work for chats the account is in)", l.ChannelID)
			}
			return chatResult(event.ChatOfChannel(c, l.ChannelID)), nil
		}
		return nil, invalidf("link: %q names nothing to resolve", q.Link)
	}
	return nil, invalidf("resolve: one of username, link or phone is required")
}

func (x *Executor) resolveUsername(ctx context.Context, name string) (*pb.ActionResult, error) {
	res, err := x.api.ContactsResolveUsername(ctx, &tg.ContactsResolveUsernameRequest{Username: name})
	if err != nil {
		return nil, fmt.Errorf("resolve @%s: %w", name, err)
	}
	x.remember(ctx, res.Users, res.Chats)
	c := x.chatOfPeer(res.Peer, res.Users, res.Chats)
	if c == nil {
		return nil, internalf("resolve @%s: Telegram answered with an unknown peer type %T", name, res.Peer)
	}
	return chatResult(c), nil
}

func phoneDigits(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// resolvePhone asks contacts.resolvePhone, and falls back on the contact
// list when Telegram refuses it (older layers, privacy, the sandbox).
func (x *Executor) resolvePhone(ctx context.Context, phone, field string) (*pb.ActionResult, error) {
	digits := phoneDigits(phone)
	for _, r := range phone {
		if !(r >= '0' && r <= '9' || strings.ContainsRune("+ -()", r)) {
			return nil, invalidf("%s: %q is not a phone number", field, phone)
		}
	}
	if len(digits) < 5 || len(digits) > 15 {
		return nil, invalidf("%s: %q is not a phone number (5-15 digits)", field, phone)
	}
	res, err := x.api.ContactsResolvePhone(ctx, digits)
	if err == nil {
		x.remember(ctx, res.Users, res.Chats)
		if c := x.chatOfPeer(res.Peer, res.Users, res.Chats); c != nil {
			return chatResult(c), nil
		}
	}
	if err != nil && !tgerr.Is(err, "PHONE_NOT_OCCUPIED", "INPUT_METHOD_INVALID", "PHONE_NUMBER_INVALID") {
		if _, isRPC := tgerr.As(err); !isRPC || isFloodWait(err) {
			return nil, fmt.Errorf("resolve phone: %w", err)
		}
	}
	contacts, cerr := x.api.ContactsGetContacts(ctx, 0)
	if cerr != nil {
		return nil, fmt.Errorf("resolve phone from the contact list: %w", cerr)
	}
	list, isList := contacts.(*tg.ContactsContacts)
	if !isList {
		return nil, internalf("resolve phone: contact list not available (%T)", contacts)
	}
	x.remember(ctx, list.Users, nil)
	for _, u := range list.Users {
		if u, isUser := u.(*tg.User); isUser && u.Phone != "" && phoneDigits(u.Phone) == digits {
			return chatResult(event.ChatOfUser(u, u.ID, x.self())), nil
		}
	}
	return nil, notFoundf("%s: no contact of the account has phone %s", field, phone)
}

func isFloodWait(err error) bool {
	if _, ok := tgerr.AsFloodWait(err); ok {
		return true
	}
	return tgerr.Is(err, "SLOWMODE_WAIT")
}

// Link is what a t.me link points at. Exactly one field is set.
type Link struct {
	Username   string
	InviteHash string
	Phone      string
	// ChannelID is set for t.me/c/ID/... links to private channels.
	ChannelID int64
}

// ParseLink understands t.me, telegram.me and telegram.dog links (with or
// without scheme), and tg://resolve and tg://join links.
func ParseLink(raw string) (Link, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return Link{}, invalidf("link: empty")
	}
	if rest, ok := strings.CutPrefix(s, "tg://"); ok {
		u, err := url.Parse("tg://" + rest)
		if err != nil {
			return Link{}, invalidf("link: %q: %v", raw, err)
		}
		q := u.Query()
		switch u.Host {
		case "resolve":
			if d := q.Get("domain"); validUsername(d) {
				return Link{Username: d}, nil
			}
			if p := q.Get("phone"); p != "" {
				return Link{Phone: p}, nil
			}
		case "join":
			if h := q.Get("invite"); h != "" {
				return Link{InviteHash: h}, nil
			}
		}
		return Link{}, invalidf("link: %q is not a tg://resolve or tg://join link", raw)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Link{}, invalidf("link: %q: %v", raw, err)
	}
	switch strings.ToLower(u.Hostname()) {
	case "t.me", "telegram.me", "telegram.dog", "www.t.me", "www.telegram.me":
	default:
		return Link{}, invalidf("link: %q is not a t.me link", raw)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	first := parts[0]
	switch {
	case first == "":
		return Link{}, invalidf("link: %q has no path", raw)
	case first == "joinchat" && len(parts) > 1 && parts[1] != "":
		return Link{InviteHash: parts[1]}, nil
	case strings.HasPrefix(first, "+") && len(first) > 1:
		// t.me/+15551234567 is a phone; t.me/+AbC... an invite.
		if phoneDigits(first) == first[1:] {
			return Link{Phone: first}, nil
		}
		return Link{InviteHash: first[1:]}, nil
	case first == "c" && len(parts) > 1:
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || id <= 0 {
			return Link{}, invalidf("link: %q: bad channel id", raw)
		}
		return Link{ChannelID: id}, nil
	case first == "s" && len(parts) > 1 && validUsername(parts[1]):
		return Link{Username: parts[1]}, nil
	case validUsername(first):
		return Link{Username: first}, nil
	}
	return Link{}, invalidf("link: %q does not name a user, chat or invite", raw)
}
