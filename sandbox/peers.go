package sandbox

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
)

// Peers: accounts as users, contacts, username resolution and the access
// hash checks Telegram applies to every input peer.

// UserSpec describes an account to create with the driver or a seed.
type UserSpec struct {
	Phone     string `yaml:"phone"`
	FirstName string `yaml:"first_name"`
	LastName  string `yaml:"last_name"`
	Username  string `yaml:"username"`
	// Password enables 2FA for the account when not empty.
	Password string `yaml:"password"`
	Bot      bool   `yaml:"bot"`
}

// User is a created account.
type User struct {
	ID        int64
	Phone     string
	FirstName string
	LastName  string
	Username  string
}

var errUsernameOccupied = tgerr.New(400, "USERNAME_OCCUPIED")

func validUsername(u string) bool {
	if len(u) < 3 || len(u) > 32 {
		return false
	}
	for i, r := range u {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case r >= '0' && r <= '9':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (s *Server) createAccountLocked(spec UserSpec) (*account, error) {
	phone := normalizePhone(spec.Phone)
	if phone == "" {
		return nil, fmt.Errorf("phone %q: %w", spec.Phone, errPhoneInvalid)
	}
	if _, ok := s.byPhone[phone]; ok {
		return nil, fmt.Errorf("phone %s: %w", phone, errPhoneOccupied)
	}
	uname := strings.TrimPrefix(spec.Username, "@")
	if uname != "" {
		if !validUsername(uname) {
			return nil, fmt.Errorf("username %q: %w", spec.Username, errUsernameInvalid)
		}
		if _, ok := s.byUsername[normalizeUsername(uname)]; ok {
			return nil, fmt.Errorf("username %q: %w", spec.Username, errUsernameOccupied)
		}
	}
	s.nextUserID++
	acc := &account{
		id:         s.nextUserID,
		phone:      phone,
		firstName:  spec.FirstName,
		lastName:   spec.LastName,
		username:   uname,
		bot:        spec.Bot,
		contacts:   map[int64]bool{},
		wroteFirst: map[int64]bool{},
		nextMsgID:  1,
		msgs:       map[int]*message{},
		dialogs:    map[peerKey]*dialog{},
		scheduled:  map[peerKey][]*message{},
	}
	if spec.Password != "" {
		pw, err := newSRPPassword(spec.Password, "")
		if err != nil {
			return nil, err
		}
		acc.password = pw
	}
	s.accounts[acc.id] = acc
	s.invalidateUsersLocked()
	s.byPhone[phone] = acc.id
	if uname != "" {
		s.byUsername[normalizeUsername(uname)] = peerKey{kindUser, acc.id}
	}
	return acc, nil
}

// userObjLocked builds the user object target as viewer sees it.
func (s *Server) userObjLocked(viewer, target int64) tg.UserClass {
	acc := s.accounts[target]
	if acc == nil {
		return &tg.UserEmpty{ID: target}
	}
	u := &tg.User{
		ID:         acc.id,
		AccessHash: s.accessHash(viewer, target, kindUser),
		FirstName:  acc.firstName,
		LastName:   acc.lastName,
		Username:   acc.username,
		Bot:        acc.bot,
		Status:     &tg.UserStatusRecently{},
	}
	if viewer == target {
		u.Self = true
		u.Phone = acc.phone
	}
	if v := s.accounts[viewer]; v != nil && v.contacts[target] {
		u.Contact = true
		u.Phone = acc.phone
		u.MutualContact = acc.contacts[viewer]
	}
	return u
}

func (s *Server) resolveInputUserLocked(viewer int64, in tg.InputUserClass) (int64, error) {
	switch in := in.(type) {
	case *tg.InputUserSelf:
		return viewer, nil
	case *tg.InputUser:
		if _, ok := s.accounts[in.UserID]; !ok {
			return 0, errUserIDInvalid
		}
		if in.UserID != viewer && in.AccessHash != s.accessHash(viewer, in.UserID, kindUser) {
			return 0, errUserIDInvalid
		}
		return in.UserID, nil
	case *tg.InputUserFromMessage:
		if _, ok := s.accounts[in.UserID]; !ok {
			return 0, errUserIDInvalid
		}
		return in.UserID, nil
	}
	return 0, errUserIDInvalid
}

// resolveInputPeerLocked checks an input peer as viewer and returns it as
// a dialog key.
func (s *Server) resolveInputPeerLocked(viewer int64, in tg.InputPeerClass) (peerKey, error) {
	switch in := in.(type) {
	case *tg.InputPeerSelf:
		return peerKey{kindUser, viewer}, nil
	case *tg.InputPeerUser:
		if _, ok := s.accounts[in.UserID]; !ok {
			return peerKey{}, errPeerIDInvalid
		}
		if in.UserID != viewer && in.AccessHash != s.accessHash(viewer, in.UserID, kindUser) {
			return peerKey{}, errPeerIDInvalid
		}
		return peerKey{kindUser, in.UserID}, nil
	case *tg.InputPeerUserFromMessage:
		if _, ok := s.accounts[in.UserID]; !ok {
			return peerKey{}, errPeerIDInvalid
		}
		return peerKey{kindUser, in.UserID}, nil
	case *tg.InputPeerChat:
		g := s.groups[in.ChatID]
		if g == nil || !g.members[viewer] {
			return peerKey{}, errPeerIDInvalid
		}
		return peerKey{kindChat, in.ChatID}, nil
	case *tg.InputPeerChannel:
		if _, err := s.channelForLocked(viewer, in.ChannelID, in.AccessHash); err != nil {
			return peerKey{}, err
		}
		return peerKey{kindChannel, in.ChannelID}, nil
	case *tg.InputPeerChannelFromMessage:
		if s.channels[in.ChannelID] == nil {
			return peerKey{}, errChannelInvalid
		}
		return peerKey{kindChannel, in.ChannelID}, nil
	}
	return peerKey{}, errPeerIDInvalid
}

func (s *Server) channelForLocked(viewer, id, hash int64) (*channel, error) {
	ch := s.channels[id]
	if ch == nil || hash != s.accessHash(viewer, id, kindChannel) {
		return nil, errChannelInvalid
	}
	return ch, nil
}

func (s *Server) resolveInputChannelLocked(viewer int64, in tg.InputChannelClass) (*channel, error) {
	switch in := in.(type) {
	case *tg.InputChannel:
		return s.channelForLocked(viewer, in.ChannelID, in.AccessHash)
	case *tg.InputChannelFromMessage:
		if ch := s.channels[in.ChannelID]; ch != nil {
			return ch, nil
		}
	}
	return nil, errChannelInvalid
}

// entities collects users and chats referenced by a result.
type entities struct {
	users map[int64]bool
	chats map[int64]bool // basic groups
	chans map[int64]bool
}

func newEntities() *entities {
	return &entities{users: map[int64]bool{}, chats: map[int64]bool{}, chans: map[int64]bool{}}
}

func (e *entities) addPeer(p peerKey) {
	switch p.kind {
	case kindUser:
		e.users[p.id] = true
	case kindChat:
		e.chats[p.id] = true
	case kindChannel:
		e.chans[p.id] = true
	}
}

func (e *entities) addMessage(m *message) {
	e.addPeer(m.peer)
	if m.from != 0 {
		e.users[m.from] = true
	}
	if m.fwd != nil {
		e.addPeer(m.fwd.from)
	}
}

func sortedIDs(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *Server) usersLocked(viewer int64, e *entities) []tg.UserClass {
	out := make([]tg.UserClass, 0, len(e.users))
	for _, id := range sortedIDs(e.users) {
		out = append(out, s.userObjLocked(viewer, id))
	}
	return out
}

func (s *Server) chatsLocked(viewer int64, e *entities) []tg.ChatClass {
	out := make([]tg.ChatClass, 0, len(e.chats)+len(e.chans))
	for _, id := range sortedIDs(e.chats) {
		out = append(out, s.groupObjLocked(viewer, id))
	}
	for _, id := range sortedIDs(e.chans) {
		out = append(out, s.channelObjLocked(viewer, id))
	}
	return out
}

func (s *Server) groupObjLocked(viewer, id int64) tg.ChatClass {
	g := s.groups[id]
	if g == nil {
		return &tg.ChatEmpty{ID: id}
	}
	c := &tg.Chat{
		ID:                g.id,
		Title:             g.title,
		Photo:             &tg.ChatPhotoEmpty{},
		ParticipantsCount: len(g.members),
		Date:              g.date,
		Version:           g.version,
		Creator:           g.creator == viewer,
		Left:              !g.members[viewer],
	}
	if g.admins[viewer] || g.creator == viewer {
		c.AdminRights = fullAdminRights()
	}
	return c
}

func fullAdminRights() tg.ChatAdminRights {
	return tg.ChatAdminRights{
		ChangeInfo: true, PostMessages: true, EditMessages: true, DeleteMessages: true,
		BanUsers: true, InviteUsers: true, PinMessages: true, AddAdmins: true,
	}
}

func (s *Server) channelObjLocked(viewer, id int64) tg.ChatClass {
	ch := s.channels[id]
	if ch == nil {
		return &tg.ChatEmpty{ID: id}
	}
	c := &tg.Channel{
		ID:                ch.id,
		AccessHash:        s.accessHash(viewer, id, kindChannel),
		Title:             ch.title,
		Username:          ch.username,
		Photo:             &tg.ChatPhotoEmpty{},
		Date:              ch.date,
		Megagroup:         ch.megagroup,
		Broadcast:         !ch.megagroup,
		Creator:           ch.creator == viewer,
		Left:              !ch.members[viewer],
		ParticipantsCount: len(ch.members),
		SlowmodeEnabled:   ch.slowmode > 0,
	}
	if ch.admins[viewer] || ch.creator == viewer {
		c.AdminRights = fullAdminRights()
	}
	return c
}

func (s *Server) registerPeers() {
	on(s, tg.UsersGetUsersRequestTypeID, true, func(c *call, req *tg.UsersGetUsersRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := &tg.UserClassVector{}
		for _, in := range req.ID {
			id, err := s.resolveInputUserLocked(c.userID, in)
			if err != nil {
				continue
			}
			out.Elems = append(out.Elems, s.userObjLocked(c.userID, id))
		}
		return out, nil
	})
	on(s, tg.UsersGetFullUserRequestTypeID, true, func(c *call, req *tg.UsersGetFullUserRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		id, err := s.resolveInputUserLocked(c.userID, req.ID)
		if err != nil {
			return nil, err
		}
		return &tg.UsersUserFull{
			FullUser: tg.UserFull{
				ID:               id,
				Settings:         tg.PeerSettings{},
				NotifySettings:   tg.PeerNotifySettings{},
				CommonChatsCount: s.commonChatsLocked(c.userID, id),
			},
			Users: []tg.UserClass{s.userObjLocked(c.userID, id)},
		}, nil
	})
	on(s, tg.ContactsResolveUsernameRequestTypeID, true, func(c *call, req *tg.ContactsResolveUsernameRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		name := normalizeUsername(req.Username)
		if name == "" {
			return nil, errUsernameInvalid
		}
		p, ok := s.byUsername[name]
		if !ok {
			return nil, errUsernameNotOccupied
		}
		e := newEntities()
		e.addPeer(p)
		return &tg.ContactsResolvedPeer{
			Peer:  p.tg(),
			Users: s.usersLocked(c.userID, e),
			Chats: s.chatsLocked(c.userID, e),
		}, nil
	})
	on(s, tg.ContactsImportContactsRequestTypeID, true, func(c *call, req *tg.ContactsImportContactsRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		me := s.accounts[c.userID]
		res := &tg.ContactsImportedContacts{}
		e := newEntities()
		for _, in := range req.Contacts {
			id, ok := s.byPhone[normalizePhone(in.Phone)]
			if !ok || id == c.userID {
				res.RetryContacts = append(res.RetryContacts, in.ClientID)
				continue
			}
			me.contacts[id] = true
			s.invalidateUsersLocked()
			e.users[id] = true
			res.Imported = append(res.Imported, tg.ImportedContact{UserID: id, ClientID: in.ClientID})
		}
		res.Users = s.usersLocked(c.userID, e)
		return res, nil
	})
	on(s, tg.ContactsAddContactRequestTypeID, true, func(c *call, req *tg.ContactsAddContactRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		id, err := s.resolveInputUserLocked(c.userID, req.ID)
		if err != nil {
			return nil, err
		}
		s.accounts[c.userID].contacts[id] = true
		s.invalidateUsersLocked()
		e := newEntities()
		e.users[id] = true
		return &tg.Updates{Users: s.usersLocked(c.userID, e), Date: int(time.Now().Unix())}, nil
	})
	on(s, tg.ContactsDeleteContactsRequestTypeID, true, func(c *call, req *tg.ContactsDeleteContactsRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		e := newEntities()
		for _, in := range req.ID {
			id, err := s.resolveInputUserLocked(c.userID, in)
			if err != nil {
				return nil, err
			}
			delete(s.accounts[c.userID].contacts, id)
			s.invalidateUsersLocked()
			e.users[id] = true
		}
		return &tg.Updates{Users: s.usersLocked(c.userID, e), Date: int(time.Now().Unix())}, nil
	})
	on(s, tg.ContactsGetContactsRequestTypeID, true, func(c *call, _ *tg.ContactsGetContactsRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		res := &tg.ContactsContacts{}
		e := newEntities()
		for id := range s.accounts[c.userID].contacts {
			e.users[id] = true
		}
		for _, id := range sortedIDs(e.users) {
			res.Contacts = append(res.Contacts, tg.Contact{UserID: id, Mutual: s.accounts[id].contacts[c.userID]})
		}
		res.SavedCount = len(res.Contacts)
		res.Users = s.usersLocked(c.userID, e)
		return res, nil
	})
}

func (s *Server) commonChatsLocked(a, b int64) int {
	n := 0
	for _, g := range s.groups {
		if g.members[a] && g.members[b] {
			n++
		}
	}
	for _, ch := range s.channels {
		if ch.members[a] && ch.members[b] {
			n++
		}
	}
	return n
}
