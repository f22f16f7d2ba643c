package sandbox

import (
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
)

// Updates as Telegram sends them: a pts log per account and per channel,
// live pushes carrying the users and chats they reference, and
// getDifference / getChannelDifference that slice long backlogs.

func now() int { return int(time.Now().Unix()) }

// emitLocked appends an update to account userID's pts log and pushes it
// to the account's live sessions except exceptSession. mk receives the pts
// assigned to the update.
func (s *Server) emitLocked(userID int64, count int, e *entities, exceptSession int64, newMsg *message,
	mk func(pts, count int) tg.UpdateClass,
) {
	acc := s.accounts[userID]
	if acc == nil {
		return
	}
	acc.pts += count
	upd := mk(acc.pts, count)
	ev := ptsEvent{pts: acc.pts, count: count, date: now(), update: upd}
	if newMsg != nil {
		ev.newMsg = newMessageOf(upd)
	}
	ev.userIDs, ev.chatIDs, ev.chanIDs = sortedIDs(e.users), sortedIDs(e.chats), sortedIDs(e.chans)
	acc.events = append(acc.events, ev)
	s.pushLocked(userID, []tg.UpdateClass{upd}, e, exceptSession)
}

// pushLocked sends updates to every live session of userID but one.
func (s *Server) pushLocked(userID int64, updates []tg.UpdateClass, e *entities, exceptSession int64) {
	sessions := s.byUser[userID]
	if len(sessions) == 0 {
		return
	}
	item := pushItem{users: map[int64]rawObject{}, chats: map[int64]rawObject{}}
	for _, u := range updates {
		raw, err := encodeRaw(u)
		if err != nil {
			s.log.Error("encode update: " + err.Error())
			return
		}
		item.updates = append(item.updates, raw)
	}
	s.fillEntitiesLocked(userID, e, &item)
	for id, ls := range sessions {
		if id == exceptSession {
			continue
		}
		s.enqueueLocked(ls, item)
	}
}

// newMessageOf shares the update's message with the event log: both are
// only encoded under s.mu.
func newMessageOf(u tg.UpdateClass) tg.MessageClass {
	switch u := u.(type) {
	case *tg.UpdateNewMessage:
		return u.Message
	case *tg.UpdateNewChannelMessage:
		return u.Message
	}
	return nil
}

// userRawLocked encodes target as viewer sees it, cached until any account
// or contact changes.
func (s *Server) userRawLocked(viewer, target int64) (rawObject, error) {
	k := [2]int64{viewer, target}
	if raw, ok := s.userCache[k]; ok {
		return raw, nil
	}
	raw, err := encodeRaw(s.userObjLocked(viewer, target))
	if err != nil {
		return nil, err
	}
	if len(s.userCache) > 100000 {
		clear(s.userCache)
	}
	s.userCache[k] = raw
	return raw, nil
}

func (s *Server) invalidateUsersLocked() { clear(s.userCache) }

func (s *Server) fillEntitiesLocked(viewer int64, e *entities, item *pushItem) {
	if e == nil {
		return
	}
	for id := range e.users {
		if raw, err := s.userRawLocked(viewer, id); err == nil {
			item.users[id] = raw
		}
	}
	for id := range e.chats {
		if raw, err := encodeRaw(s.groupObjLocked(viewer, id)); err == nil {
			item.chats[id] = raw
		}
	}
	for id := range e.chans {
		if raw, err := encodeRaw(s.channelObjLocked(viewer, id)); err == nil {
			item.chats[-id] = raw
		}
	}
}

// emitChannelLocked appends an update to a channel's pts log and pushes it
// to every member's live sessions except exceptSession.
func (s *Server) emitChannelLocked(ch *channel, count int, e *entities, exceptSession int64, newMsg *message,
	mk func(pts, count int) tg.UpdateClass,
) {
	ch.pts += count
	upd := mk(ch.pts, count)
	ev := ptsEvent{pts: ch.pts, count: count, date: now(), update: upd}
	if newMsg != nil {
		ev.newMsg = newMessageOf(upd)
	}
	e.chans[ch.id] = true
	ev.userIDs, ev.chanIDs = sortedIDs(e.users), sortedIDs(e.chans)
	raw, err := encodeRaw(upd)
	if err != nil {
		s.log.Error("encode channel update: " + err.Error())
		return
	}
	// Channel messages are stored once for every member; only the author
	// sees their own as outgoing, live and in getChannelDifference.
	authorRaw := raw
	if newMsg != nil && newMsg.author != 0 {
		newMsg.out = true
		authorUpd := mk(ch.pts, count)
		newMsg.out = false
		ev.author, ev.authorMsg = newMsg.author, newMessageOf(authorUpd)
		authorRaw, err = encodeRaw(authorUpd)
		if err != nil {
			s.log.Error("encode channel update: " + err.Error())
			return
		}
	}
	ch.events = append(ch.events, ev)
	for member := range ch.members {
		sessions := s.byUser[member]
		if len(sessions) == 0 {
			continue
		}
		mine := raw
		if newMsg != nil && member == newMsg.author {
			mine = authorRaw
		}
		item := pushItem{updates: []rawObject{mine}, users: map[int64]rawObject{}, chats: map[int64]rawObject{}}
		s.fillEntitiesLocked(member, e, &item)
		for id, ls := range sessions {
			if id != exceptSession {
				s.enqueueLocked(ls, item)
			}
		}
	}
}

func (s *Server) stateLocked(userID int64) tg.UpdatesState {
	acc := s.accounts[userID]
	unread := 0
	for _, d := range acc.dialogs {
		unread += d.unread
	}
	return tg.UpdatesState{Pts: acc.pts, Qts: 0, Date: now(), Seq: 0, UnreadCount: unread}
}

func (s *Server) registerUpdates() {
	on(s, tg.UpdatesGetStateRequestTypeID, true, func(c *call, _ *tg.UpdatesGetStateRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.stateLocked(c.userID)
		return &st, nil
	})
	on(s, tg.UpdatesGetDifferenceRequestTypeID, true, func(c *call, req *tg.UpdatesGetDifferenceRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.differenceLocked(c.userID, req)
	})
	on(s, tg.UpdatesGetChannelDifferenceRequestTypeID, true, func(c *call, req *tg.UpdatesGetChannelDifferenceRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if !ch.members[c.userID] && ch.username == "" {
			return nil, errChannelPrivate
		}
		return s.channelDifferenceLocked(c.userID, ch, req)
	})
}

// firstAfter returns the index of the first event with pts > pts.
func firstAfter(events []ptsEvent, pts int) int {
	lo, hi := 0, len(events)
	for lo < hi {
		mid := (lo + hi) / 2
		if events[mid].pts <= pts {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// sliceEvents picks the next batch of a backlog. Within one batch all
// non-message updates come before the new messages: gotd (like other
// clients) applies other_updates through its pts sequence before it takes
// new_messages, so an edit after a new message starts the next batch.
func sliceEvents(events []ptsEvent, limit int) (batch []ptsEvent, complete bool) {
	sawMsg := false
	for i, ev := range events {
		if i >= limit {
			return events[:i], false
		}
		if ev.newMsg != nil {
			sawMsg = true
		} else if sawMsg {
			return events[:i], false
		}
	}
	return events, true
}

func (s *Server) differenceLocked(userID int64, req *tg.UpdatesGetDifferenceRequest) (bin.Encoder, error) {
	acc := s.accounts[userID]
	if req.Pts >= acc.pts {
		// Tell about channels with news since the client's date, so it
		// fetches their own difference.
		others := s.channelNewsLocked(userID, req.Date)
		if len(others) == 0 {
			return &tg.UpdatesDifferenceEmpty{Date: now(), Seq: 0}, nil
		}
		e := newEntities()
		for _, u := range others {
			e.chans[u.(*tg.UpdateChannelTooLong).ChannelID] = true
		}
		return encodeRaw(&tg.UpdatesDifference{
			OtherUpdates: others,
			Chats:        s.chatsLocked(userID, e),
			Users:        []tg.UserClass{},
			State:        s.stateLocked(userID),
		})
	}
	limit := s.opts.DifferenceLimit
	if req.PtsLimit > 0 && req.PtsLimit < limit {
		limit = req.PtsLimit
	}
	start := firstAfter(acc.events, req.Pts)
	batch, complete := sliceEvents(acc.events[start:], limit)
	e := newEntities()
	newMsgs := []tg.MessageClass{}
	others := []tg.UpdateClass{}
	for _, ev := range batch {
		for _, id := range ev.userIDs {
			e.users[id] = true
		}
		for _, id := range ev.chatIDs {
			e.chats[id] = true
		}
		for _, id := range ev.chanIDs {
			e.chans[id] = true
		}
		if ev.newMsg != nil {
			newMsgs = append(newMsgs, ev.newMsg)
		} else {
			others = append(others, ev.update)
		}
	}
	e.users[userID] = true
	if complete {
		others = append(others, s.channelNewsLocked(userID, req.Date)...)
		for _, u := range others {
			if tl, ok := u.(*tg.UpdateChannelTooLong); ok {
				e.chans[tl.ChannelID] = true
			}
		}
		return encodeRaw(&tg.UpdatesDifference{
			NewMessages:          newMsgs,
			NewEncryptedMessages: []tg.EncryptedMessageClass{},
			OtherUpdates:         others,
			Chats:                s.chatsLocked(userID, e),
			Users:                s.usersLocked(userID, e),
			State:                s.stateLocked(userID),
		})
	}
	st := s.stateLocked(userID)
	st.Pts = batch[len(batch)-1].pts
	return encodeRaw(&tg.UpdatesDifferenceSlice{
		NewMessages:          newMsgs,
		NewEncryptedMessages: []tg.EncryptedMessageClass{},
		OtherUpdates:         others,
		Chats:                s.chatsLocked(userID, e),
		Users:                s.usersLocked(userID, e),
		IntermediateState:    st,
	})
}

// channelNewsLocked lists channels of userID with events after date.
func (s *Server) channelNewsLocked(userID int64, date int) []tg.UpdateClass {
	var out []tg.UpdateClass
	for _, ch := range s.channels {
		if !ch.members[userID] || len(ch.events) == 0 {
			continue
		}
		if ch.events[len(ch.events)-1].date >= date {
			out = append(out, &tg.UpdateChannelTooLong{ChannelID: ch.id, Pts: ch.pts})
		}
	}
	return out
}

func (s *Server) channelDifferenceLocked(userID int64, ch *channel, req *tg.UpdatesGetChannelDifferenceRequest) (bin.Encoder, error) {
	if req.Pts >= ch.pts {
		return &tg.UpdatesChannelDifferenceEmpty{Final: true, Pts: ch.pts, Timeout: 1}, nil
	}
	limit := s.opts.DifferenceLimit
	if req.Limit > 0 && req.Limit < limit {
		limit = req.Limit
	}
	start := firstAfter(ch.events, req.Pts)
	batch, complete := sliceEvents(ch.events[start:], limit)
	e := newEntities()
	e.chans[ch.id] = true
	newMsgs := []tg.MessageClass{}
	others := []tg.UpdateClass{}
	for _, ev := range batch {
		for _, id := range ev.userIDs {
			e.users[id] = true
		}
		for _, id := range ev.chanIDs {
			e.chans[id] = true
		}
		switch {
		case ev.authorMsg != nil && ev.author == userID:
			newMsgs = append(newMsgs, ev.authorMsg)
		case ev.newMsg != nil:
			newMsgs = append(newMsgs, ev.newMsg)
		default:
			others = append(others, ev.update)
		}
	}
	return encodeRaw(&tg.UpdatesChannelDifference{
		Final:        complete,
		Pts:          batch[len(batch)-1].pts,
		Timeout:      1,
		NewMessages:  newMsgs,
		OtherUpdates: others,
		Chats:        s.chatsLocked(userID, e),
		Users:        s.usersLocked(userID, e),
	})
}
