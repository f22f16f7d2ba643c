package event

import (
	"strings"

	"github.com/gotd/td/tg"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// PeerOf converts an MTProto peer into the contract's stable reference.
func PeerOf(p tg.PeerClass) *pb.Peer {
	switch p := p.(type) {
	case *tg.PeerUser:
		return &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: p.UserID}
	case *tg.PeerChat:
		return &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHAT, Id: p.ChatID}
	case *tg.PeerChannel:
		return &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: p.ChannelID}
	}
	return nil
}

// UserOf converts a user entity.
func UserOf(u *tg.User, selfID int64) *pb.User {
	if u == nil {
		return nil
	}
	return &pb.User{
		Id:        u.ID,
		FirstName: u.FirstName,
		LastName:  u.LastName,
		Username:  u.Username,
		Bot:       u.Bot,
		Self:      u.Self || u.ID == selfID,
		Contact:   u.Contact,
	}
}

// ChatOfUser is the private chat with a user (Saved Messages for self).
func ChatOfUser(u *tg.User, id, selfID int64) *pb.Chat {
	c := &pb.Chat{Peer: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_USER, Id: id}, Type: pb.ChatType_CHAT_TYPE_PRIVATE}
	if id == selfID {
		c.Type = pb.ChatType_CHAT_TYPE_SELF
		c.Title = "Saved Messages"
	}
	if u != nil {
		if id != selfID {
			c.Title = strings.TrimSpace(u.FirstName + " " + u.LastName)
		}
		c.Username = u.Username
	}
	return c
}

// ChatOfChat converts a basic group.
func ChatOfChat(ch *tg.Chat, id int64) *pb.Chat {
	c := &pb.Chat{Peer: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHAT, Id: id}, Type: pb.ChatType_CHAT_TYPE_GROUP}
	if ch != nil {
		c.Title = ch.Title
		c.MembersCount = int32(ch.ParticipantsCount)
	}
	return c
}

// ChatOfChannel converts a supergroup or broadcast channel.
func ChatOfChannel(ch *tg.Channel, id int64) *pb.Chat {
	c := &pb.Chat{Peer: &pb.Peer{Kind: pb.PeerKind_PEER_KIND_CHANNEL, Id: id}, Type: pb.ChatType_CHAT_TYPE_SUPERGROUP}
	if ch != nil {
		c.Title = ch.Title
		c.Username = ch.Username
		if n, ok := ch.GetParticipantsCount(); ok {
			c.MembersCount = int32(n)
		}
		if ch.Broadcast {
			c.Type = pb.ChatType_CHAT_TYPE_CHANNEL
		}
	}
	return c
}

func (e Entities) chatOf(p tg.PeerClass) *pb.Chat {
	switch p := p.(type) {
	case *tg.PeerUser:
		return ChatOfUser(e.user(p.UserID), p.UserID, e.SelfID)
	case *tg.PeerChat:
		return ChatOfChat(e.chat(p.ChatID), p.ChatID)
	case *tg.PeerChannel:
		return ChatOfChannel(e.channel(p.ChannelID), p.ChannelID)
	}
	return &pb.Chat{}
}

func (e Entities) userOf(id int64) *pb.User {
	if u := e.user(id); u != nil {
		return UserOf(u, e.SelfID)
	}
	return &pb.User{Id: id, Self: id == e.SelfID}
}

func (e Entities) userOfPeer(p tg.PeerClass) *pb.User {
	if u, ok := p.(*tg.PeerUser); ok {
		return e.userOf(u.UserID)
	}
	return nil
}

// MessageOf converts a message with the given entities.
func MessageOf(m *tg.Message, e Entities) *pb.Message { return e.message(m) }

func (e Entities) message(m *tg.Message) *pb.Message {
	out := &pb.Message{
		Id:        int64(m.ID),
		Chat:      e.chatOf(m.PeerID),
		Outgoing:  m.Out,
		Date:      int64(m.Date),
		EditDate:  int64(m.EditDate),
		Text:      m.Message,
		Entities:  TextEntities(m.Entities),
		Silent:    m.Silent,
		Mentioned: m.Mentioned,
		GroupedId: m.GroupedID,
		Pinned:    m.Pinned,
		Views:     int32(m.Views),
		Post:      m.Post,
		Media:     MediaOf(m.Media),
		Reactions: reactions(m.Reactions),
	}
	e.setSender(out, m.FromID, m.PeerID, m.Out)
	if h, ok := m.ReplyTo.(*tg.MessageReplyHeader); ok {
		out.ReplyToMessageId = int64(h.ReplyToMsgID)
	}
	if f, ok := m.GetFwdFrom(); ok {
		out.Forward = &pb.ForwardInfo{
			From:          PeerOf(f.FromID),
			FromName:      f.FromName,
			Date:          int64(f.Date),
			FromChat:      PeerOf(f.SavedFromPeer),
			FromMessageId: int64(f.SavedFromMsgID),
		}
		if f.ChannelPost != 0 {
			out.Forward.FromMessageId = int64(f.ChannelPost)
		}
	}
	return out
}

// setSender fills the author. Telegram omits from_id in private chats: the
// author is then the other side for incoming messages and the account for
// outgoing ones.
func (e Entities) setSender(out *pb.Message, from, peer tg.PeerClass, outgoing bool) {
	if from == nil {
		switch {
		case outgoing:
			from = &tg.PeerUser{UserID: e.SelfID}
		default:
			from = peer
		}
	}
	out.From = PeerOf(from)
	if u, ok := from.(*tg.PeerUser); ok {
		out.Sender = e.userOf(u.UserID)
	}
}

func (e Entities) chatAction(m *tg.MessageService) *pb.ChatAction {
	a := &pb.ChatAction{Chat: e.chatOf(m.PeerID), MessageId: int64(m.ID)}
	from := m.FromID
	if from == nil && m.Out {
		from = &tg.PeerUser{UserID: e.SelfID}
	}
	a.Actor = e.userOfPeer(from)
	switch act := m.Action.(type) {
	case *tg.MessageActionChatCreate:
		a.Action, a.Title = pb.ChatActionKind_CHAT_ACTION_KIND_CREATED, act.Title
		a.Users = e.users(act.Users)
	case *tg.MessageActionChannelCreate:
		a.Action, a.Title = pb.ChatActionKind_CHAT_ACTION_KIND_CREATED, act.Title
	case *tg.MessageActionChatEditTitle:
		a.Action, a.Title = pb.ChatActionKind_CHAT_ACTION_KIND_TITLE_CHANGED, act.Title
	case *tg.MessageActionChatEditPhoto, *tg.MessageActionChatDeletePhoto:
		a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_PHOTO_CHANGED
	case *tg.MessageActionChatAddUser:
		a.Users = e.users(act.Users)
		a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_ADDED
		if len(act.Users) == 1 && a.Actor != nil && act.Users[0] == a.Actor.Id {
			a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_JOINED
		}
	case *tg.MessageActionChatJoinedByLink, *tg.MessageActionChatJoinedByRequest:
		a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_JOINED
		if a.Actor != nil {
			a.Users = []*pb.User{a.Actor}
		}
	case *tg.MessageActionChatDeleteUser:
		a.Users = e.users([]int64{act.UserID})
		a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_REMOVED
		if a.Actor != nil && act.UserID == a.Actor.Id {
			a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_LEFT
		}
	case *tg.MessageActionPinMessage:
		a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_PINNED
		if h, ok := m.ReplyTo.(*tg.MessageReplyHeader); ok {
			a.PinnedMessageId = int64(h.ReplyToMsgID)
		}
	case *tg.MessageActionEmpty:
		return nil
	default:
		a.Action = pb.ChatActionKind_CHAT_ACTION_KIND_OTHER
	}
	return a
}

func (e Entities) users(ids []int64) []*pb.User {
	out := make([]*pb.User, 0, len(ids))
	for _, id := range ids {
		out = append(out, e.userOf(id))
	}
	return out
}

func reactions(r tg.MessageReactions) []*pb.ReactionCount {
	if len(r.Results) == 0 {
		return nil
	}
	out := make([]*pb.ReactionCount, 0, len(r.Results))
	for _, c := range r.Results {
		out = append(out, &pb.ReactionCount{Reaction: ReactionString(c.Reaction), Count: int32(c.Count), Chosen: c.ChosenOrder > 0})
	}
	return out
}

// ReactionString is the contract's text form of a reaction.
func ReactionString(r tg.ReactionClass) string {
	switch r := r.(type) {
	case *tg.ReactionEmoji:
		return r.Emoticon
	case *tg.ReactionCustomEmoji:
		return "custom:" + itoa(r.DocumentID)
	case *tg.ReactionPaid:
		return "paid"
	}
	return ""
}

// MediaOf describes a message's media.
func MediaOf(m tg.MessageMediaClass) *pb.Media {
	switch m := m.(type) {
	case nil, *tg.MessageMediaEmpty:
		return nil
	case *tg.MessageMediaPhoto:
		return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_PHOTO, MimeType: "image/jpeg"}
	case *tg.MessageMediaDocument:
		doc, ok := m.Document.(*tg.Document)
		if !ok {
			return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_DOCUMENT}
		}
		out := &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_DOCUMENT, MimeType: doc.MimeType, Size: doc.Size}
		for _, a := range doc.Attributes {
			switch a := a.(type) {
			case *tg.DocumentAttributeFilename:
				out.FileName = a.FileName
			case *tg.DocumentAttributeVideo:
				out.Kind = pb.MediaKind_MEDIA_KIND_VIDEO
				if a.RoundMessage {
					out.Kind = pb.MediaKind_MEDIA_KIND_VIDEO_NOTE
				}
			case *tg.DocumentAttributeAudio:
				out.Kind = pb.MediaKind_MEDIA_KIND_AUDIO
				if a.Voice {
					out.Kind = pb.MediaKind_MEDIA_KIND_VOICE
				}
			case *tg.DocumentAttributeSticker:
				out.Kind = pb.MediaKind_MEDIA_KIND_STICKER
			case *tg.DocumentAttributeAnimated:
				out.Kind = pb.MediaKind_MEDIA_KIND_ANIMATION
			}
		}
		return out
	case *tg.MessageMediaContact:
		return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_CONTACT}
	case *tg.MessageMediaGeo, *tg.MessageMediaGeoLive, *tg.MessageMediaVenue:
		return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_GEO}
	case *tg.MessageMediaPoll:
		return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_POLL}
	case *tg.MessageMediaWebPage:
		return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_WEBPAGE}
	}
	return &pb.Media{Kind: pb.MediaKind_MEDIA_KIND_OTHER}
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
