package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
)

// Basic groups, supergroups and broadcast channels: creation, members,
// admins, join/leave and slow mode.

var (
	errUserAlreadyParticipant = tgerr.New(400, "USER_ALREADY_PARTICIPANT")
	errChatTitleEmpty         = tgerr.New(400, "CHAT_TITLE_EMPTY")
)

// ChannelSpec describes a supergroup (Megagroup) or broadcast channel.
type ChannelSpec struct {
	Title           string `yaml:"title"`
	Username        string `yaml:"username"`
	Megagroup       bool   `yaml:"megagroup"`
	SlowModeSeconds int    `yaml:"slow_mode_seconds"`
}

func (s *Server) createGroupLocked(owner int64, title string, members []int64) (*basicGroup, error) {
	if strings.TrimSpace(title) == "" {
		return nil, errChatTitleEmpty
	}
	if s.accounts[owner] == nil {
		return nil, errUserIDInvalid
	}
	s.nextChatID++
	g := &basicGroup{id: s.nextChatID, title: title, creator: owner, admins: map[int64]bool{},
		members: map[int64]bool{owner: true}, date: now(), version: 1}
	for _, m := range members {
		if s.accounts[m] == nil {
			return nil, errUserIDInvalid
		}
		g.members[m] = true
	}
	s.groups[g.id] = g
	for m := range g.members {
		s.accounts[m].dialogFor(peerKey{kindChat, g.id})
	}
	s.announceChatLocked(peerKey{kindChat, g.id}, sortedIDs(g.members))
	return g, nil
}

// announceChatLocked tells members about a chat they were added to (their
// clients learn the chat from the pushed Chats).
func (s *Server) announceChatLocked(p peerKey, members []int64) {
	for _, m := range members {
		e := newEntities()
		e.addPeer(p)
		var upd tg.UpdateClass
		if p.kind == kindChannel {
			upd = &tg.UpdateChannel{ChannelID: p.id}
		} else {
			upd = &tg.UpdateChatParticipants{Participants: s.groupParticipantsLocked(s.groups[p.id])}
		}
		s.pushLocked(m, []tg.UpdateClass{upd}, e, 0)
	}
}

func (s *Server) groupParticipantsLocked(g *basicGroup) tg.ChatParticipantsClass {
	out := &tg.ChatParticipants{ChatID: g.id, Version: g.version}
	for _, id := range sortedIDs(g.members) {
		switch {
		case id == g.creator:
			out.Participants = append(out.Participants, &tg.ChatParticipantCreator{UserID: id})
		case g.admins[id]:
			out.Participants = append(out.Participants, &tg.ChatParticipantAdmin{UserID: id, InviterID: g.creator, Date: g.date})
		default:
			out.Participants = append(out.Participants, &tg.ChatParticipant{UserID: id, InviterID: g.creator, Date: g.date})
		}
	}
	return out
}

func (s *Server) createChannelLocked(owner int64, spec ChannelSpec) (*channel, error) {
	if strings.TrimSpace(spec.Title) == "" {
		return nil, errChatTitleEmpty
	}
	if s.accounts[owner] == nil {
		return nil, errUserIDInvalid
	}
	uname := strings.TrimPrefix(spec.Username, "@")
	if uname != "" {
		if !validUsername(uname) {
			return nil, errUsernameInvalid
		}
		if _, ok := s.byUsername[normalizeUsername(uname)]; ok {
			return nil, errUsernameOccupied
		}
	}
	s.nextChannelID++
	ch := &channel{
		id: s.nextChannelID, title: spec.Title, username: uname, megagroup: spec.Megagroup,
		creator: owner, admins: map[int64]bool{}, members: map[int64]bool{owner: true},
		slowmode: spec.SlowModeSeconds, date: now(), lastSend: map[int64]int64{},
		// Telegram channels start at pts 1: clients read it from the dialog
		// to know where to fetch the channel difference from.
		pts:  1,
		msgs: map[int]*message{}, readMax: map[int64]int{},
	}
	s.channels[ch.id] = ch
	if uname != "" {
		s.byUsername[normalizeUsername(uname)] = peerKey{kindChannel, ch.id}
	}
	s.announceChatLocked(peerKey{kindChannel, ch.id}, []int64{owner})
	return ch, nil
}

// CreateGroup creates a basic group owned by owner with members.
func (s *Server) CreateGroup(ctx context.Context, owner int64, title string, members ...int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.createGroupLocked(owner, title, members)
	if err != nil {
		return 0, fmt.Errorf("create group %q: %w", title, err)
	}
	return g.id, nil
}

// CreateChannel creates a supergroup or broadcast channel owned by owner.
func (s *Server) CreateChannel(ctx context.Context, owner int64, spec ChannelSpec) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.createChannelLocked(owner, spec)
	if err != nil {
		return 0, fmt.Errorf("create channel %q: %w", spec.Title, err)
	}
	return ch.id, nil
}

func (s *Server) joinChannelLocked(user int64, ch *channel) error {
	if ch.members[user] {
		return errUserAlreadyParticipant
	}
	ch.members[user] = true
	s.announceChatLocked(peerKey{kindChannel, ch.id}, []int64{user})
	if ch.megagroup {
		s.serviceLocked(user, peerKey{kindChannel, ch.id}, &tg.MessageActionChatAddUser{Users: []int64{user}})
	}
	return nil
}

func (s *Server) leaveChannelLocked(user int64, ch *channel) error {
	if !ch.members[user] {
		return errUserNotParticipant
	}
	if ch.megagroup {
		s.serviceLocked(user, peerKey{kindChannel, ch.id}, &tg.MessageActionChatDeleteUser{UserID: user})
	}
	delete(ch.members, user)
	delete(ch.admins, user)
	e := newEntities()
	e.chans[ch.id] = true
	s.pushLocked(user, []tg.UpdateClass{&tg.UpdateChannel{ChannelID: ch.id}}, e, 0)
	return nil
}

func (s *Server) addGroupMemberLocked(g *basicGroup, user int64) error {
	if g.members[user] {
		return errUserAlreadyParticipant
	}
	g.members[user] = true
	g.version++
	s.accounts[user].dialogFor(peerKey{kindChat, g.id})
	s.announceChatLocked(peerKey{kindChat, g.id}, sortedIDs(g.members))
	s.serviceLocked(user, peerKey{kindChat, g.id}, &tg.MessageActionChatAddUser{Users: []int64{user}})
	return nil
}

func (s *Server) removeGroupMemberLocked(g *basicGroup, user int64) error {
	if !g.members[user] {
		return errUserNotParticipant
	}
	s.serviceLocked(user, peerKey{kindChat, g.id}, &tg.MessageActionChatDeleteUser{UserID: user})
	delete(g.members, user)
	delete(g.admins, user)
	g.version++
	s.announceChatLocked(peerKey{kindChat, g.id}, append(sortedIDs(g.members), user))
	return nil
}

func (s *Server) chatUpdatesLocked(viewer int64, p peerKey) *tg.Updates {
	e := newEntities()
	e.addPeer(p)
	return &tg.Updates{Updates: []tg.UpdateClass{}, Users: s.usersLocked(viewer, e), Chats: s.chatsLocked(viewer, e), Date: now()}
}

func (s *Server) registerChats() {
	on(s, tg.MessagesCreateChatRequestTypeID, true, func(c *call, req *tg.MessagesCreateChatRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var members []int64
		for _, in := range req.Users {
			id, err := s.resolveInputUserLocked(c.userID, in)
			if err != nil {
				return nil, err
			}
			members = append(members, id)
		}
		g, err := s.createGroupLocked(c.userID, req.Title, members)
		if err != nil {
			return nil, err
		}
		return &tg.MessagesInvitedUsers{Updates: s.chatUpdatesLocked(c.userID, peerKey{kindChat, g.id}), MissingInvitees: []tg.MissingInvitee{}}, nil
	})
	on(s, tg.MessagesAddChatUserRequestTypeID, true, func(c *call, req *tg.MessagesAddChatUserRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g := s.groups[req.ChatID]
		if g == nil || !g.members[c.userID] {
			return nil, errChatIDInvalid
		}
		id, err := s.resolveInputUserLocked(c.userID, req.UserID)
		if err != nil {
			return nil, err
		}
		if err := s.addGroupMemberLocked(g, id); err != nil {
			return nil, err
		}
		return &tg.MessagesInvitedUsers{Updates: s.chatUpdatesLocked(c.userID, peerKey{kindChat, g.id}), MissingInvitees: []tg.MissingInvitee{}}, nil
	})
	on(s, tg.MessagesDeleteChatUserRequestTypeID, true, func(c *call, req *tg.MessagesDeleteChatUserRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g := s.groups[req.ChatID]
		if g == nil || !g.members[c.userID] {
			return nil, errChatIDInvalid
		}
		id, err := s.resolveInputUserLocked(c.userID, req.UserID)
		if err != nil {
			return nil, err
		}
		if id != c.userID && g.creator != c.userID && !g.admins[c.userID] {
			return nil, errChatAdminRequired
		}
		if err := s.removeGroupMemberLocked(g, id); err != nil {
			return nil, err
		}
		return s.chatUpdatesLocked(c.userID, peerKey{kindChat, g.id}), nil
	})
	on(s, tg.MessagesGetFullChatRequestTypeID, true, func(c *call, req *tg.MessagesGetFullChatRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g := s.groups[req.ChatID]
		if g == nil || !g.members[c.userID] {
			return nil, errChatIDInvalid
		}
		e := newEntities()
		e.chats[g.id] = true
		for id := range g.members {
			e.users[id] = true
		}
		return &tg.MessagesChatFull{
			FullChat: &tg.ChatFull{ID: g.id, Participants: s.groupParticipantsLocked(g), NotifySettings: tg.PeerNotifySettings{}},
			Chats:    s.chatsLocked(c.userID, e), Users: s.usersLocked(c.userID, e),
		}, nil
	})
	on(s, tg.ChannelsCreateChannelRequestTypeID, true, func(c *call, req *tg.ChannelsCreateChannelRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.createChannelLocked(c.userID, ChannelSpec{Title: req.Title, Megagroup: req.Megagroup})
		if err != nil {
			return nil, err
		}
		return s.chatUpdatesLocked(c.userID, peerKey{kindChannel, ch.id}), nil
	})
	on(s, tg.ChannelsJoinChannelRequestTypeID, true, func(c *call, req *tg.ChannelsJoinChannelRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if ch.username == "" && !ch.members[c.userID] {
			return nil, errChannelPrivate
		}
		if err := s.joinChannelLocked(c.userID, ch); err != nil {
			return nil, err
		}
		return &tg.MessagesChatInviteJoinResultOk{Updates: s.chatUpdatesLocked(c.userID, peerKey{kindChannel, ch.id})}, nil
	})
	on(s, tg.ChannelsLeaveChannelRequestTypeID, true, func(c *call, req *tg.ChannelsLeaveChannelRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if err := s.leaveChannelLocked(c.userID, ch); err != nil {
			return nil, err
		}
		return s.chatUpdatesLocked(c.userID, peerKey{kindChannel, ch.id}), nil
	})
	on(s, tg.ChannelsInviteToChannelRequestTypeID, true, func(c *call, req *tg.ChannelsInviteToChannelRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if ch.creator != c.userID && !ch.admins[c.userID] {
			return nil, errChatAdminRequired
		}
		for _, in := range req.Users {
			id, err := s.resolveInputUserLocked(c.userID, in)
			if err != nil {
				return nil, err
			}
			if !ch.members[id] {
				_ = s.joinChannelLocked(id, ch)
			}
		}
		return &tg.MessagesInvitedUsers{Updates: s.chatUpdatesLocked(c.userID, peerKey{kindChannel, ch.id}), MissingInvitees: []tg.MissingInvitee{}}, nil
	})
	on(s, tg.ChannelsEditAdminRequestTypeID, true, func(c *call, req *tg.ChannelsEditAdminRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if ch.creator != c.userID {
			return nil, errChatAdminRequired
		}
		id, err := s.resolveInputUserLocked(c.userID, req.UserID)
		if err != nil {
			return nil, err
		}
		if !ch.members[id] {
			return nil, errUserNotParticipant
		}
		if req.AdminRights == (tg.ChatAdminRights{}) {
			delete(ch.admins, id)
		} else {
			ch.admins[id] = true
		}
		return s.chatUpdatesLocked(c.userID, peerKey{kindChannel, ch.id}), nil
	})
	on(s, tg.ChannelsToggleSlowModeRequestTypeID, true, func(c *call, req *tg.ChannelsToggleSlowModeRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if ch.creator != c.userID && !ch.admins[c.userID] {
			return nil, errChatAdminRequired
		}
		ch.slowmode = req.Seconds
		return s.chatUpdatesLocked(c.userID, peerKey{kindChannel, ch.id}), nil
	})
	on(s, tg.ChannelsGetParticipantsRequestTypeID, true, func(c *call, req *tg.ChannelsGetParticipantsRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if !ch.members[c.userID] {
			return nil, errChannelPrivate
		}
		_, adminsOnly := req.Filter.(*tg.ChannelParticipantsAdmins)
		e := newEntities()
		res := &tg.ChannelsChannelParticipants{}
		ids := sortedIDs(ch.members)
		for _, id := range ids {
			admin := id == ch.creator || ch.admins[id]
			if adminsOnly && !admin {
				continue
			}
			e.users[id] = true
			switch {
			case id == ch.creator:
				res.Participants = append(res.Participants, &tg.ChannelParticipantCreator{UserID: id, AdminRights: fullAdminRights()})
			case admin:
				res.Participants = append(res.Participants, &tg.ChannelParticipantAdmin{UserID: id, PromotedBy: ch.creator, Date: ch.date, AdminRights: fullAdminRights()})
			default:
				res.Participants = append(res.Participants, &tg.ChannelParticipant{UserID: id, Date: ch.date})
			}
		}
		res.Count = len(res.Participants)
		if req.Offset > 0 && req.Offset < len(res.Participants) {
			res.Participants = res.Participants[req.Offset:]
		} else if req.Offset >= len(res.Participants) {
			res.Participants = nil
		}
		if req.Limit > 0 && len(res.Participants) > req.Limit {
			res.Participants = res.Participants[:req.Limit]
		}
		if res.Participants == nil {
			res.Participants = []tg.ChannelParticipantClass{}
		}
		res.Users = s.usersLocked(c.userID, e)
		res.Chats = []tg.ChatClass{}
		return res, nil
	})
	on(s, tg.ChannelsGetFullChannelRequestTypeID, true, func(c *call, req *tg.ChannelsGetFullChannelRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ch, err := s.resolveInputChannelLocked(c.userID, req.Channel)
		if err != nil {
			return nil, err
		}
		if !ch.members[c.userID] && ch.username == "" {
			return nil, errChannelPrivate
		}
		e := newEntities()
		e.chans[ch.id] = true
		return &tg.MessagesChatFull{
			FullChat: &tg.ChannelFull{
				ID: ch.id, ParticipantsCount: len(ch.members), ReadInboxMaxID: ch.readMax[c.userID],
				ChatPhoto: &tg.PhotoEmpty{}, NotifySettings: tg.PeerNotifySettings{}, Pts: ch.pts,
				SlowmodeSeconds: ch.slowmode, ExportedInvite: nil, BotInfo: []tg.BotInfo{},
			},
			Chats: s.chatsLocked(c.userID, e), Users: []tg.UserClass{},
		}, nil
	})
}
