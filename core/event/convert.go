package event

import (
	"fmt"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Converted is one event with its journal keys.
type Converted struct {
	Event *pb.Event
	// DedupKey identifies the update across a getDifference replay; empty
	// for ephemeral updates (typing, status) that are never replayed.
	DedupKey string
	// ChatKey orders events: events with the same key are delivered in
	// journal order. "common" for updates Telegram gives no chat for.
	ChatKey string
}

// Convert turns one update into an event. ok is false for updates that have
// no place in the event model (they are dropped, not journaled).
func Convert(u tg.UpdateClass, e Entities, date int) (c Converted, ok bool) {
	ev := &pb.Event{Date: int64(date)}
	switch u := u.(type) {
	case *tg.UpdateNewMessage:
		return convertNew(ev, u.Message, u.Pts, e)
	case *tg.UpdateNewChannelMessage:
		return convertNew(ev, u.Message, u.Pts, e)
	case *tg.UpdateEditMessage:
		return convertEdit(ev, u.Message, u.Pts, e)
	case *tg.UpdateEditChannelMessage:
		return convertEdit(ev, u.Message, u.Pts, e)
	case *tg.UpdateDeleteMessages:
		ev.Kind = pb.EventKind_EVENT_KIND_DELETED_MESSAGES
		ev.Payload = &pb.Event_DeletedMessages{DeletedMessages: &pb.DeletedMessages{MessageIds: ints(u.Messages)}}
		return Converted{Event: ev, DedupKey: fmt.Sprintf("del:common:%d", u.Pts), ChatKey: "common"}, true
	case *tg.UpdateDeleteChannelMessages:
		chat := e.chatOf(&tg.PeerChannel{ChannelID: u.ChannelID})
		ev.Kind = pb.EventKind_EVENT_KIND_DELETED_MESSAGES
		ev.Payload = &pb.Event_DeletedMessages{DeletedMessages: &pb.DeletedMessages{Chat: chat, MessageIds: ints(u.Messages)}}
		key := chatKey(chat.Peer)
		return Converted{Event: ev, DedupKey: fmt.Sprintf("del:%s:%d", key, u.Pts), ChatKey: key}, true
	case *tg.UpdateMessageReactions:
		chat := e.chatOf(u.Peer)
		ev.Kind = pb.EventKind_EVENT_KIND_REACTION
		r := &pb.Reaction{Chat: chat, MessageId: int64(u.MsgID), Reactions: reactions(u.Reactions)}
		if len(u.Reactions.RecentReactions) > 0 {
			if p, ok := u.Reactions.RecentReactions[0].PeerID.(*tg.PeerUser); ok {
				r.User = e.userOf(p.UserID)
			}
		}
		ev.Payload = &pb.Event_Reaction{Reaction: r}
		return Converted{Event: ev, ChatKey: chatKey(chat.Peer)}, true
	case *tg.UpdateReadHistoryInbox:
		return convertRead(ev, e.chatOf(u.Peer), u.MaxID, false, u.Pts)
	case *tg.UpdateReadHistoryOutbox:
		return convertRead(ev, e.chatOf(u.Peer), u.MaxID, true, u.Pts)
	case *tg.UpdateReadChannelInbox:
		return convertRead(ev, e.chatOf(&tg.PeerChannel{ChannelID: u.ChannelID}), u.MaxID, false, u.Pts)
	case *tg.UpdateReadChannelOutbox:
		return convertRead(ev, e.chatOf(&tg.PeerChannel{ChannelID: u.ChannelID}), u.MaxID, true, 0)
	case *tg.UpdateUserTyping:
		return convertTyping(ev, e.chatOf(&tg.PeerUser{UserID: u.UserID}), e.userOf(u.UserID), u.Action)
	case *tg.UpdateChatUserTyping:
		return convertTyping(ev, e.chatOf(&tg.PeerChat{ChatID: u.ChatID}), e.userOfPeer(u.FromID), u.Action)
	case *tg.UpdateChannelUserTyping:
		return convertTyping(ev, e.chatOf(&tg.PeerChannel{ChannelID: u.ChannelID}), e.userOfPeer(u.FromID), u.Action)
	case *tg.UpdateUserStatus:
		ev.Kind = pb.EventKind_EVENT_KIND_USER_STATUS
		st := &pb.UserStatus{User: e.userOf(u.UserID)}
		switch s := u.Status.(type) {
		case *tg.UserStatusOnline:
			st.Online, st.At = true, int64(s.Expires)
		case *tg.UserStatusOffline:
			st.At = int64(s.WasOnline)
		}
		ev.Payload = &pb.Event_UserStatus{UserStatus: st}
		return Converted{Event: ev, ChatKey: fmt.Sprintf("user:%d", u.UserID)}, true
	}
	return Converted{}, false
}

// Raw encodes an update as TL, for consumers that want the raw bytes.
func Raw(u tg.UpdateClass) []byte {
	var b bin.Buffer
	if err := u.Encode(&b); err != nil {
		return nil
	}
	return b.Buf
}

func convertNew(ev *pb.Event, m tg.MessageClass, pts int, e Entities) (Converted, bool) {
	switch m := m.(type) {
	case *tg.Message:
		msg := e.message(m)
		ev.Kind = pb.EventKind_EVENT_KIND_NEW_MESSAGE
		ev.Payload = &pb.Event_NewMessage{NewMessage: msg}
		key := chatKey(msg.Chat.Peer)
		return Converted{Event: ev, DedupKey: fmt.Sprintf("new:%s:%d", key, m.ID), ChatKey: key}, true
	case *tg.MessageService:
		a := e.chatAction(m)
		if a == nil {
			return Converted{}, false
		}
		ev.Kind = pb.EventKind_EVENT_KIND_CHAT_ACTION
		ev.Payload = &pb.Event_ChatAction{ChatAction: a}
		key := chatKey(a.Chat.Peer)
		return Converted{Event: ev, DedupKey: fmt.Sprintf("new:%s:%d", key, m.ID), ChatKey: key}, true
	}
	return Converted{}, false
}

func convertEdit(ev *pb.Event, m tg.MessageClass, pts int, e Entities) (Converted, bool) {
	msg, ok := m.(*tg.Message)
	if !ok {
		return Converted{}, false
	}
	out := e.message(msg)
	ev.Kind = pb.EventKind_EVENT_KIND_EDITED_MESSAGE
	ev.Payload = &pb.Event_EditedMessage{EditedMessage: out}
	key := chatKey(out.Chat.Peer)
	// An edit is identified by its pts; reactions also arrive as edits
	// without a new edit_date, so edit_date alone would merge them.
	return Converted{Event: ev, DedupKey: fmt.Sprintf("edit:%s:%d:%d:%d", key, msg.ID, msg.EditDate, pts), ChatKey: key}, true
}

func convertRead(ev *pb.Event, chat *pb.Chat, maxID int, outbox bool, pts int) (Converted, bool) {
	ev.Kind = pb.EventKind_EVENT_KIND_READ
	ev.Payload = &pb.Event_Read{Read: &pb.ReadHistory{Chat: chat, MaxId: int64(maxID), Outbox: outbox}}
	key := chatKey(chat.Peer)
	dir := "in"
	if outbox {
		dir = "out"
	}
	return Converted{Event: ev, DedupKey: fmt.Sprintf("read:%s:%s:%d", key, dir, maxID), ChatKey: key}, true
}

func convertTyping(ev *pb.Event, chat *pb.Chat, user *pb.User, action tg.SendMessageActionClass) (Converted, bool) {
	ev.Kind = pb.EventKind_EVENT_KIND_TYPING
	ev.Payload = &pb.Event_Typing{Typing: &pb.Typing{Chat: chat, User: user, Action: typingAction(action)}}
	return Converted{Event: ev, ChatKey: chatKey(chat.Peer)}, true
}

func typingAction(a tg.SendMessageActionClass) string {
	switch a.(type) {
	case *tg.SendMessageTypingAction:
		return "typing"
	case *tg.SendMessageCancelAction:
		return "cancel"
	case *tg.SendMessageRecordVideoAction:
		return "record_video"
	case *tg.SendMessageUploadVideoAction:
		return "upload_video"
	case *tg.SendMessageRecordAudioAction:
		return "record_voice"
	case *tg.SendMessageUploadAudioAction:
		return "upload_voice"
	case *tg.SendMessageUploadPhotoAction:
		return "upload_photo"
	case *tg.SendMessageUploadDocumentAction:
		return "upload_document"
	case *tg.SendMessageChooseStickerAction:
		return "choose_sticker"
	case *tg.SendMessageGamePlayAction:
		return "play_game"
	case *tg.SendMessageRecordRoundAction:
		return "record_video_note"
	case *tg.SendMessageUploadRoundAction:
		return "upload_video_note"
	case nil:
		return "typing"
	}
	return "other"
}

func ints(in []int) []int64 {
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

// ChatKeyOf is the journal ordering key of a peer ("user:1", "chat:2",
// "channel:3").
func ChatKeyOf(p *pb.Peer) string { return chatKey(p) }

func chatKey(p *pb.Peer) string {
	if p == nil {
		return "common"
	}
	switch p.Kind {
	case pb.PeerKind_PEER_KIND_USER:
		return fmt.Sprintf("user:%d", p.Id)
	case pb.PeerKind_PEER_KIND_CHAT:
		return fmt.Sprintf("chat:%d", p.Id)
	case pb.PeerKind_PEER_KIND_CHANNEL:
		return fmt.Sprintf("channel:%d", p.Id)
	}
	return "common"
}
