package sandbox

import (
	"strings"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
)

// Message actions after sending: edit, delete (revoke), forward, read,
// typing, reactions, and lookups (getMessages, getDialogs, search).

func (s *Server) copiesOf(m *message) []msgRef {
	if m.copies == nil {
		return []msgRef{{owner: m.owner, id: m.id}}
	}
	return *m.copies
}

// editLocked changes text of message id in peer as actor.
func (s *Server) editLocked(actor, session int64, peer peerKey, id int, text string, ents []rawObject) (*sent, error) {
	var m *message
	if peer.kind == kindChannel {
		ch := s.channels[peer.id]
		m = ch.msgs[id]
		if m == nil || m.deleted {
			return nil, errMessageIDInvalid
		}
		if m.author != actor {
			return nil, errMessageAuthorReq
		}
		if m.text == text && ents == nil {
			return nil, errMessageNotModified
		}
		m.text, m.entityRaw, m.editDate = text, ents, now()
		e := newEntities()
		e.addMessage(m)
		s.emitChannelLocked(ch, 1, e, session, m, func(pts, count int) tg.UpdateClass {
			return &tg.UpdateEditChannelMessage{Message: s.messageObjLocked(m), Pts: pts, PtsCount: count}
		})
		s.wakeWaitersLocked()
		return &sent{msg: m, pts: ch.pts, channel: true}, nil
	}
	acc := s.accounts[actor]
	m = acc.msgs[id]
	if m == nil || m.deleted || m.peer != peer {
		return nil, errMessageIDInvalid
	}
	if !m.out {
		return nil, errMessageAuthorReq
	}
	if m.text == text && ents == nil {
		return nil, errMessageNotModified
	}
	date := now()
	var mine *sent
	for _, ref := range s.copiesOf(m) {
		cm := s.accounts[ref.owner].msgs[ref.id]
		if cm == nil || cm.deleted {
			continue
		}
		cm.text, cm.entityRaw, cm.editDate = text, ents, date
		e := newEntities()
		e.addMessage(cm)
		except := int64(0)
		if ref.owner == actor {
			except = session
		}
		s.emitLocked(ref.owner, 1, e, except, nil, func(pts, count int) tg.UpdateClass {
			return &tg.UpdateEditMessage{Message: s.messageObjLocked(cm), Pts: pts, PtsCount: count}
		})
		if ref.owner == actor {
			mine = &sent{msg: cm, pts: acc.pts}
		}
	}
	s.wakeWaitersLocked()
	return mine, nil
}

// deleteLocked deletes ids from actor's box; revoke deletes every copy.
// It returns the actor's pts and pts_count.
func (s *Server) deleteLocked(actor, session int64, ids []int, revoke bool) (int, int) {
	acc := s.accounts[actor]
	byOwner := map[int64][]int{}
	for _, id := range ids {
		m := acc.msgs[id]
		if m == nil || m.deleted {
			continue
		}
		refs := []msgRef{{owner: actor, id: id}}
		if revoke {
			refs = s.copiesOf(m)
		}
		for _, ref := range refs {
			cm := s.accounts[ref.owner].msgs[ref.id]
			if cm == nil || cm.deleted {
				continue
			}
			cm.deleted = true
			byOwner[ref.owner] = append(byOwner[ref.owner], ref.id)
		}
	}
	before := acc.pts
	for _, owner := range sortedIDs(keysOf(byOwner)) {
		list := byOwner[owner]
		except := int64(0)
		if owner == actor {
			except = session
		}
		s.emitLocked(owner, len(list), newEntities(), except, nil, func(pts, count int) tg.UpdateClass {
			return &tg.UpdateDeleteMessages{Messages: append([]int(nil), list...), Pts: pts, PtsCount: count}
		})
	}
	s.wakeWaitersLocked()
	return acc.pts, acc.pts - before
}

func keysOf[V any](m map[int64]V) map[int64]bool {
	out := make(map[int64]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func (s *Server) deleteChannelLocked(actor, session int64, ch *channel, ids []int) (int, int, error) {
	admin := ch.creator == actor || ch.admins[actor]
	var list []int
	for _, id := range ids {
		m := ch.msgs[id]
		if m == nil || m.deleted {
			continue
		}
		if !admin && m.author != actor {
			return 0, 0, errMessageAuthorReq
		}
		list = append(list, id)
	}
	if len(list) == 0 {
		return ch.pts, 0, nil
	}
	for _, id := range list {
		ch.msgs[id].deleted = true
	}
	s.emitChannelLocked(ch, len(list), newEntities(), session, nil, func(pts, count int) tg.UpdateClass {
		return &tg.UpdateDeleteChannelMessages{ChannelID: ch.id, Messages: append([]int(nil), list...), Pts: pts, PtsCount: count}
	})
	s.wakeWaitersLocked()
	return ch.pts, len(list), nil
}

// readLocked marks peer's history read up to maxID for actor and tells the
// senders (outbox read) like Telegram.
func (s *Server) readLocked(actor, session int64, peer peerKey, maxID int) (int, int) {
	acc := s.accounts[actor]
	if peer.kind == kindChannel {
		ch := s.channels[peer.id]
		if maxID <= 0 || maxID > ch.nextMsgID {
			maxID = ch.nextMsgID
		}
		if ch.readMax[actor] >= maxID {
			return 0, 0
		}
		ch.readMax[actor] = maxID
		e := newEntities()
		e.chans[ch.id] = true
		s.pushLocked(actor, []tg.UpdateClass{&tg.UpdateReadChannelInbox{ChannelID: ch.id, MaxID: maxID, Pts: ch.pts}}, e, session)
		return 0, 0
	}
	d := acc.dialogs[peer]
	if d == nil {
		return acc.pts, 0
	}
	if maxID <= 0 || maxID > d.topMessage {
		maxID = d.topMessage
	}
	if maxID <= d.readInboxMax {
		return acc.pts, 0
	}
	d.readInboxMax = maxID
	unread := 0
	senders := map[int64]int{}
	for _, id := range d.ids {
		m := acc.msgs[id]
		if m.out || m.deleted {
			continue
		}
		if id > maxID {
			unread++
			continue
		}
		for _, ref := range s.copiesOf(m) {
			if ref.owner == m.from && ref.owner != actor {
				if ref.id > senders[ref.owner] {
					senders[ref.owner] = ref.id
				}
			}
		}
	}
	d.unread = unread
	before := acc.pts
	e := newEntities()
	e.addPeer(peer)
	s.emitLocked(actor, 1, e, session, nil, func(pts, count int) tg.UpdateClass {
		return &tg.UpdateReadHistoryInbox{Peer: peer.tg(), MaxID: maxID, StillUnreadCount: unread, Pts: pts, PtsCount: count}
	})
	for _, sender := range sortedIDs(keysOf(senders)) {
		sd := s.accounts[sender]
		outPeer := peer
		if peer.kind == kindUser {
			outPeer = peerKey{kindUser, actor}
		}
		od := sd.dialogs[outPeer]
		if od == nil || od.readOutboxMax >= senders[sender] {
			continue
		}
		od.readOutboxMax = senders[sender]
		max := senders[sender]
		oe := newEntities()
		oe.addPeer(outPeer)
		s.emitLocked(sender, 1, oe, 0, nil, func(pts, count int) tg.UpdateClass {
			return &tg.UpdateReadHistoryOutbox{Peer: outPeer.tg(), MaxID: max, Pts: pts, PtsCount: count}
		})
	}
	return acc.pts, acc.pts - before
}

// reactLocked sets (or with "" removes) actor's reaction on a message.
func (s *Server) reactLocked(actor, session int64, peer peerKey, id int, emoji string) error {
	var targets []*message
	var chTarget *channel
	if peer.kind == kindChannel {
		chTarget = s.channels[peer.id]
		m := chTarget.msgs[id]
		if m == nil || m.deleted {
			return errMessageIDInvalid
		}
		targets = []*message{m}
	} else {
		m := s.accounts[actor].msgs[id]
		if m == nil || m.deleted || m.peer != peer {
			return errMessageIDInvalid
		}
		for _, ref := range s.copiesOf(m) {
			if cm := s.accounts[ref.owner].msgs[ref.id]; cm != nil && !cm.deleted {
				targets = append(targets, cm)
			}
		}
	}
	for _, m := range targets {
		if m.reactions == nil {
			m.reactions = map[int64]string{}
		}
		if emoji == "" {
			delete(m.reactions, actor)
		} else {
			m.reactions[actor] = emoji
		}
	}
	if chTarget != nil {
		m := targets[0]
		e := newEntities()
		e.chans[chTarget.id] = true
		for member := range chTarget.members {
			s.pushLocked(member, []tg.UpdateClass{&tg.UpdateMessageReactions{Peer: peer.tg(), MsgID: m.id, Reactions: reactionsObj(m.reactions)}}, e, session)
		}
	} else {
		for _, m := range targets {
			e := newEntities()
			e.addPeer(m.peer)
			except := int64(0)
			if m.owner == actor {
				except = session
			}
			s.pushLocked(m.owner, []tg.UpdateClass{&tg.UpdateMessageReactions{Peer: m.peer.tg(), MsgID: m.id, Reactions: reactionsObj(m.reactions)}}, e, except)
		}
	}
	s.wakeWaitersLocked()
	return nil
}

// typingLocked pushes a typing action to the other side.
func (s *Server) typingLocked(actor int64, peer peerKey, action tg.SendMessageActionClass) {
	e := newEntities()
	e.users[actor] = true
	switch peer.kind {
	case kindUser:
		if peer.id != actor {
			s.pushLocked(peer.id, []tg.UpdateClass{&tg.UpdateUserTyping{UserID: actor, Action: action}}, e, 0)
		}
	case kindChat:
		e.chats[peer.id] = true
		for member := range s.groups[peer.id].members {
			if member != actor {
				s.pushLocked(member, []tg.UpdateClass{&tg.UpdateChatUserTyping{ChatID: peer.id, FromID: &tg.PeerUser{UserID: actor}, Action: action}}, e, 0)
			}
		}
	case kindChannel:
		e.chans[peer.id] = true
		for member := range s.channels[peer.id].members {
			if member != actor {
				s.pushLocked(member, []tg.UpdateClass{&tg.UpdateChannelUserTyping{ChannelID: peer.id, FromID: &tg.PeerUser{UserID: actor}, Action: action}}, e, 0)
			}
		}
	}
}

func inputMessageIDs(in []tg.InputMessageClass) []int {
	var out []int
	for _, m := range in {
		if id, ok := m.(*tg.InputMessageID); ok {
			out = append(out, id.ID)
		}
	}
	return out
}

func affected(pts, count int) *tg.MessagesAffectedMessages {
	return &tg.MessagesAffectedMessages{Pts: pts, PtsCount: count}
}

func (s *Server) registerActions() {
	on(s, tg.MessagesEditMessageRequestTypeID, true, func(c *call, req *tg.MessagesEditMessageRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		var ents []rawObject
		if req.Entities != nil {
			ents = encodeEntities(req.Entities)
		}
		r, err := s.editLocked(c.userID, c.sessionID, peer, req.ID, req.Message, ents)
		if err != nil {
			return nil, err
		}
		e := newEntities()
		e.addMessage(r.msg)
		var upd tg.UpdateClass = &tg.UpdateEditMessage{Message: s.messageObjLocked(r.msg), Pts: r.pts, PtsCount: 1}
		if r.channel {
			upd = &tg.UpdateEditChannelMessage{Message: s.messageObjLocked(r.msg), Pts: r.pts, PtsCount: 1}
		}
		return &tg.Updates{Updates: []tg.UpdateClass{upd}, Users: s.usersLocked(c.userID, e), Chats: s.chatsLocked(c.userID, e), Date: now()}, nil
	})
	on(s, tg.MessagesDeleteMessagesRequestTypeID, true, func(c *call, req *tg.MessagesDeleteMessagesRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		pts, count := s.deleteLocked(c.userID, c.sessionID, req.ID, req.Revoke)
		return affected(pts, count), nil
	})
	on(s, tg.ChannelsDeleteMessagesRequestTypeID, true, func(c *call, req *tg.ChannelsDeleteMessagesRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		pts, count, err := s.deleteChannelLocked(c.userID, c.sessionID, ch, req.ID)
		if err != nil {
			return nil, err
		}
		return affected(pts, count), nil
	})
	on(s, tg.MessagesReadHistoryRequestTypeID, true, func(c *call, req *tg.MessagesReadHistoryRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		if peer.kind == kindChannel {
			return nil, errPeerIDInvalid
		}
		pts, count := s.readLocked(c.userID, c.sessionID, peer, req.MaxID)
		return affected(pts, count), nil
	})
	on(s, tg.ChannelsReadHistoryRequestTypeID, true, func(c *call, req *tg.ChannelsReadHistoryRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if !ch.members[c.userID] {
			return nil, errUserNotParticipant
		}
		s.readLocked(c.userID, c.sessionID, peerKey{kindChannel, ch.id}, req.MaxID)
		return &tg.BoolTrue{}, nil
	})
	on(s, tg.MessagesSetTypingRequestTypeID, true, func(c *call, req *tg.MessagesSetTypingRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		action := req.Action
		if action == nil {
			action = &tg.SendMessageTypingAction{}
		}
		// Re-encode so the pushed object is not shared with the request.
		raw, err := encodeRaw(action)
		if err != nil {
			return nil, errInputFetchFail
		}
		fresh, err := tg.DecodeSendMessageAction(&bin.Buffer{Buf: raw})
		if err != nil {
			return nil, errInputFetchFail
		}
		s.typingLocked(c.userID, peer, fresh)
		return &tg.BoolTrue{}, nil
	})
	on(s, tg.MessagesSendReactionRequestTypeID, true, func(c *call, req *tg.MessagesSendReactionRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		emoji := ""
		for _, r := range req.Reaction {
			e, ok := r.(*tg.ReactionEmoji)
			if !ok {
				return nil, errReactionInvalid
			}
			emoji = e.Emoticon
		}
		if err := s.reactLocked(c.userID, c.sessionID, peer, req.MsgID, emoji); err != nil {
			return nil, err
		}
		return &tg.Updates{Updates: []tg.UpdateClass{}, Users: []tg.UserClass{}, Chats: []tg.ChatClass{}, Date: now()}, nil
	})
	on(s, tg.MessagesForwardMessagesRequestTypeID, true, func(c *call, req *tg.MessagesForwardMessagesRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		from, err := s.resolveInputPeerLocked(c.userID, req.FromPeer)
		if err != nil {
			return nil, err
		}
		to, err := s.resolveInputPeerLocked(c.userID, req.ToPeer)
		if err != nil {
			return nil, err
		}
		if err := s.canReadLocked(c.userID, from); err != nil {
			return nil, err
		}
		_, get := s.boxLocked(c.userID, from)
		res := &tg.Updates{Date: now()}
		e := newEntities()
		for i, id := range req.ID {
			src := get(id)
			if src == nil || src.deleted || (from.kind != kindChannel && src.peer != from) {
				return nil, errMessageIDInvalid
			}
			o := outgoing{text: src.text, entities: src.entityRaw, media: src.media, silent: req.Silent}
			if i < len(req.RandomID) {
				o.randomID = req.RandomID[i]
			}
			if !req.DropAuthor {
				fi := &fwdInfo{from: peerKey{kindUser, src.author}, date: src.date}
				if src.fwd != nil {
					fi = src.fwd
				} else if src.post {
					fi = &fwdInfo{from: from, date: src.date, channelPost: src.id}
				}
				o.fwd = fi
			}
			r, err := s.sendLocked(c.userID, c.sessionID, to, o, true)
			if err != nil {
				return nil, err
			}
			e.addMessage(r.msg)
			res.Updates = append(res.Updates, &tg.UpdateMessageID{ID: r.msg.id, RandomID: o.randomID})
			if r.channel {
				res.Updates = append(res.Updates, &tg.UpdateNewChannelMessage{Message: s.messageObjLocked(r.msg), Pts: r.pts, PtsCount: 1})
			} else {
				res.Updates = append(res.Updates, &tg.UpdateNewMessage{Message: s.messageObjLocked(r.msg), Pts: r.pts, PtsCount: 1})
			}
		}
		res.Users = s.usersLocked(c.userID, e)
		res.Chats = s.chatsLocked(c.userID, e)
		return res, nil
	})
	on(s, tg.MessagesGetMessagesRequestTypeID, true, func(c *call, req *tg.MessagesGetMessagesRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		acc := s.accounts[c.userID]
		var msgs []*message
		for _, id := range inputMessageIDs(req.ID) {
			if m := acc.msgs[id]; m != nil && !m.deleted {
				msgs = append(msgs, m)
			}
		}
		return s.messagesResultLocked(c.userID, peerKey{}, msgs, len(msgs)), nil
	})
	on(s, tg.ChannelsGetMessagesRequestTypeID, true, func(c *call, req *tg.ChannelsGetMessagesRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		peer := peerKey{kindChannel, ch.id}
		if err := s.canReadLocked(c.userID, peer); err != nil {
			return nil, err
		}
		var msgs []*message
		for _, id := range inputMessageIDs(req.ID) {
			if m := ch.msgs[id]; m != nil && !m.deleted {
				msgs = append(msgs, m)
			}
		}
		return s.messagesResultLocked(c.userID, peer, msgs, len(msgs)), nil
	})
	on(s, tg.MessagesSearchRequestTypeID, true, func(c *call, req *tg.MessagesSearchRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		if err := s.canReadLocked(c.userID, peer); err != nil {
			return nil, err
		}
		var fromID int64
		if req.FromID != nil {
			fp, err := s.resolveInputPeerLocked(c.userID, req.FromID)
			if err != nil {
				return nil, err
			}
			fromID = fp.id
		}
		q := strings.ToLower(req.Q)
		ids, get := s.boxLocked(c.userID, peer)
		msgs, total := s.selectLocked(ids, get, historyQuery{
			offsetID: req.OffsetID, addOffset: req.AddOffset, limit: req.Limit, maxID: req.MaxID, minID: req.MinID,
			match: func(m *message) bool {
				if q != "" && !strings.Contains(strings.ToLower(m.text), q) {
					return false
				}
				if fromID != 0 && m.author != fromID {
					return false
				}
				if req.MinDate > 0 && m.date < req.MinDate {
					return false
				}
				if req.MaxDate > 0 && m.date > req.MaxDate {
					return false
				}
				return true
			},
		})
		return s.messagesResultLocked(c.userID, peer, msgs, total), nil
	})
	on(s, tg.MessagesGetDialogsRequestTypeID, true, func(c *call, req *tg.MessagesGetDialogsRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dialogsLocked(c.userID, req), nil
	})
}

type dialogEntry struct {
	d   tg.Dialog
	top *message
}

func (s *Server) dialogsLocked(viewer int64, req *tg.MessagesGetDialogsRequest) bin.Encoder {
	acc := s.accounts[viewer]
	var list []dialogEntry
	for p, d := range acc.dialogs {
		var top *message
		for i := len(d.ids) - 1; i >= 0; i-- {
			if m := acc.msgs[d.ids[i]]; m != nil && !m.deleted {
				top = m
				break
			}
		}
		if top == nil {
			continue
		}
		list = append(list, dialogEntry{d: tg.Dialog{
			Peer: p.tg(), TopMessage: top.id, ReadInboxMaxID: d.readInboxMax, ReadOutboxMaxID: d.readOutboxMax,
			UnreadCount: d.unread, NotifySettings: tg.PeerNotifySettings{},
		}, top: top})
	}
	for _, ch := range s.channels {
		if !ch.members[viewer] {
			continue
		}
		var top *message
		for i := len(ch.ids) - 1; i >= 0; i-- {
			if m := ch.msgs[ch.ids[i]]; m != nil && !m.deleted {
				top = m
				break
			}
		}
		d := tg.Dialog{Peer: &tg.PeerChannel{ChannelID: ch.id}, ReadInboxMaxID: ch.readMax[viewer],
			NotifySettings: tg.PeerNotifySettings{}, Pts: ch.pts}
		if top != nil {
			d.TopMessage = top.id
			for _, id := range ch.ids {
				if m := ch.msgs[id]; id > ch.readMax[viewer] && !m.deleted && m.author != viewer {
					d.UnreadCount++
				}
			}
		} else {
			top = &message{id: 0, peer: peerKey{kindChannel, ch.id}, date: ch.date}
		}
		list = append(list, dialogEntry{d: d, top: top})
	}
	// Newest first, like Telegram.
	sortDialogs(list)
	start := 0
	if req.OffsetDate > 0 {
		for start < len(list) && list[start].top.date >= req.OffsetDate {
			start++
		}
	}
	limit := req.Limit
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	end := start + limit
	if end > len(list) {
		end = len(list)
	}
	e := newEntities()
	res := &tg.MessagesDialogsSlice{Count: len(list)}
	for _, de := range list[start:end] {
		res.Dialogs = append(res.Dialogs, &de.d)
		e.addPeer(peerKeyOf(de.d.Peer))
		if de.top.id != 0 {
			e.addMessage(de.top)
			res.Messages = append(res.Messages, s.messageClassLocked(de.top))
		}
	}
	res.Users = s.usersLocked(viewer, e)
	res.Chats = s.chatsLocked(viewer, e)
	if res.Dialogs == nil {
		res.Dialogs = []tg.DialogClass{}
	}
	if res.Messages == nil {
		res.Messages = []tg.MessageClass{}
	}
	if end == len(list) && start == 0 {
		return &tg.MessagesDialogs{Dialogs: res.Dialogs, Messages: res.Messages, Chats: res.Chats, Users: res.Users}
	}
	return res
}

func sortDialogs(list []dialogEntry) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && dialogLess(list[j], list[j-1]); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

func dialogLess(a, b dialogEntry) bool {
	if a.top.date != b.top.date {
		return a.top.date > b.top.date
	}
	ka, kb := peerKeyOf(a.d.Peer), peerKeyOf(b.d.Peer)
	if ka.kind != kb.kind {
		return ka.kind < kb.kind
	}
	return ka.id < kb.id
}

var _ = time.Second
