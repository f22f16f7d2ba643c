package action

import (
	"github.com/gotd/td/tg"
)

// sentMessages finds the messages a send, forward or edit created in
// Telegram's answer. For sends, randomIDs lists the random_id of each
// message in order; the answer ties them to message ids with
// updateMessageID. For edits randomIDs is nil and every edited message is
// returned. Users and chats of the answer are returned for conversion.
func sentMessages(u tg.UpdatesClass, randomIDs []int64) (msgs []*tg.Message, users []tg.UserClass, chats []tg.ChatClass, found bool) {
	var list []tg.UpdateClass
	switch u := u.(type) {
	case *tg.Updates:
		list, users, chats = u.Updates, u.Users, u.Chats
	case *tg.UpdatesCombined:
		list, users, chats = u.Updates, u.Users, u.Chats
	case *tg.UpdateShort:
		list = []tg.UpdateClass{u.Update}
	default:
		return nil, nil, nil, false
	}
	idOf := map[int64]int{} // random_id -> message id
	byID := map[int]*tg.Message{}
	var edited []*tg.Message
	for _, upd := range list {
		var m tg.MessageClass
		switch upd := upd.(type) {
		case *tg.UpdateMessageID:
			idOf[upd.RandomID] = upd.ID
		case *tg.UpdateNewMessage:
			m = upd.Message
		case *tg.UpdateNewChannelMessage:
			m = upd.Message
		case *tg.UpdateNewScheduledMessage:
			m = upd.Message
		case *tg.UpdateEditMessage:
			m = upd.Message
		case *tg.UpdateEditChannelMessage:
			m = upd.Message
		}
		msg, ok := m.(*tg.Message)
		if !ok {
			continue
		}
		switch upd.(type) {
		case *tg.UpdateEditMessage, *tg.UpdateEditChannelMessage:
			edited = append(edited, msg)
		default:
			byID[msg.ID] = msg
		}
	}
	if randomIDs == nil {
		return edited, users, chats, len(edited) > 0
	}
	for _, rid := range randomIDs {
		id, ok := idOf[rid]
		if !ok {
			return msgs, users, chats, false
		}
		m, ok := byID[id]
		if !ok {
			return msgs, users, chats, false
		}
		msgs = append(msgs, m)
	}
	return msgs, users, chats, true
}

// shortSent rebuilds the sent message from updateShortSentMessage, which
// carries only what the sender did not already know.
func shortSent(u *tg.UpdateShortSentMessage, peer tg.PeerClass, self int64, text string, ents []tg.MessageEntityClass, replyTo int, silent bool) *tg.Message {
	m := &tg.Message{
		ID: u.ID, Out: true, PeerID: peer, Date: u.Date, Message: text, Entities: ents, Silent: silent,
		FromID: &tg.PeerUser{UserID: self}, Media: u.Media, TTLPeriod: u.TTLPeriod,
	}
	// When set, Telegram's list is the complete one (it adds detected links).
	if e, ok := u.GetEntities(); ok {
		m.Entities = e
	}
	if replyTo != 0 {
		m.ReplyTo = &tg.MessageReplyHeader{ReplyToMsgID: replyTo}
	}
	return m
}

// peerOfInput is the peer an input peer addresses.
func peerOfInput(in tg.InputPeerClass, self int64) tg.PeerClass {
	switch in := in.(type) {
	case *tg.InputPeerSelf:
		return &tg.PeerUser{UserID: self}
	case *tg.InputPeerUser:
		return &tg.PeerUser{UserID: in.UserID}
	case *tg.InputPeerUserFromMessage:
		return &tg.PeerUser{UserID: in.UserID}
	case *tg.InputPeerChat:
		return &tg.PeerChat{ChatID: in.ChatID}
	case *tg.InputPeerChannel:
		return &tg.PeerChannel{ChannelID: in.ChannelID}
	case *tg.InputPeerChannelFromMessage:
		return &tg.PeerChannel{ChannelID: in.ChannelID}
	}
	return nil
}

// outputEntities replaces the input form of mentions (what a client sends)
// with the message form (what Telegram stores), for messages rebuilt from
// a request or echoed back as sent.
func outputEntities(m *tg.Message, self int64) {
	for i, e := range m.Entities {
		in, ok := e.(*tg.InputMessageEntityMentionName)
		if !ok {
			continue
		}
		var id int64
		switch u := in.UserID.(type) {
		case *tg.InputUser:
			id = u.UserID
		case *tg.InputUserSelf:
			id = self
		}
		m.Entities[i] = &tg.MessageEntityMentionName{Offset: in.Offset, Length: in.Length, UserID: id}
	}
}
