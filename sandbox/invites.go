package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
)

// Invite links, as Telegram's primary links: one per group or channel,
// made by its creator or an admin (messages.exportChatInvite), checked
// (messages.checkChatInvite) and used (messages.importChatInvite) by
// anyone who has it, private chats included.

var errInviteHashInvalid = tgerr.New(400, "INVITE_HASH_INVALID")

// inviteLinkPrefix is how links start; the hash follows.
const inviteLinkPrefix = "https://t.me/+"

// InviteLink returns the invite link of the group or channel p as account
// userID, who must be its creator or an admin.
func (s *Server) InviteLink(ctx context.Context, userID int64, p Peer) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hash, err := s.exportInviteLocked(userID, p.key())
	if err != nil {
		return "", fmt.Errorf("invite link of %v: %w", p, err)
	}
	return inviteLinkPrefix + hash, nil
}

func (s *Server) exportInviteLocked(userID int64, p peerKey) (string, error) {
	switch p.kind {
	case kindChat:
		g := s.groups[p.id]
		if g == nil || !g.members[userID] {
			return "", errPeerIDInvalid
		}
		if g.creator != userID && !g.admins[userID] {
			return "", errChatAdminRequired
		}
	case kindChannel:
		ch := s.channels[p.id]
		if ch == nil || !ch.members[userID] {
			return "", errChannelPrivate
		}
		if ch.creator != userID && !ch.admins[userID] {
			return "", errChatAdminRequired
		}
	default:
		return "", errPeerIDInvalid
	}
	for hash, to := range s.invites {
		if to == p {
			return hash, nil
		}
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	hash := base64.RawURLEncoding.EncodeToString(b[:])
	s.invites[hash] = p
	return hash, nil
}

func (s *Server) registerInvites() {
	on(s, tg.MessagesExportChatInviteRequestTypeID, true, func(c *call, req *tg.MessagesExportChatInviteRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		p, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		hash, err := s.exportInviteLocked(c.userID, p)
		if err != nil {
			return nil, err
		}
		return &tg.ChatInviteExported{Permanent: true, Link: inviteLinkPrefix + hash, AdminID: c.userID, Date: now()}, nil
	})
	on(s, tg.MessagesCheckChatInviteRequestTypeID, true, func(c *call, req *tg.MessagesCheckChatInviteRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		p, ok := s.invites[strings.TrimPrefix(req.Hash, "+")]
		if !ok {
			return nil, errInviteHashInvalid
		}
		if s.isMemberLocked(c.userID, p) {
			e := newEntities()
			e.addPeer(p)
			chats := s.chatsLocked(c.userID, e)
			if len(chats) == 0 {
				return nil, errInviteHashInvalid
			}
			return &tg.ChatInviteAlready{Chat: chats[0]}, nil
		}
		inv := &tg.ChatInvite{Photo: &tg.PhotoEmpty{}}
		switch p.kind {
		case kindChat:
			g := s.groups[p.id]
			inv.Title, inv.ParticipantsCount = g.title, len(g.members)
		case kindChannel:
			ch := s.channels[p.id]
			inv.Title, inv.ParticipantsCount = ch.title, len(ch.members)
			inv.Channel, inv.Megagroup, inv.Broadcast = true, ch.megagroup, !ch.megagroup
			inv.Public = ch.username != ""
		}
		return inv, nil
	})
	on(s, tg.MessagesImportChatInviteRequestTypeID, true, func(c *call, req *tg.MessagesImportChatInviteRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		p, ok := s.invites[strings.TrimPrefix(req.Hash, "+")]
		if !ok {
			return nil, errInviteHashInvalid
		}
		var err error
		switch p.kind {
		case kindChat:
			err = s.addGroupMemberLocked(s.groups[p.id], c.userID)
		case kindChannel:
			err = s.joinChannelLocked(c.userID, s.channels[p.id])
		}
		if err != nil {
			return nil, err
		}
		return &tg.MessagesChatInviteJoinResultOk{Updates: s.chatUpdatesLocked(c.userID, p)}, nil
	})
}

// isMemberLocked reports whether userID is in the group or channel p.
func (s *Server) isMemberLocked(userID int64, p peerKey) bool {
	switch p.kind {
	case kindChat:
		return s.groups[p.id] != nil && s.groups[p.id].members[userID]
	case kindChannel:
		return s.channels[p.id] != nil && s.channels[p.id].members[userID]
	}
	return false
}
