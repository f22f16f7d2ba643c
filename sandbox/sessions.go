package sandbox

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/crypto"
	"github.com/gotd/td/mt"
	"github.com/gotd/td/proto"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgtest"
)

// keyState is what the server knows about one auth key.
type keyState struct {
	userID int64
	// pendingUser passed the login code and still owes the 2FA password.
	pendingUser int64
	// set between importLoginToken/exportLoginToken round trips.
	loginToken string
}

// liveSession is one authorized MTProto session with its own outbound queue:
// pushes to it never block the request that caused them.
type liveSession struct {
	id        int64
	key       crypto.AuthKey
	userID    int64
	noUpdates bool

	mu      sync.Mutex
	pending []pushItem
	count   int
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
}

// pushItem is one pre-encoded push: updates plus the users and chats they
// reference, encoded for the receiving account.
type pushItem struct {
	updates []rawObject
	users   map[int64]rawObject
	chats   map[int64]rawObject
}

// maxFrameUpdates bounds one coalesced push so frames stay small.
const maxFrameUpdates = 2000

func (s *Server) tgSession(ls *liveSession) tgtest.Session {
	return tgtest.Session{ID: ls.id, AuthKey: ls.key}
}

// touchSession registers the session of an authorized request. Must hold s.mu.
func (s *Server) touchSessionLocked(sessionID int64, key crypto.AuthKey, userID int64) *liveSession {
	if ls, ok := s.sessions[sessionID]; ok && ls.userID == userID {
		return ls
	}
	if old, ok := s.sessions[sessionID]; ok {
		s.removeSessionLocked(old)
	}
	ls := &liveSession{
		id:     sessionID,
		key:    key,
		userID: userID,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	s.sessions[sessionID] = ls
	m := s.byUser[userID]
	if m == nil {
		m = map[int64]*liveSession{}
		s.byUser[userID] = m
	}
	m[sessionID] = ls
	if len(m) > s.maxConc[userID] {
		s.maxConc[userID] = len(m)
	}
	go s.writeLoop(ls)
	return ls
}

func (s *Server) removeSessionLocked(ls *liveSession) {
	if cur, ok := s.sessions[ls.id]; ok && cur == ls {
		delete(s.sessions, ls.id)
	}
	if m := s.byUser[ls.userID]; m != nil {
		if cur, ok := m[ls.id]; ok && cur == ls {
			delete(m, ls.id)
		}
		if len(m) == 0 {
			delete(s.byUser, ls.userID)
		}
	}
	ls.mu.Lock()
	if !ls.closed {
		ls.closed = true
		ls.pending = nil
		close(ls.stop)
	}
	ls.mu.Unlock()
}

// dropSession forgets a session and closes its connection, like Telegram
// does to a client that cannot keep up.
func (s *Server) dropSession(ls *liveSession, reason string) {
	s.mu.Lock()
	s.removeSessionLocked(ls)
	s.mu.Unlock()
	s.log.Debug("drop session", zap.Int64("user", ls.userID), zap.String("reason", reason))
	s.tg.ForceDisconnect(s.tgSession(ls))
}

// enqueue adds a push to a session's queue. Safe under s.mu (never blocks).
func (s *Server) enqueueLocked(ls *liveSession, item pushItem) {
	if ls.noUpdates {
		return
	}
	ls.mu.Lock()
	if ls.closed {
		ls.mu.Unlock()
		return
	}
	ls.pending = append(ls.pending, item)
	ls.count += len(item.updates)
	overflow := ls.count > s.opts.PushQueueLimit
	ls.mu.Unlock()
	if overflow {
		go s.dropSession(ls, "push queue overflow")
		return
	}
	select {
	case ls.wake <- struct{}{}:
	default:
	}
}

func (s *Server) writeLoop(ls *liveSession) {
	for {
		select {
		case <-ls.stop:
			return
		case <-s.ctx.Done():
			return
		case <-ls.wake:
		}
		for {
			ls.mu.Lock()
			items := ls.pending
			ls.pending = nil
			ls.count = 0
			ls.mu.Unlock()
			if len(items) == 0 {
				break
			}
			for len(items) > 0 {
				n, frame := coalesce(items)
				items = items[n:]
				if err := s.tg.Send(s.ctx, s.tgSession(ls), proto.MessageFromServer, frame); err != nil {
					s.dropSession(ls, "send failed: "+err.Error())
					return
				}
			}
		}
	}
}

// coalesce merges queued pushes into one updates frame.
func coalesce(items []pushItem) (int, *rawUpdates) {
	out := &rawUpdates{date: int(time.Now().Unix())}
	seenU := map[int64]bool{}
	seenC := map[int64]bool{}
	n := 0
	for _, it := range items {
		if n > 0 && len(out.updates)+len(it.updates) > maxFrameUpdates {
			break
		}
		n++
		out.updates = append(out.updates, it.updates...)
		for id, u := range it.users {
			if !seenU[id] {
				seenU[id] = true
				out.users = append(out.users, u)
			}
		}
		for id, c := range it.chats {
			if !seenC[id] {
				seenC[id] = true
				out.chats = append(out.chats, c)
			}
		}
	}
	return n, out
}

// rawUpdates encodes updates#74ae4240 from pre-encoded parts.
type rawUpdates struct {
	updates []rawObject
	users   []rawObject
	chats   []rawObject
	date    int
}

func (r *rawUpdates) Encode(b *bin.Buffer) error {
	b.PutID(tg.UpdatesTypeID)
	putRawVector(b, r.updates)
	putRawVector(b, r.users)
	putRawVector(b, r.chats)
	b.PutInt(r.date)
	b.PutInt(0)
	return nil
}

func putRawVector(b *bin.Buffer, v []rawObject) {
	b.PutVectorHeader(len(v))
	for _, o := range v {
		b.Put(o)
	}
}

// probeSessions runs after any connection closes: an empty ack is harmless
// to a live client and fails fast on a closed connection, which drops the
// session so ConnectedSessions stays true.
func (s *Server) probeSessions() {
	s.mu.Lock()
	list := make([]*liveSession, 0, len(s.sessions))
	for _, ls := range s.sessions {
		list = append(list, ls)
	}
	s.mu.Unlock()
	for _, ls := range list {
		ctx, cancel := context.WithTimeout(s.ctx, time.Second)
		err := s.tg.Send(ctx, s.tgSession(ls), proto.MessageFromServer, &mt.MsgsAck{MsgIDs: []int64{}})
		cancel()
		if err != nil {
			s.dropSession(ls, "probe failed")
		}
	}
}

// ConnectedSessions is the number of authorized sessions of userID that are
// connected now.
func (s *Server) ConnectedSessions(userID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byUser[userID])
}

// MaxConcurrentSessions is the largest number of authorized sessions userID
// ever had connected at the same time.
func (s *Server) MaxConcurrentSessions(userID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxConc[userID]
}

// DisconnectUser force-closes every connection of userID (a fault a test can
// inject); clients reconnect and catch up with getDifference.
func (s *Server) DisconnectUser(userID int64) int {
	s.mu.Lock()
	var list []*liveSession
	for _, ls := range s.byUser[userID] {
		list = append(list, ls)
	}
	s.mu.Unlock()
	for _, ls := range list {
		s.dropSession(ls, "forced disconnect")
	}
	return len(list)
}
