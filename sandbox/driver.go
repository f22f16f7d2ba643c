package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/gotd/td/tg"
)

// The driver lets tests and demos act as any account without a client and
// inspect what every account did.

// PeerKind tells what a Peer refers to.
type PeerKind int

// Peer kinds.
const (
	PeerUser PeerKind = iota + 1
	PeerChat
	PeerChannel
)

// Peer references a user, basic group or channel for the driver.
type Peer struct {
	Kind PeerKind
	ID   int64
}

// UserPeer is a private chat with user id.
func UserPeer(id int64) Peer { return Peer{PeerUser, id} }

// ChatPeer is a basic group.
func ChatPeer(id int64) Peer { return Peer{PeerChat, id} }

// ChannelPeer is a supergroup or broadcast channel.
func ChannelPeer(id int64) Peer { return Peer{PeerChannel, id} }

func (p Peer) String() string {
	switch p.Kind {
	case PeerChat:
		return fmt.Sprintf("chat:%d", p.ID)
	case PeerChannel:
		return fmt.Sprintf("channel:%d", p.ID)
	default:
		return fmt.Sprintf("user:%d", p.ID)
	}
}

func (p Peer) key() peerKey {
	switch p.Kind {
	case PeerChat:
		return peerKey{kindChat, p.ID}
	case PeerChannel:
		return peerKey{kindChannel, p.ID}
	default:
		return peerKey{kindUser, p.ID}
	}
}

func peerFromKey(k peerKey) Peer {
	switch k.kind {
	case kindChat:
		return ChatPeer(k.id)
	case kindChannel:
		return ChannelPeer(k.id)
	default:
		return UserPeer(k.id)
	}
}

// Message is a message as its sender sees it.
type Message struct {
	// ID in the sender's box (private chats, basic groups) or the channel.
	ID int
	// From is the sending account.
	From int64
	// Peer is where it was sent, from the sender's side.
	Peer Peer
	Text string
	Date time.Time
	// ReplyTo is the replied message id in the sender's box, or 0.
	ReplyTo   int
	Silent    bool
	HasMedia  bool
	Forwarded bool
	Edited    bool
	Deleted   bool
	// Reactions by account id.
	Reactions map[int64]string
}

func (s *Server) driverMessage(m *message, from int64) Message {
	out := Message{
		ID: m.id, From: from, Peer: peerFromKey(m.peer), Text: m.text,
		Date: time.Unix(int64(m.date), 0), ReplyTo: m.replyTo, Silent: m.silent,
		HasMedia: m.media != nil, Forwarded: m.fwd != nil, Edited: m.editDate != 0, Deleted: m.deleted,
	}
	if len(m.reactions) > 0 {
		out.Reactions = map[int64]string{}
		for k, v := range m.reactions {
			out.Reactions[k] = v
		}
	}
	return out
}

// logMessageLocked records a logical message for the driver.
func (s *Server) logMessageLocked(m *message, from int64) {
	s.msgLog = append(s.msgLog, loggedMsg{m: m, from: from})
}

type loggedMsg struct {
	m    *message
	from int64
}

func (s *Server) wakeWaitersLocked() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// WaitMessage waits until a message (already sent or sent later, edits
// included) satisfies match, and returns it. It never polls.
func (s *Server) WaitMessage(ctx context.Context, match func(Message) bool) (Message, error) {
	for {
		s.mu.Lock()
		for _, lm := range s.msgLog {
			dm := s.driverMessage(lm.m, lm.from)
			if match(dm) {
				s.mu.Unlock()
				return dm, nil
			}
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("wait message: %w", ctx.Err())
		}
	}
}

// Messages returns every message sent so far, oldest first; with peers
// given, only those sent to one of them (as the sender named it).
func (s *Server) Messages(peers ...Peer) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, lm := range s.msgLog {
		dm := s.driverMessage(lm.m, lm.from)
		if len(peers) == 0 {
			out = append(out, dm)
			continue
		}
		for _, p := range peers {
			if p == dm.Peer {
				out = append(out, dm)
				break
			}
		}
	}
	return out
}

// History returns the chat history with peer as account viewer sees it,
// oldest first, deleted messages omitted.
func (s *Server) History(viewer int64, peer Peer) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[viewer] == nil {
		return nil, fmt.Errorf("history: %w", errUserIDInvalid)
	}
	k := peer.key()
	if k.kind == kindChannel && s.channels[k.id] == nil {
		return nil, fmt.Errorf("history: %w", errChannelInvalid)
	}
	ids, get := s.boxLocked(viewer, k)
	var out []Message
	for _, id := range ids {
		m := get(id)
		if m == nil || m.deleted {
			continue
		}
		out = append(out, s.driverMessage(m, m.author))
	}
	return out, nil
}

// CreateUser creates an account. Its phone logs in through auth.sendCode.
func (s *Server) CreateUser(ctx context.Context, spec UserSpec) (*User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acc, err := s.createAccountLocked(spec)
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return &User{ID: acc.id, Phone: acc.phone, FirstName: acc.firstName, LastName: acc.lastName, Username: acc.username}, nil
}

// UserByPhone finds an account by phone.
func (s *Server) UserByPhone(phone string) (*User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byPhone[normalizePhone(phone)]
	if !ok {
		return nil, false
	}
	acc := s.accounts[id]
	return &User{ID: acc.id, Phone: acc.phone, FirstName: acc.firstName, LastName: acc.lastName, Username: acc.username}, true
}

// SetPassword enables (or with "" disables) 2FA for an account.
func (s *Server) SetPassword(ctx context.Context, userID int64, password string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var pw *srpPassword
	if password != "" {
		var err error
		if pw, err = newSRPPassword(password, ""); err != nil {
			return fmt.Errorf("set password: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.accounts[userID]
	if acc == nil {
		return fmt.Errorf("set password: %w", errUserIDInvalid)
	}
	acc.password = pw
	return nil
}

// Actor acts as one account.
type Actor struct {
	s  *Server
	id int64
}

// As returns an Actor for userID.
func (s *Server) As(userID int64) *Actor { return &Actor{s: s, id: userID} }

// SendOption tunes Actor.SendText.
type SendOption func(*outgoing)

// ReplyTo replies to message id (in the sender's box or the channel).
func ReplyTo(id int) SendOption { return func(o *outgoing) { o.replyTo = id } }

// Silent sends without notification.
func Silent() SendOption { return func(o *outgoing) { o.silent = true } }

// Entities attaches formatting entities.
func Entities(e ...tg.MessageEntityClass) SendOption {
	return func(o *outgoing) { o.entities = encodeEntities(e) }
}

// ScheduleAt schedules the message.
func ScheduleAt(t time.Time) SendOption { return func(o *outgoing) { o.scheduleDate = int(t.Unix()) } }

// DatedAt gives the message an earlier date than now, as if it had been
// sent at t while delivered now: a test can stand for a message that
// arrived long ago (one the account missed while down) without waiting.
func DatedAt(t time.Time) SendOption { return func(o *outgoing) { o.dated = int(t.Unix()) } }

// SendText sends a text message and returns its id in the sender's box.
func (a *Actor) SendText(ctx context.Context, peer Peer, text string, opts ...SendOption) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	o := outgoing{text: text}
	for _, opt := range opts {
		opt(&o)
	}
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.actorCanReachLocked(a.id, peer); err != nil {
		return 0, fmt.Errorf("send as %d to %s: %w", a.id, peer, err)
	}
	r, err := s.sendLocked(a.id, 0, peer.key(), o, false)
	if err != nil {
		return 0, fmt.Errorf("send as %d to %s: %w", a.id, peer, err)
	}
	return r.msg.id, nil
}

func (s *Server) actorCanReachLocked(actor int64, peer Peer) error {
	if s.accounts[actor] == nil {
		return errUserIDInvalid
	}
	switch peer.Kind {
	case PeerUser:
		if s.accounts[peer.ID] == nil {
			return errPeerIDInvalid
		}
	case PeerChat:
		if g := s.groups[peer.ID]; g == nil || !g.members[actor] {
			return errChatWriteForbidden
		}
	case PeerChannel:
		if s.channels[peer.ID] == nil {
			return errChannelInvalid
		}
	default:
		return errPeerIDInvalid
	}
	return nil
}

// Edit changes the text of a message the actor sent.
func (a *Actor) Edit(ctx context.Context, peer Peer, id int, text string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if err := a.s.actorCanReachLocked(a.id, peer); err != nil {
		return fmt.Errorf("edit as %d: %w", a.id, err)
	}
	if _, err := a.s.editLocked(a.id, 0, peer.key(), id, text, nil); err != nil {
		return fmt.Errorf("edit as %d: %w", a.id, err)
	}
	return nil
}

// Delete deletes messages in the actor's view; revoke deletes them for
// everyone (channel messages are always deleted for everyone).
func (a *Actor) Delete(ctx context.Context, peer Peer, revoke bool, ids ...int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if err := a.s.actorCanReachLocked(a.id, peer); err != nil {
		return fmt.Errorf("delete as %d: %w", a.id, err)
	}
	if peer.Kind == PeerChannel {
		_, _, err := a.s.deleteChannelLocked(a.id, 0, a.s.channels[peer.ID], ids)
		if err != nil {
			return fmt.Errorf("delete as %d: %w", a.id, err)
		}
		return nil
	}
	a.s.deleteLocked(a.id, 0, ids, revoke)
	return nil
}

// React sets the actor's reaction on a message ("" removes it).
func (a *Actor) React(ctx context.Context, peer Peer, id int, emoji string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if err := a.s.actorCanReachLocked(a.id, peer); err != nil {
		return fmt.Errorf("react as %d: %w", a.id, err)
	}
	if err := a.s.reactLocked(a.id, 0, peer.key(), id, emoji); err != nil {
		return fmt.Errorf("react as %d: %w", a.id, err)
	}
	return nil
}

// Join adds the actor to a channel, or to a basic group.
func (a *Actor) Join(ctx context.Context, peer Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.s.accounts[a.id] == nil {
		return fmt.Errorf("join as %d: %w", a.id, errUserIDInvalid)
	}
	switch peer.Kind {
	case PeerChannel:
		ch := a.s.channels[peer.ID]
		if ch == nil {
			return fmt.Errorf("join as %d: %w", a.id, errChannelInvalid)
		}
		if err := a.s.joinChannelLocked(a.id, ch); err != nil {
			return fmt.Errorf("join as %d: %w", a.id, err)
		}
	case PeerChat:
		g := a.s.groups[peer.ID]
		if g == nil {
			return fmt.Errorf("join as %d: %w", a.id, errChatIDInvalid)
		}
		if err := a.s.addGroupMemberLocked(g, a.id); err != nil {
			return fmt.Errorf("join as %d: %w", a.id, err)
		}
	default:
		return fmt.Errorf("join as %d: %w", a.id, errPeerIDInvalid)
	}
	return nil
}

// Leave removes the actor from a channel or basic group.
func (a *Actor) Leave(ctx context.Context, peer Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	switch peer.Kind {
	case PeerChannel:
		ch := a.s.channels[peer.ID]
		if ch == nil {
			return fmt.Errorf("leave as %d: %w", a.id, errChannelInvalid)
		}
		if err := a.s.leaveChannelLocked(a.id, ch); err != nil {
			return fmt.Errorf("leave as %d: %w", a.id, err)
		}
	case PeerChat:
		g := a.s.groups[peer.ID]
		if g == nil {
			return fmt.Errorf("leave as %d: %w", a.id, errChatIDInvalid)
		}
		if err := a.s.removeGroupMemberLocked(g, a.id); err != nil {
			return fmt.Errorf("leave as %d: %w", a.id, err)
		}
	default:
		return fmt.Errorf("leave as %d: %w", a.id, errPeerIDInvalid)
	}
	return nil
}

// ReadHistory marks the chat read up to maxID (0: everything).
func (a *Actor) ReadHistory(ctx context.Context, peer Peer, maxID int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if err := a.s.actorCanReachLocked(a.id, peer); err != nil {
		return fmt.Errorf("read as %d: %w", a.id, err)
	}
	a.s.readLocked(a.id, 0, peer.key(), maxID)
	return nil
}

// AddContact adds userID to the actor's contacts.
func (a *Actor) AddContact(ctx context.Context, userID int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	acc := a.s.accounts[a.id]
	if acc == nil || a.s.accounts[userID] == nil {
		return fmt.Errorf("add contact as %d: %w", a.id, errUserIDInvalid)
	}
	acc.contacts[userID] = true
	a.s.invalidateUsersLocked()
	return nil
}

// Typing shows "typing" to the other side of peer.
func (a *Actor) Typing(ctx context.Context, peer Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if err := a.s.actorCanReachLocked(a.id, peer); err != nil {
		return fmt.Errorf("typing as %d: %w", a.id, err)
	}
	a.s.typingLocked(a.id, peer.key(), &tg.SendMessageTypingAction{})
	return nil
}

// SetOnline pushes the user's online status (updateUserStatus) to every
// account that has a private chat with them, as Telegram does for
// contacts and recent chats.
func (a *Actor) SetOnline(ctx context.Context, online bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	var status tg.UserStatusClass = &tg.UserStatusOffline{WasOnline: now()}
	if online {
		status = &tg.UserStatusOnline{Expires: now() + 300}
	}
	e := newEntities()
	e.users[a.id] = true
	for id, acc := range a.s.accounts {
		if id == a.id || acc.dialogs[peerKey{kindUser, a.id}] == nil {
			continue
		}
		a.s.pushLocked(id, []tg.UpdateClass{&tg.UpdateUserStatus{UserID: a.id, Status: status}}, e, 0)
	}
	return nil
}
