package sandbox

import (
	"encoding/binary"
	"strings"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
)

// The world: every account, chat, channel and message of the sandbox. All of
// it is guarded by Server.mu; tg objects built from it are either fresh per
// use or encoded while the lock is held, because gotd's encoders write flag
// fields and must never run on a shared object concurrently.

type peerKind uint8

const (
	kindUser peerKind = iota + 1
	kindChat
	kindChannel
)

// peerKey names a dialog peer from one account's point of view.
type peerKey struct {
	kind peerKind
	id   int64
}

func (p peerKey) tg() tg.PeerClass {
	switch p.kind {
	case kindChat:
		return &tg.PeerChat{ChatID: p.id}
	case kindChannel:
		return &tg.PeerChannel{ChannelID: p.id}
	default:
		return &tg.PeerUser{UserID: p.id}
	}
}

func peerKeyOf(p tg.PeerClass) peerKey {
	switch p := p.(type) {
	case *tg.PeerChat:
		return peerKey{kindChat, p.ChatID}
	case *tg.PeerChannel:
		return peerKey{kindChannel, p.ChannelID}
	case *tg.PeerUser:
		return peerKey{kindUser, p.UserID}
	}
	return peerKey{}
}

type account struct {
	id        int64
	phone     string
	firstName string
	lastName  string
	username  string
	bot       bool

	contacts map[int64]bool
	// strangers this account wrote to first (PEER_FLOOD accounting).
	wroteFirst map[int64]bool

	password *srpPassword

	// Per-account update sequence.
	pts    int
	events []ptsEvent

	// Message box of private chats and basic groups (ids are per account).
	nextMsgID int
	msgs      map[int]*message
	dialogs   map[peerKey]*dialog
	// scheduled messages by peer (not yet sent).
	scheduled   map[peerKey][]*message
	nextSchedID int
	randomIDs   map[int64]bool
}

type dialog struct {
	peer          peerKey
	ids           []int // ascending message ids in this account's box (or channel)
	readInboxMax  int
	readOutboxMax int
	unread        int
	topMessage    int
}

// ptsEvent is one entry of an account's or channel's update log.
type ptsEvent struct {
	pts    int
	count  int
	date   int
	update tg.UpdateClass
	newMsg tg.MessageClass // set for new messages (difference new_messages)
	// author and authorMsg: a channel message as its author sees it
	// (outgoing); everyone else gets newMsg.
	author    int64
	authorMsg tg.MessageClass
	userIDs   []int64
	chatIDs   []int64 // basic groups
	chanIDs   []int64
	ephemeral bool
}

type basicGroup struct {
	id      int64
	title   string
	creator int64
	admins  map[int64]bool
	members map[int64]bool
	date    int
	version int
}

type channel struct {
	id        int64
	title     string
	username  string
	megagroup bool
	creator   int64
	admins    map[int64]bool
	members   map[int64]bool
	slowmode  int
	date      int
	// last send time per member for slow mode, unix seconds.
	lastSend map[int64]int64

	pts       int
	events    []ptsEvent
	nextMsgID int
	msgs      map[int]*message
	ids       []int
	readMax   map[int64]int // per-member read inbox max
}

// message is one copy of a message in a box (account box or channel).
type message struct {
	id        int
	owner     int64 // account whose box holds it; 0 for channel messages
	peer      peerKey
	from      int64
	out       bool
	date      int
	text      string
	entityRaw []rawObject
	replyTo   int
	silent    bool
	post      bool
	fwd       *fwdInfo
	media     *mediaRef
	editDate  int
	deleted   bool
	// author is who sent it, also for channel posts without from_id.
	author       int64
	fromSchedule bool
	// reactions by user id -> emoticon.
	reactions map[int64]string
	// copies links all boxes' copies of one logical message (private chats
	// and basic groups), so edits and revokes reach every copy.
	copies *[]msgRef
	// action is set for service messages.
	action tg.MessageActionClass
}

type msgRef struct {
	owner int64
	id    int
}

type mediaRef struct {
	fileID   int64
	photo    bool
	name     string
	mimeType string
	size     int64
}

func normalizeUsername(u string) string {
	return strings.ToLower(strings.TrimPrefix(u, "@"))
}

// accessHash derives the access hash viewer must present for target. It is
// per viewer like Telegram's, so a hash leaked from another account fails.
func (s *Server) accessHash(viewer, target int64, kind peerKind) int64 {
	var b [25]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(viewer))
	binary.LittleEndian.PutUint64(b[8:], uint64(target))
	b[16] = byte(kind)
	h := s.hashSecret
	for _, c := range b {
		h ^= uint64(c)
		h *= 0x100000001b3
		h ^= h >> 29
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return int64(h &^ (1 << 63))
}

// rawObject is an already-encoded TL object.
type rawObject []byte

func (r rawObject) Encode(b *bin.Buffer) error {
	b.Put(r)
	return nil
}

func encodeRaw(e bin.Encoder) (rawObject, error) {
	var b bin.Buffer
	if err := e.Encode(&b); err != nil {
		return nil, err
	}
	return rawObject(b.Buf), nil
}
