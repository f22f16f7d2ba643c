package action

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gotd/td/tg"

	"github.com/tgrunner/tgrunner/core/event"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// maxRawText bounds the text given to any parse mode, so a huge input is
// refused before it is parsed.
const maxRawText = 64 << 10

// peerString is the text form of a peer for messages ("user:123").
func peerString(p *pb.Peer) string {
	switch p.GetKind() {
	case pb.PeerKind_PEER_KIND_USER:
		return "user:" + strconv.FormatInt(p.GetId(), 10)
	case pb.PeerKind_PEER_KIND_CHAT:
		return "chat:" + strconv.FormatInt(p.GetId(), 10)
	case pb.PeerKind_PEER_KIND_CHANNEL:
		return "channel:" + strconv.FormatInt(p.GetId(), 10)
	}
	return fmt.Sprintf("%v:%d", p.GetKind(), p.GetId())
}

// checkPeer validates a peer reference without resolving it.
func checkPeer(p *pb.Peer, field string) error {
	if p == nil {
		return invalidf("%s: missing", field)
	}
	switch p.Kind {
	case pb.PeerKind_PEER_KIND_USER, pb.PeerKind_PEER_KIND_CHAT, pb.PeerKind_PEER_KIND_CHANNEL:
	default:
		return invalidf("%s: peer kind not set", field)
	}
	if p.Id <= 0 {
		return invalidf("%s: id must be positive, got %d", field, p.Id)
	}
	return nil
}

// inputPeer addresses a peer; an unknown one fails with NOT_FOUND.
func (x *Executor) inputPeer(ctx context.Context, p *pb.Peer, field string) (tg.InputPeerClass, error) {
	if err := checkPeer(p, field); err != nil {
		return nil, err
	}
	in, err := x.peers.InputPeer(ctx, p, x.self())
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", field, peerString(p), err)
	}
	return in, nil
}

func inputChannel(in tg.InputPeerClass) (*tg.InputChannel, bool) {
	c, ok := in.(*tg.InputPeerChannel)
	if !ok {
		return nil, false
	}
	return &tg.InputChannel{ChannelID: c.ChannelID, AccessHash: c.AccessHash}, true
}

// checkIDs validates a list of message ids.
func checkIDs(ids []int64, field string) ([]int, error) {
	if len(ids) == 0 {
		return nil, invalidf("%s: empty", field)
	}
	if len(ids) > MaxIDs {
		return nil, invalidf("%s: %d ids, at most %d per call", field, len(ids), MaxIDs)
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		if id <= 0 || id > 1<<31-1 {
			return nil, invalidf("%s[%d]: %d is not a message id", field, i, id)
		}
		out[i] = int(id)
	}
	return out, nil
}

func checkID(id int64, field string) error {
	if id <= 0 || id > 1<<31-1 {
		return invalidf("%s: %d is not a message id", field, id)
	}
	return nil
}

// messageText validates and styles the text of a send or edit.
func (x *Executor) messageText(text string, mode pb.ParseMode, ents []*pb.TextEntity) (styled, error) {
	if strings.TrimSpace(text) == "" {
		return styled{}, invalidf("text: empty")
	}
	if len(text) > maxRawText {
		return styled{}, invalidf("text: %d bytes, far over Telegram's limit of %d UTF-16 units", len(text), MaxTextUnits)
	}
	st, err := x.styleText(text, mode, ents, "text", MaxTextUnits)
	if err != nil {
		return styled{}, err
	}
	if strings.TrimSpace(st.text) == "" {
		return styled{}, invalidf("text: empty after styling")
	}
	return st, nil
}

func (x *Executor) send(ctx context.Context, m *pb.SendMessage) (*pb.ActionResult, error) {
	st, err := x.messageText(m.GetText(), m.GetParseMode(), m.GetEntities())
	if err != nil {
		return nil, err
	}
	if m.GetReplyToMessageId() != 0 {
		if err := checkID(m.GetReplyToMessageId(), "reply_to_message_id"); err != nil {
			return nil, err
		}
	}
	if m.GetScheduleDate() < 0 || m.GetScheduleDate() > 1<<31-1 {
		return nil, invalidf("schedule_date: %d is not a unix time", m.GetScheduleDate())
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	rid, err := x.pickRandomID(m.GetRandomId())
	if err != nil {
		return nil, err
	}
	req := &tg.MessagesSendMessageRequest{
		Peer: peer, Message: st.text, Entities: st.entities, RandomID: rid,
		Silent: m.GetSilent(), NoWebpage: m.GetNoWebpage(), ScheduleDate: int(m.GetScheduleDate()),
	}
	if id := m.GetReplyToMessageId(); id != 0 {
		req.ReplyTo = &tg.InputReplyToMessage{ReplyToMsgID: int(id)}
	}
	res, err := x.api.MessagesSendMessage(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("send to %s: %w", peerString(m.GetChat()), err)
	}
	fallback := x.fallbackMessage(peer, st, int(m.GetReplyToMessageId()), m.GetSilent())
	return messageResult(x.sentOne(ctx, res, rid, fallback)), nil
}

// fallbackMessage builds the sent message from the request, for answers
// that do not carry it whole.
func (x *Executor) fallbackMessage(peer tg.InputPeerClass, st styled, replyTo int, silent bool) func(id, date int) *tg.Message {
	return func(id, date int) *tg.Message {
		return shortSent(&tg.UpdateShortSentMessage{ID: id, Date: date}, peerOfInput(peer, x.self()), x.self(), st.text, st.entities, replyTo, silent)
	}
}

// sentOne extracts the one message a send created. The message was sent
// whatever the answer looks like, so an answer without it still yields a
// message, built from the request (with id 0 if even that is unknown).
func (x *Executor) sentOne(ctx context.Context, res tg.UpdatesClass, rid int64, fallback func(id, date int) *tg.Message) *pb.Message {
	if short, ok := res.(*tg.UpdateShortSentMessage); ok {
		m := fallback(short.ID, short.Date)
		if e, ok := short.GetEntities(); ok {
			m.Entities = e
		}
		m.Media = short.Media
		outputEntities(m, x.self())
		return event.MessageOf(m, x.entities(nil, nil))
	}
	msgs, users, chats, found := sentMessages(res, []int64{rid})
	x.remember(ctx, users, chats)
	if found && len(msgs) == 1 {
		outputEntities(msgs[0], x.self())
		return event.MessageOf(msgs[0], x.entities(users, chats))
	}
	id := 0
	if u, ok := res.(*tg.Updates); ok {
		for _, upd := range u.Updates {
			if mid, ok := upd.(*tg.UpdateMessageID); ok && mid.RandomID == rid {
				id = mid.ID
			}
		}
	}
	m := fallback(id, int(time.Now().Unix()))
	outputEntities(m, x.self())
	return event.MessageOf(m, x.entities(users, chats))
}

func (x *Executor) edit(ctx context.Context, m *pb.EditMessage) (*pb.ActionResult, error) {
	if err := checkID(m.GetMessageId(), "message_id"); err != nil {
		return nil, err
	}
	st, err := x.messageText(m.GetText(), m.GetParseMode(), m.GetEntities())
	if err != nil {
		return nil, err
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	ents := st.entities
	if ents == nil {
		// An explicit empty list clears the old styling.
		ents = []tg.MessageEntityClass{}
	}
	res, err := x.api.MessagesEditMessage(ctx, &tg.MessagesEditMessageRequest{
		Peer: peer, ID: int(m.GetMessageId()), Message: st.text, Entities: ents,
	})
	if err != nil && !errors.Is(err, ErrDoneEarlier) {
		return nil, fmt.Errorf("edit message %d in %s: %w", m.GetMessageId(), peerString(m.GetChat()), err)
	}
	var users []tg.UserClass
	var chats []tg.ChatClass
	if err == nil {
		var msgs []*tg.Message
		msgs, users, chats, _ = sentMessages(res, nil)
		x.remember(ctx, users, chats)
		for _, msg := range msgs {
			if msg.ID == int(m.GetMessageId()) {
				outputEntities(msg, x.self())
				return messageResult(event.MessageOf(msg, x.entities(users, chats))), nil
			}
		}
	}
	// The answer did not carry the message, or was lost: the message is
	// what we asked it to become.
	fb := shortSent(&tg.UpdateShortSentMessage{ID: int(m.GetMessageId())}, peerOfInput(peer, x.self()), x.self(), st.text, st.entities, 0, false)
	fb.EditDate = int(time.Now().Unix())
	outputEntities(fb, x.self())
	return messageResult(event.MessageOf(fb, x.entities(users, chats))), nil
}

func (x *Executor) delete(ctx context.Context, m *pb.DeleteMessages) (*pb.ActionResult, error) {
	ids, err := checkIDs(m.GetMessageIds(), "message_ids")
	if err != nil {
		return nil, err
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	if ch, isChannel := inputChannel(peer); isChannel {
		if _, err := x.api.ChannelsDeleteMessages(ctx, &tg.ChannelsDeleteMessagesRequest{Channel: ch, ID: ids}); err != nil {
			return nil, fmt.Errorf("delete messages in %s: %w", peerString(m.GetChat()), err)
		}
		return ok(), nil
	}
	// messages.deleteMessages takes no chat: ids are global to the account.
	// Check they belong to the named chat, or a caller allowed in one chat
	// could delete in another.
	if _, err := x.fetchInChat(ctx, peer, m.GetChat(), ids, true); err != nil {
		return nil, err
	}
	if _, err := x.api.MessagesDeleteMessages(ctx, &tg.MessagesDeleteMessagesRequest{Revoke: m.GetRevoke(), ID: ids}); err != nil {
		return nil, fmt.Errorf("delete messages in %s: %w", peerString(m.GetChat()), err)
	}
	return ok(), nil
}

func (x *Executor) forward(ctx context.Context, m *pb.ForwardMessages) (*pb.ActionResult, error) {
	ids, err := checkIDs(m.GetMessageIds(), "message_ids")
	if err != nil {
		return nil, err
	}
	from, err := x.inputPeer(ctx, m.GetFromChat(), "from_chat")
	if err != nil {
		return nil, err
	}
	to, err := x.inputPeer(ctx, m.GetToChat(), "to_chat")
	if err != nil {
		return nil, err
	}
	rids := make([]int64, len(ids))
	for i := range rids {
		if base := m.GetRandomId(); base != 0 {
			rids[i] = base + int64(i)
		} else if rids[i], err = x.randomID(); err != nil {
			return nil, err
		}
	}
	res, err := x.api.MessagesForwardMessages(ctx, &tg.MessagesForwardMessagesRequest{
		FromPeer: from, ID: ids, RandomID: rids, ToPeer: to, Silent: m.GetSilent(), DropAuthor: m.GetDropAuthor(),
	})
	if err != nil {
		return nil, fmt.Errorf("forward from %s to %s: %w", peerString(m.GetFromChat()), peerString(m.GetToChat()), err)
	}
	msgs, users, chats, _ := sentMessages(res, rids)
	x.remember(ctx, users, chats)
	e := x.entities(users, chats)
	out := make([]*pb.Message, 0, len(msgs))
	for _, msg := range msgs {
		out = append(out, event.MessageOf(msg, e))
	}
	return messagesResult(out), nil
}

// reactionTL turns the contract's reaction string into Telegram's.
func reactionTL(r string) ([]tg.ReactionClass, error) {
	if r == "" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(r, "custom:"); ok {
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || id == 0 {
			return nil, invalidf("reaction: %q is not custom:<document id>", r)
		}
		return []tg.ReactionClass{&tg.ReactionCustomEmoji{DocumentID: id}}, nil
	}
	if len(r) > 64 || strings.ContainsAny(r, " \t\n") {
		return nil, invalidf("reaction: %q is not an emoji", r)
	}
	return []tg.ReactionClass{&tg.ReactionEmoji{Emoticon: r}}, nil
}

func (x *Executor) react(ctx context.Context, m *pb.SendReaction) (*pb.ActionResult, error) {
	if err := checkID(m.GetMessageId(), "message_id"); err != nil {
		return nil, err
	}
	reaction, err := reactionTL(m.GetReaction())
	if err != nil {
		return nil, err
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	res, err := x.api.MessagesSendReaction(ctx, &tg.MessagesSendReactionRequest{Peer: peer, MsgID: int(m.GetMessageId()), Reaction: reaction})
	if err != nil {
		return nil, fmt.Errorf("react to message %d in %s: %w", m.GetMessageId(), peerString(m.GetChat()), err)
	}
	if u, ok := res.(*tg.Updates); ok {
		x.remember(ctx, u.Users, u.Chats)
	}
	return ok(), nil
}

func (x *Executor) markRead(ctx context.Context, m *pb.MarkRead) (*pb.ActionResult, error) {
	if m.GetMaxId() < 0 || m.GetMaxId() > 1<<31-1 {
		return nil, invalidf("max_id: %d is not a message id", m.GetMaxId())
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	if ch, isChannel := inputChannel(peer); isChannel {
		_, err = x.api.ChannelsReadHistory(ctx, &tg.ChannelsReadHistoryRequest{Channel: ch, MaxID: int(m.GetMaxId())})
	} else {
		_, err = x.api.MessagesReadHistory(ctx, &tg.MessagesReadHistoryRequest{Peer: peer, MaxID: int(m.GetMaxId())})
	}
	if err != nil {
		return nil, fmt.Errorf("mark %s read: %w", peerString(m.GetChat()), err)
	}
	return ok(), nil
}

// typingActions are the names of Typing.action, as core/event produces them.
var typingActions = map[string]func() tg.SendMessageActionClass{
	"":                  func() tg.SendMessageActionClass { return &tg.SendMessageTypingAction{} },
	"typing":            func() tg.SendMessageActionClass { return &tg.SendMessageTypingAction{} },
	"cancel":            func() tg.SendMessageActionClass { return &tg.SendMessageCancelAction{} },
	"record_video":      func() tg.SendMessageActionClass { return &tg.SendMessageRecordVideoAction{} },
	"upload_video":      func() tg.SendMessageActionClass { return &tg.SendMessageUploadVideoAction{} },
	"record_voice":      func() tg.SendMessageActionClass { return &tg.SendMessageRecordAudioAction{} },
	"upload_voice":      func() tg.SendMessageActionClass { return &tg.SendMessageUploadAudioAction{} },
	"upload_photo":      func() tg.SendMessageActionClass { return &tg.SendMessageUploadPhotoAction{} },
	"upload_document":   func() tg.SendMessageActionClass { return &tg.SendMessageUploadDocumentAction{} },
	"choose_sticker":    func() tg.SendMessageActionClass { return &tg.SendMessageChooseStickerAction{} },
	"play_game":         func() tg.SendMessageActionClass { return &tg.SendMessageGamePlayAction{} },
	"record_video_note": func() tg.SendMessageActionClass { return &tg.SendMessageRecordRoundAction{} },
	"upload_video_note": func() tg.SendMessageActionClass { return &tg.SendMessageUploadRoundAction{} },
}

func (x *Executor) typing(ctx context.Context, m *pb.SetTyping) (*pb.ActionResult, error) {
	mk, known := typingActions[m.GetAction()]
	if !known {
		return nil, invalidf("action: unknown typing action %q", m.GetAction())
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	if _, err := x.api.MessagesSetTyping(ctx, &tg.MessagesSetTypingRequest{Peer: peer, Action: mk()}); err != nil {
		return nil, fmt.Errorf("set typing in %s: %w", peerString(m.GetChat()), err)
	}
	return ok(), nil
}
