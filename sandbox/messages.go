package sandbox

import (
	"sort"
	"strconv"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
)

// Messages in private chats, basic groups and channels. Private chats and
// basic groups keep one copy per participant with per-account ids, like
// Telegram; channel messages live once in the channel.

var (
	errRandomIDDuplicate = tgerr.New(500, "RANDOM_ID_DUPLICATE")
	errScheduleTooLate   = tgerr.New(400, "SCHEDULE_DATE_TOO_LATE")
	errReactionInvalid   = tgerr.New(400, "REACTION_INVALID")
)

func slowmodeWait(seconds int) error {
	if seconds < 1 {
		seconds = 1
	}
	return tgerr.New(420, "SLOWMODE_WAIT_"+itoa(seconds))
}

func itoa(i int) string { return strconv.Itoa(i) }

// outgoing is a message an account asked to send.
type outgoing struct {
	text         string
	entities     []rawObject
	replyTo      int
	silent       bool
	media        *mediaRef
	fwd          *fwdInfo
	randomID     int64
	scheduleDate int
	fromSchedule bool
	// dated backdates the message (driver only): as if it had been sent
	// then, while delivered now.
	dated int
	// action makes it a service message (joined, left, title changed...).
	action tg.MessageActionClass
}

type fwdInfo struct {
	from peerKey
	date int
	// channel post id when forwarded from a broadcast channel.
	channelPost int
}

func encodeEntities(in []tg.MessageEntityClass) []rawObject {
	out := make([]rawObject, 0, len(in))
	for _, e := range in {
		if e == nil {
			continue
		}
		if raw, err := encodeRaw(e); err == nil {
			out = append(out, raw)
		}
	}
	return out
}

func decodeEntities(in []rawObject) []tg.MessageEntityClass {
	if len(in) == 0 {
		return nil
	}
	out := make([]tg.MessageEntityClass, 0, len(in))
	for _, raw := range in {
		e, err := tg.DecodeMessageEntity(&bin.Buffer{Buf: raw})
		if err == nil {
			out = append(out, e)
		}
	}
	return out
}

// messageClassLocked builds the message as clients see it: a service
// message for actions, a plain message otherwise.
func (s *Server) messageClassLocked(m *message) tg.MessageClass {
	if m.action == nil {
		return s.messageObjLocked(m)
	}
	svc := &tg.MessageService{ID: m.id, Out: m.out, PeerID: m.peer.tg(), Date: m.date, Action: m.action, Post: m.post}
	if m.from != 0 {
		svc.FromID = &tg.PeerUser{UserID: m.from}
	}
	return svc
}

// messageForLocked is the message as viewer sees it: a channel message is
// outgoing only for its author.
func (s *Server) messageForLocked(viewer int64, m *message) tg.MessageClass {
	if m.owner != 0 || m.author != viewer || m.out {
		return s.messageClassLocked(m)
	}
	m.out = true
	defer func() { m.out = false }()
	return s.messageClassLocked(m)
}

// serviceLocked posts a service message by actor in peer, as Telegram does
// for joins, leaves, additions and title changes. Broadcast channels get
// none for membership changes.
func (s *Server) serviceLocked(actor int64, peer peerKey, action tg.MessageActionClass) {
	if _, err := s.sendLocked(actor, 0, peer, outgoing{action: action}, false); err != nil {
		s.log.Debug("service message: " + err.Error())
	}
}

// messageObjLocked builds a fresh tg.Message for a stored copy.
func (s *Server) messageObjLocked(m *message) *tg.Message {
	msg := &tg.Message{
		ID:       m.id,
		Out:      m.out,
		PeerID:   m.peer.tg(),
		Date:     m.date,
		Message:  m.text,
		Entities: decodeEntities(m.entityRaw),
		Silent:   m.silent,
		Post:     m.post,
		EditDate: m.editDate,
	}
	if m.from != 0 {
		msg.FromID = &tg.PeerUser{UserID: m.from}
	}
	if m.replyTo != 0 {
		msg.ReplyTo = &tg.MessageReplyHeader{ReplyToMsgID: m.replyTo}
	}
	if m.fwd != nil {
		msg.FwdFrom = tg.MessageFwdHeader{FromID: m.fwd.from.tg(), Date: m.fwd.date, ChannelPost: m.fwd.channelPost}
	}
	if m.media != nil {
		msg.Media = s.mediaObjLocked(m.media)
	}
	if m.fromSchedule {
		msg.FromScheduled = true
	}
	if len(m.reactions) > 0 {
		msg.Reactions = reactionsObj(m.reactions)
	}
	return msg
}

func reactionsObj(r map[int64]string) tg.MessageReactions {
	counts := map[string]int{}
	for _, e := range r {
		counts[e]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := tg.MessageReactions{Results: []tg.ReactionCount{}}
	for _, k := range keys {
		out.Results = append(out.Results, tg.ReactionCount{Reaction: &tg.ReactionEmoji{Emoticon: k}, Count: counts[k]})
	}
	return out
}

func (acc *account) dialogFor(p peerKey) *dialog {
	d := acc.dialogs[p]
	if d == nil {
		d = &dialog{peer: p}
		acc.dialogs[p] = d
	}
	return d
}

func (acc *account) store(m *message) {
	acc.msgs[m.id] = m
	d := acc.dialogFor(m.peer)
	d.ids = append(d.ids, m.id)
	d.topMessage = m.id
	if !m.out {
		d.unread++
	}
}

func newMessageUpdate(s *Server, m *message) func(pts, count int) tg.UpdateClass {
	return func(pts, count int) tg.UpdateClass {
		return &tg.UpdateNewMessage{Message: s.messageClassLocked(m), Pts: pts, PtsCount: count}
	}
}

func newChannelMessageUpdate(s *Server, m *message) func(pts, count int) tg.UpdateClass {
	return func(pts, count int) tg.UpdateClass {
		return &tg.UpdateNewChannelMessage{Message: s.messageClassLocked(m), Pts: pts, PtsCount: count}
	}
}

// sent is what a send returns to the sender.
type sent struct {
	msg     *message // sender's copy (or the channel message)
	pts     int
	channel bool
}

// mapReply finds the copy of reply target id (in from's box) in owner's box.
func (s *Server) mapReplyLocked(from int64, id int, owner int64) int {
	if id == 0 {
		return 0
	}
	m := s.accounts[from].msgs[id]
	if m == nil || m.copies == nil {
		return 0
	}
	for _, r := range *m.copies {
		if r.owner == owner {
			return r.id
		}
	}
	return 0
}

// sendLocked delivers a message from account `from` (through session, which
// does not get the push) to peer. enforce applies Telegram's limits.
func (s *Server) sendLocked(from, session int64, peer peerKey, o outgoing, enforce bool) (*sent, error) {
	acc := s.accounts[from]
	if acc == nil {
		return nil, errAuthKeyUnregistered
	}
	if o.text == "" && o.media == nil && o.action == nil {
		return nil, errMessageEmpty
	}
	if o.randomID != 0 {
		if acc.randomIDs == nil {
			acc.randomIDs = map[int64]bool{}
		}
		if acc.randomIDs[o.randomID] {
			return nil, errRandomIDDuplicate
		}
	}
	var ch *channel
	if peer.kind == kindChannel {
		ch = s.channels[peer.id]
		if ch == nil {
			return nil, errChannelInvalid
		}
		if !ch.members[from] {
			return nil, errChatWriteForbidden
		}
		admin := ch.creator == from || ch.admins[from]
		if !ch.megagroup && !admin && o.action == nil {
			return nil, errChatAdminRequired
		}
		if enforce && ch.megagroup && ch.slowmode > 0 && !admin && o.scheduleDate == 0 {
			if last, ok := ch.lastSend[from]; ok {
				if wait := last + int64(ch.slowmode) - time.Now().Unix(); wait > 0 {
					return nil, slowmodeWait(int(wait))
				}
			}
		}
	}
	if peer.kind == kindChat {
		g := s.groups[peer.id]
		if g == nil || !g.members[from] {
			return nil, errChatWriteForbidden
		}
	}
	if enforce {
		if peer.kind == kindUser && peer.id != from && s.faults.PeerFloodLimit > 0 {
			target := s.accounts[peer.id]
			_, known := acc.dialogs[peer]
			stranger := !known && !acc.contacts[peer.id] && !target.contacts[from]
			if stranger && !acc.wroteFirst[peer.id] && len(acc.wroteFirst) >= s.faults.PeerFloodLimit {
				return nil, errPeerFlood
			}
		}
		if err := s.chatLimitLocked(from, peer); err != nil {
			return nil, err
		}
	}
	if o.scheduleDate > int(time.Now().Unix()) {
		return s.scheduleLocked(from, session, peer, o)
	}
	if o.randomID != 0 {
		acc.randomIDs[o.randomID] = true
	}
	if peer.kind == kindUser && peer.id != from {
		if _, known := acc.dialogs[peer]; !known && !acc.contacts[peer.id] && !s.accounts[peer.id].contacts[from] {
			acc.wroteFirst[peer.id] = true
		}
	}
	date := now()
	if o.dated > 0 {
		date = o.dated
	}
	defer s.wakeWaitersLocked()
	switch peer.kind {
	case kindChannel:
		ch.nextMsgID++
		m := &message{
			id: ch.nextMsgID, peer: peer, date: date, text: o.text, entityRaw: o.entities,
			replyTo: o.replyTo, silent: o.silent, media: o.media, fwd: o.fwd, fromSchedule: o.fromSchedule,
			author: from, action: o.action,
		}
		if ch.megagroup {
			m.from = from
		} else {
			m.post = true
		}
		if m.replyTo != 0 && ch.msgs[m.replyTo] == nil {
			m.replyTo = 0
		}
		ch.msgs[m.id] = m
		ch.ids = append(ch.ids, m.id)
		if o.action == nil {
			ch.lastSend[from] = time.Now().Unix()
		}
		e := newEntities()
		e.addMessage(m)
		s.emitChannelLocked(ch, 1, e, session, m, newChannelMessageUpdate(s, m))
		s.logMessageLocked(m, from)
		return &sent{msg: m, pts: ch.pts, channel: true}, nil
	default:
		var recipients []int64
		if peer.kind == kindUser {
			recipients = []int64{from}
			if peer.id != from {
				recipients = append(recipients, peer.id)
			}
		} else {
			recipients = append(recipients, from)
			for _, id := range sortedIDs(s.groups[peer.id].members) {
				if id != from {
					recipients = append(recipients, id)
				}
			}
		}
		copies := make([]msgRef, 0, len(recipients))
		var mine *message
		for _, owner := range recipients {
			box := s.accounts[owner]
			dialogPeer := peer
			if peer.kind == kindUser && owner != from {
				dialogPeer = peerKey{kindUser, from}
			}
			m := &message{
				id: box.nextMsgID, owner: owner, peer: dialogPeer, from: from, out: owner == from,
				date: date, text: o.text, entityRaw: o.entities, silent: o.silent, media: o.media,
				fwd: o.fwd, fromSchedule: o.fromSchedule, author: from, action: o.action,
				replyTo: s.mapReplyLocked(from, o.replyTo, owner),
			}
			if owner == from {
				m.replyTo = o.replyTo
				if m.replyTo != 0 && box.msgs[m.replyTo] == nil {
					m.replyTo = 0
				}
				mine = m
			}
			box.nextMsgID++
			box.store(m)
			copies = append(copies, msgRef{owner: owner, id: m.id})
		}
		shared := &copies
		for _, owner := range recipients {
			box := s.accounts[owner]
			m := box.msgs[box.nextMsgID-1]
			m.copies = shared
			e := newEntities()
			e.addMessage(m)
			e.users[owner] = true
			except := int64(0)
			if owner == from {
				except = session
			}
			s.emitLocked(owner, 1, e, except, m, newMessageUpdate(s, m))
		}
		s.logMessageLocked(mine, from)
		return &sent{msg: mine, pts: acc.pts}, nil
	}
}

// sentUpdatesLocked is the sendMessage answer: updateMessageID plus the
// new message with its pts.
func (s *Server) sentUpdatesLocked(viewer int64, r *sent, randomID int64) *tg.Updates {
	e := newEntities()
	e.addMessage(r.msg)
	e.users[viewer] = true
	var upd tg.UpdateClass
	if r.channel {
		upd = &tg.UpdateNewChannelMessage{Message: s.messageForLocked(viewer, r.msg), Pts: r.pts, PtsCount: 1}
	} else {
		upd = &tg.UpdateNewMessage{Message: s.messageForLocked(viewer, r.msg), Pts: r.pts, PtsCount: 1}
	}
	return &tg.Updates{
		Updates: []tg.UpdateClass{&tg.UpdateMessageID{ID: r.msg.id, RandomID: randomID}, upd},
		Users:   s.usersLocked(viewer, e),
		Chats:   s.chatsLocked(viewer, e),
		Date:    now(),
	}
}

func replyToID(r tg.InputReplyToClass) int {
	if m, ok := r.(*tg.InputReplyToMessage); ok {
		return m.ReplyToMsgID
	}
	return 0
}

func (s *Server) scheduleLocked(from, session int64, peer peerKey, o outgoing) (*sent, error) {
	acc := s.accounts[from]
	if time.Until(time.Unix(int64(o.scheduleDate), 0)) > 366*24*time.Hour {
		return nil, errScheduleTooLate
	}
	acc.nextSchedID++
	m := &message{
		id: acc.nextSchedID, owner: from, peer: peer, from: from, out: true, date: o.scheduleDate,
		text: o.text, entityRaw: o.entities, silent: o.silent, media: o.media, replyTo: o.replyTo,
	}
	acc.scheduled[peer] = append(acc.scheduled[peer], m)
	delay := time.Until(time.Unix(int64(o.scheduleDate), 0))
	time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		list := acc.scheduled[peer]
		idx := -1
		for i, x := range list {
			if x == m {
				idx = i
			}
		}
		if idx < 0 {
			return
		}
		acc.scheduled[peer] = append(list[:idx], list[idx+1:]...)
		o.scheduleDate = 0
		o.randomID = 0
		o.fromSchedule = true
		if _, err := s.sendLocked(from, 0, peer, o, false); err != nil {
			s.log.Warn("scheduled send failed: " + err.Error())
			return
		}
		e := newEntities()
		e.addPeer(peer)
		s.pushLocked(from, []tg.UpdateClass{&tg.UpdateDeleteScheduledMessages{Peer: peer.tg(), Messages: []int{m.id}}}, e, 0)
	})
	return &sent{msg: m}, nil
}

// boxLocked returns the message list (ascending ids) and lookup of peer as
// seen by viewer.
func (s *Server) boxLocked(viewer int64, peer peerKey) ([]int, func(int) *message) {
	if peer.kind == kindChannel {
		ch := s.channels[peer.id]
		return ch.ids, func(id int) *message { return ch.msgs[id] }
	}
	acc := s.accounts[viewer]
	d := acc.dialogs[peer]
	if d == nil {
		return nil, func(int) *message { return nil }
	}
	return d.ids, func(id int) *message { return acc.msgs[id] }
}

// historyQuery selects messages newest first like messages.getHistory.
type historyQuery struct {
	offsetID, offsetDate, addOffset, limit, maxID, minID int
	match                                                func(*message) bool
}

func (s *Server) selectLocked(ids []int, get func(int) *message, q historyQuery) (out []*message, total int) {
	var all []*message
	for i := len(ids) - 1; i >= 0; i-- {
		m := get(ids[i])
		if m == nil || m.deleted {
			continue
		}
		if q.match != nil && !q.match(m) {
			continue
		}
		all = append(all, m)
	}
	total = len(all)
	start := 0
	if q.offsetID > 0 {
		start = sort.Search(len(all), func(i int) bool { return all[i].id < q.offsetID })
	} else if q.offsetDate > 0 {
		start = sort.Search(len(all), func(i int) bool { return all[i].date < q.offsetDate })
	}
	start += q.addOffset
	if start < 0 {
		start = 0
	}
	limit := q.limit
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	for i := start; i < len(all) && len(out) < limit; i++ {
		m := all[i]
		if q.maxID > 0 && m.id >= q.maxID {
			continue
		}
		if q.minID > 0 && m.id <= q.minID {
			break
		}
		out = append(out, m)
	}
	return out, total
}

func (s *Server) messagesResultLocked(viewer int64, peer peerKey, msgs []*message, total int) bin.Encoder {
	e := newEntities()
	list := make([]tg.MessageClass, 0, len(msgs))
	for _, m := range msgs {
		e.addMessage(m)
		list = append(list, s.messageForLocked(viewer, m))
	}
	if peer.kind == kindChannel {
		return &tg.MessagesChannelMessages{
			Pts: s.channels[peer.id].pts, Count: total, Messages: list,
			Topics: []tg.ForumTopicClass{}, Chats: s.chatsLocked(viewer, e), Users: s.usersLocked(viewer, e),
		}
	}
	if total > len(msgs) {
		return &tg.MessagesMessagesSlice{Count: total, Messages: list, Topics: []tg.ForumTopicClass{},
			Chats: s.chatsLocked(viewer, e), Users: s.usersLocked(viewer, e)}
	}
	return &tg.MessagesMessages{Messages: list, Topics: []tg.ForumTopicClass{},
		Chats: s.chatsLocked(viewer, e), Users: s.usersLocked(viewer, e)}
}

func (s *Server) canReadLocked(viewer int64, peer peerKey) error {
	if peer.kind == kindChannel {
		ch := s.channels[peer.id]
		if !ch.members[viewer] && ch.username == "" {
			return errChannelPrivate
		}
	}
	return nil
}

func (s *Server) registerMessages() {
	on(s, tg.MessagesSendMessageRequestTypeID, true, func(c *call, req *tg.MessagesSendMessageRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		r, err := s.sendLocked(c.userID, c.sessionID, peer, outgoing{
			text: req.Message, entities: encodeEntities(req.Entities), replyTo: replyToID(req.ReplyTo),
			silent: req.Silent, randomID: req.RandomID, scheduleDate: req.ScheduleDate,
		}, true)
		if err != nil {
			return nil, err
		}
		return s.sendAnswerLocked(c.userID, r, req.RandomID), nil
	})
	on(s, tg.MessagesGetHistoryRequestTypeID, true, func(c *call, req *tg.MessagesGetHistoryRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		if err := s.canReadLocked(c.userID, peer); err != nil {
			return nil, err
		}
		ids, get := s.boxLocked(c.userID, peer)
		msgs, total := s.selectLocked(ids, get, historyQuery{
			offsetID: req.OffsetID, offsetDate: req.OffsetDate, addOffset: req.AddOffset,
			limit: req.Limit, maxID: req.MaxID, minID: req.MinID,
		})
		return s.messagesResultLocked(c.userID, peer, msgs, total), nil
	})
}

// sendAnswerLocked answers a send: scheduled messages come back as
// updateNewScheduledMessage, others as updateMessageID + new message.
func (s *Server) sendAnswerLocked(viewer int64, r *sent, randomID int64) *tg.Updates {
	if r.pts == 0 && !r.channel {
		e := newEntities()
		e.addMessage(r.msg)
		return &tg.Updates{
			Updates: []tg.UpdateClass{
				&tg.UpdateMessageID{ID: r.msg.id, RandomID: randomID},
				&tg.UpdateNewScheduledMessage{Message: s.messageObjLocked(r.msg)},
			},
			Users: s.usersLocked(viewer, e),
			Chats: s.chatsLocked(viewer, e),
			Date:  now(),
		}
	}
	return s.sentUpdatesLocked(viewer, r, randomID)
}
