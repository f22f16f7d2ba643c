package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/crypto"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/gotd/td/tgtest"
)

// call is one RPC request as seen by a handler.
type call struct {
	ctx       context.Context
	s         *Server
	sessionID int64
	key       crypto.AuthKey
	userID    int64 // 0 when the key is not authorized
	method    uint32
	noUpdates bool
}

type handlerFunc func(c *call, b *bin.Buffer) (bin.Encoder, error)

// Errors answered like Telegram's.
var (
	errAuthKeyUnregistered = tgerr.New(401, "AUTH_KEY_UNREGISTERED")
	errMethodInvalid       = tgerr.New(400, "INPUT_METHOD_INVALID")
	errInputFetchFail      = tgerr.New(400, "INPUT_FETCH_FAIL")
	errInternal            = tgerr.New(500, "INTERNAL_SERVER_ERROR")
	errPeerIDInvalid       = tgerr.New(400, "PEER_ID_INVALID")
	errUserIDInvalid       = tgerr.New(400, "USER_ID_INVALID")
	errChannelInvalid      = tgerr.New(400, "CHANNEL_INVALID")
	errChannelPrivate      = tgerr.New(400, "CHANNEL_PRIVATE")
	errChatIDInvalid       = tgerr.New(400, "CHAT_ID_INVALID")
	errMessageEmpty        = tgerr.New(400, "MESSAGE_EMPTY")
	errMessageIDInvalid    = tgerr.New(400, "MESSAGE_ID_INVALID")
	errMsgIDInvalid        = tgerr.New(400, "MSG_ID_INVALID")
	errUsernameNotOccupied = tgerr.New(400, "USERNAME_NOT_OCCUPIED")
	errUsernameInvalid     = tgerr.New(400, "USERNAME_INVALID")
	errChatWriteForbidden  = tgerr.New(403, "CHAT_WRITE_FORBIDDEN")
	errChatAdminRequired   = tgerr.New(400, "CHAT_ADMIN_REQUIRED")
	errUserNotParticipant  = tgerr.New(400, "USER_NOT_PARTICIPANT")
	errPeerFlood           = tgerr.New(400, "PEER_FLOOD")
	errMessageNotModified  = tgerr.New(400, "MESSAGE_NOT_MODIFIED")
	errMessageAuthorReq    = tgerr.New(403, "MESSAGE_AUTHOR_REQUIRED")
)

func floodWait(seconds int) error {
	if seconds < 1 {
		seconds = 1
	}
	return tgerr.New(420, fmt.Sprintf("FLOOD_WAIT_%d", seconds))
}

// methodNames maps constructor ids to TL names without the "#id" suffix.
var methodNames = sync.OnceValue(func() map[uint32]string {
	out := map[uint32]string{}
	for id, name := range tg.TypesMap() {
		if i := strings.IndexByte(name, '#'); i >= 0 {
			name = name[:i]
		}
		out[id] = name
	}
	return out
})

// MethodName returns the TL name ("messages.sendMessage") of a request id.
func MethodName(id uint32) string {
	if n, ok := methodNames()[id]; ok {
		return n
	}
	return fmt.Sprintf("0x%08x", id)
}

// on registers a typed handler for request type id.
func on[R any, P interface {
	*R
	bin.Decoder
}](s *Server, id uint32, needAuth bool, fn func(c *call, req P) (bin.Encoder, error)) {
	s.handlers[id] = func(c *call, b *bin.Buffer) (bin.Encoder, error) {
		if needAuth && c.userID == 0 {
			return nil, errAuthKeyUnregistered
		}
		req := P(new(R))
		if err := req.Decode(b); err != nil {
			return nil, errInputFetchFail
		}
		return fn(c, req)
	}
}

// peekObject decodes a wrapped query by peeking its id only.
type peekObject struct{ id uint32 }

func (p *peekObject) Decode(b *bin.Buffer) error {
	id, err := b.PeekID()
	p.id = id
	return err
}

func (p *peekObject) Encode(*bin.Buffer) error { return errors.New("peekObject is decode-only") }

// onMessage is the tgtest handler: it unwraps invoke* envelopes, dispatches,
// and answers every failure as an RPC error so the connection survives.
func (s *Server) onMessage(srv *tgtest.Server, req *tgtest.Request) error {
	c := &call{
		ctx:       req.RequestCtx,
		s:         s,
		sessionID: req.Session.ID,
		key:       req.Session.AuthKey,
	}
	res, err := s.dispatch(c, req.Buf)
	if err != nil {
		var rpcErr *tgerr.Error
		if !errors.As(err, &rpcErr) {
			s.log.Warn("handler error", zap.String("method", MethodName(c.method)), zap.Error(err))
			rpcErr = errInternal
		}
		if err := srv.SendErr(req, rpcErr); err != nil {
			return err
		}
		s.faultDisconnect(c)
		return nil
	}
	if err := srv.SendResult(req, res); err != nil {
		return err
	}
	s.faultDisconnect(c)
	return nil
}

// dispatch runs one request body. It never panics and never returns a
// non-RPC error for bad input; the fuzz target calls it directly.
func (s *Server) dispatch(c *call, b *bin.Buffer) (res bin.Encoder, rErr error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", zap.String("method", MethodName(c.method)), zap.Any("panic", r), zap.Stack("stack"))
			res, rErr = nil, errInternal
		}
	}()
	for {
		id, err := b.PeekID()
		if err != nil {
			return nil, errInputFetchFail
		}
		var wrapper bin.Decoder
		q := &peekObject{}
		switch id {
		case tg.InvokeWithLayerRequestTypeID:
			wrapper = &tg.InvokeWithLayerRequest{Query: q}
		case tg.InitConnectionRequestTypeID:
			wrapper = &tg.InitConnectionRequest{Query: q}
		case tg.InvokeWithoutUpdatesRequestTypeID:
			wrapper = &tg.InvokeWithoutUpdatesRequest{Query: q}
			c.noUpdates = true
		case tg.InvokeAfterMsgRequestTypeID:
			wrapper = &tg.InvokeAfterMsgRequest{Query: q}
		case tg.InvokeAfterMsgsRequestTypeID:
			wrapper = &tg.InvokeAfterMsgsRequest{Query: q}
		case tg.InvokeWithTakeoutRequestTypeID:
			wrapper = &tg.InvokeWithTakeoutRequest{Query: q}
		case tg.InvokeWithMessagesRangeRequestTypeID:
			wrapper = &tg.InvokeWithMessagesRangeRequest{Query: q}
		}
		if wrapper == nil {
			break
		}
		if err := wrapper.Decode(b); err != nil {
			return nil, errInputFetchFail
		}
	}
	id, _ := b.PeekID()
	c.method = id
	h, ok := s.handlers[id]
	if !ok {
		return nil, errMethodInvalid
	}

	s.mu.Lock()
	if ks := s.keys[c.key.ID]; ks != nil {
		c.userID = ks.userID
	}
	if c.userID != 0 && c.sessionID != 0 && !s.closed {
		ls := s.touchSessionLocked(c.sessionID, c.key, c.userID)
		if c.noUpdates {
			ls.noUpdates = true
		}
	}
	faults := s.faults
	s.mu.Unlock()

	if err := s.faultBefore(c, faults); err != nil {
		return nil, err
	}
	if ferr, done := s.flaky(faults, MethodName(c.method)); ferr != nil {
		if done {
			_, _ = h(c, b)
		}
		return nil, ferr
	}
	return h(c, b)
}
