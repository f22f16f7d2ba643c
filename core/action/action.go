package action

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/event"
	"github.com/tgrunner/tgrunner/core/peers"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Call is one request to act on the account.
type Call struct {
	// Source says who asked: "plugin:NAME", "rule:NAME", "owner" or "runner".
	Source   string
	Action   *pb.Action
	CauseSeq uint64
	// Delivery tells apart the deliveries of the cause event to the
	// source: the plugin host gives the number of the plugin's process,
	// since an event is delivered again only to a new process.
	Delivery int
	// Label is what a plugin called the action (e.g. the rule that made it),
	// for the audit log only: limits and budgets stay keyed on Source.
	Label string
}

// Limits Telegram applies to a normal (non-premium) account.
const (
	// MaxTextUnits is the longest message text, in UTF-16 code units.
	MaxTextUnits = 4096
	// MaxCaptionUnits is the longest media caption, in UTF-16 code units.
	MaxCaptionUnits = 1024
	// MaxIDs is the most message ids one call may name.
	MaxIDs = 100
	// MaxHistoryLimit is the most messages one history call returns.
	MaxHistoryLimit = 100
	// DefaultHistoryLimit is used when a history call gives no limit.
	DefaultHistoryLimit = 20
	// DefaultMaxFileBytes caps downloads and uploads unless Options say otherwise.
	DefaultMaxFileBytes = 10 << 20
)

// Options tune an Executor. The zero value is usable.
type Options struct {
	// MaxDownloadBytes caps one download; a Download action's max_bytes can
	// only lower it. Default 10 MiB.
	MaxDownloadBytes int64
	// MaxUploadBytes caps one SendMedia file. Default 10 MiB.
	MaxUploadBytes int64
	// Logger receives warnings that do not fail an action (a peer that could
	// not be saved after a successful send). Nil means no logs.
	Logger *zap.Logger
	// Rand is the source of random_id values and upload file ids. Default
	// crypto/rand.
	Rand io.Reader
}

func (o *Options) setDefaults() {
	if o.MaxDownloadBytes <= 0 {
		o.MaxDownloadBytes = DefaultMaxFileBytes
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = DefaultMaxFileBytes
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
}

// Executor runs actions on the account through one tg.Client. It is safe
// for concurrent use.
type Executor struct {
	api   *tg.Client
	peers *peers.Cache
	self  func() int64
	opts  Options
	log   *zap.Logger
}

// New returns an executor calling api. self returns the account's user id
// (it may be 0 until the runner has logged in; actions addressing the
// account itself need it).
func New(api *tg.Client, peerCache *peers.Cache, self func() int64, opts Options) *Executor {
	opts.setDefaults()
	return &Executor{api: api, peers: peerCache, self: self, opts: opts, log: opts.Logger}
}

// Execute runs one action and never returns nil. Failures come back as
// ActionResult.error with a typed code.
func (x *Executor) Execute(ctx context.Context, call Call) *pb.ActionResult {
	res, err := x.execute(ctx, call.Action)
	if err != nil && tgerr.Is(err, "RANDOM_ID_DUPLICATE") && givenRandomID(call.Action) {
		// A retried send (after a crash or a lost answer) that Telegram
		// already has: it was sent once, which is what the caller wanted.
		return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}}
	}
	if err != nil {
		return &pb.ActionResult{Error: ErrorOf(err)}
	}
	if res == nil {
		return ErrorResult(pb.ErrorCode_ERROR_CODE_INTERNAL, "the action produced no result")
	}
	return res
}

func (x *Executor) execute(ctx context.Context, a *pb.Action) (*pb.ActionResult, error) {
	if a == nil || a.Kind == nil {
		return nil, invalidf("action: no action kind set")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch k := a.Kind.(type) {
	case *pb.Action_Send:
		return x.send(ctx, k.Send)
	case *pb.Action_Edit:
		return x.edit(ctx, k.Edit)
	case *pb.Action_Delete:
		return x.delete(ctx, k.Delete)
	case *pb.Action_Forward:
		return x.forward(ctx, k.Forward)
	case *pb.Action_React:
		return x.react(ctx, k.React)
	case *pb.Action_MarkRead:
		return x.markRead(ctx, k.MarkRead)
	case *pb.Action_Typing:
		return x.typing(ctx, k.Typing)
	case *pb.Action_History:
		return x.history(ctx, k.History)
	case *pb.Action_GetMessages:
		return x.getMessages(ctx, k.GetMessages)
	case *pb.Action_Resolve:
		return x.resolve(ctx, k.Resolve)
	case *pb.Action_GetChat:
		return x.getChat(ctx, k.GetChat)
	case *pb.Action_GetMe:
		return x.getMe(ctx)
	case *pb.Action_Download:
		return x.download(ctx, k.Download)
	case *pb.Action_SendMedia:
		return x.sendMedia(ctx, k.SendMedia)
	case *pb.Action_Join:
		return x.join(ctx, k.Join)
	case *pb.Action_Leave:
		return x.leave(ctx, k.Leave)
	case *pb.Action_RawInvoke:
		return x.rawInvoke(ctx, k.RawInvoke)
	case *pb.Action_KvGet, *pb.Action_KvSet, *pb.Action_KvDelete, *pb.Action_KvList:
		return nil, invalidf("kv actions are served by the plugin host")
	case *pb.Action_RunnerStatus, *pb.Action_Pause, *pb.Action_Resume, *pb.Action_ListPlugins:
		return nil, invalidf("runner control actions (%s) are served by the runner, not the account executor", Kind(a))
	}
	return nil, invalidf("action: unknown kind %T", a.Kind)
}

// Kind is the stable name of an action kind, as used in permissions, the
// guard's policy and the audit log. It is "" for a nil or empty action.
func Kind(a *pb.Action) string {
	switch a.GetKind().(type) {
	case *pb.Action_Send:
		return "send"
	case *pb.Action_Edit:
		return "edit"
	case *pb.Action_Delete:
		return "delete"
	case *pb.Action_Forward:
		return "forward"
	case *pb.Action_React:
		return "react"
	case *pb.Action_MarkRead:
		return "mark_read"
	case *pb.Action_Typing:
		return "typing"
	case *pb.Action_History:
		return "history"
	case *pb.Action_GetMessages:
		return "get_messages"
	case *pb.Action_Resolve:
		return "resolve"
	case *pb.Action_GetChat:
		return "get_chat"
	case *pb.Action_GetMe:
		return "get_me"
	case *pb.Action_Download:
		return "download"
	case *pb.Action_SendMedia:
		return "send_media"
	case *pb.Action_Join:
		return "join"
	case *pb.Action_Leave:
		return "leave"
	case *pb.Action_RawInvoke:
		return "raw_invoke"
	case *pb.Action_KvGet:
		return "kv_get"
	case *pb.Action_KvSet:
		return "kv_set"
	case *pb.Action_KvDelete:
		return "kv_delete"
	case *pb.Action_KvList:
		return "kv_list"
	case *pb.Action_RunnerStatus:
		return "runner_status"
	case *pb.Action_Pause:
		return "pause"
	case *pb.Action_Resume:
		return "resume"
	case *pb.Action_ListPlugins:
		return "list_plugins"
	}
	return ""
}

// TargetChat is the chat an action acts on or reads from: for forward, the
// chat written to (see SourceChat for the other one). It is nil for actions
// without one (resolve, get_me, join by invite link, raw_invoke, kv_*,
// runner control).
func TargetChat(a *pb.Action) *pb.Peer {
	switch k := a.GetKind().(type) {
	case *pb.Action_Send:
		return k.Send.GetChat()
	case *pb.Action_Edit:
		return k.Edit.GetChat()
	case *pb.Action_Delete:
		return k.Delete.GetChat()
	case *pb.Action_Forward:
		return k.Forward.GetToChat()
	case *pb.Action_React:
		return k.React.GetChat()
	case *pb.Action_MarkRead:
		return k.MarkRead.GetChat()
	case *pb.Action_Typing:
		return k.Typing.GetChat()
	case *pb.Action_History:
		return k.History.GetChat()
	case *pb.Action_GetMessages:
		return k.GetMessages.GetChat()
	case *pb.Action_GetChat:
		return k.GetChat.GetChat()
	case *pb.Action_Download:
		return k.Download.GetChat()
	case *pb.Action_SendMedia:
		return k.SendMedia.GetChat()
	case *pb.Action_Join:
		return k.Join.GetChat()
	case *pb.Action_Leave:
		return k.Leave.GetChat()
	}
	return nil
}

// SourceChat is the chat a forward reads from; nil for every other kind.
func SourceChat(a *pb.Action) *pb.Peer {
	if f, ok := a.GetKind().(*pb.Action_Forward); ok {
		return f.Forward.GetFromChat()
	}
	return nil
}

// IsWrite reports whether an action changes something other people can
// see: a message, a reaction, a read receipt, a typing status, a
// membership. raw_invoke counts as a write because nobody knows what it
// does. Reads, kv_* and runner control (pause, resume, status, plugin
// list) are not writes: nobody else sees them.
func IsWrite(a *pb.Action) bool {
	switch a.GetKind().(type) {
	case *pb.Action_Send, *pb.Action_Edit, *pb.Action_Delete, *pb.Action_Forward, *pb.Action_React,
		*pb.Action_MarkRead, *pb.Action_Typing, *pb.Action_SendMedia, *pb.Action_Join, *pb.Action_Leave,
		*pb.Action_RawInvoke:
		return true
	}
	return false
}

// IsSend reports whether an action posts new messages (send, send_media,
// forward): the ones the guard's per-chat send rate applies to.
func IsSend(a *pb.Action) bool {
	switch a.GetKind().(type) {
	case *pb.Action_Send, *pb.Action_SendMedia, *pb.Action_Forward:
		return true
	}
	return false
}

// ErrorResult is a failed ActionResult.
func ErrorResult(code pb.ErrorCode, msg string) *pb.ActionResult {
	return &pb.ActionResult{Error: &pb.Error{Code: code, Message: msg}}
}

func ok() *pb.ActionResult { return &pb.ActionResult{Result: &pb.ActionResult_Ok{Ok: &pb.Ok{}}} }

func messageResult(m *pb.Message) *pb.ActionResult {
	return &pb.ActionResult{Result: &pb.ActionResult_Message{Message: m}}
}

func messagesResult(ms []*pb.Message) *pb.ActionResult {
	if ms == nil {
		ms = []*pb.Message{}
	}
	return &pb.ActionResult{Result: &pb.ActionResult_Messages{Messages: &pb.Messages{Messages: ms}}}
}

func chatResult(c *pb.Chat) *pb.ActionResult {
	return &pb.ActionResult{Result: &pb.ActionResult_Chat{Chat: c}}
}

// givenRandomID reports whether the caller fixed the random_id of a send.
func givenRandomID(a *pb.Action) bool {
	switch k := a.GetKind().(type) {
	case *pb.Action_Send:
		return k.Send.GetRandomId() != 0
	case *pb.Action_Forward:
		return k.Forward.GetRandomId() != 0
	case *pb.Action_SendMedia:
		return k.SendMedia.GetRandomId() != 0
	}
	return false
}

// pickRandomID uses the caller's random_id, or draws one.
func (x *Executor) pickRandomID(given int64) (int64, error) {
	if given != 0 {
		return given, nil
	}
	return x.randomID()
}

// randomID draws a random_id: Telegram drops a repeated one, so it must not
// repeat across restarts.
func (x *Executor) randomID() (int64, error) {
	var b [8]byte
	if _, err := io.ReadFull(x.opts.Rand, b[:]); err != nil {
		return 0, fmt.Errorf("random id: %w", err)
	}
	return int64(binary.LittleEndian.Uint64(b[:])), nil
}

// remember feeds entities of an RPC result to the peer cache. A failure
// does not fail the action (the RPC already happened); it is logged.
func (x *Executor) remember(ctx context.Context, users []tg.UserClass, chats []tg.ChatClass) {
	if len(users) == 0 && len(chats) == 0 {
		return
	}
	if err := x.peers.Remember(ctx, users, chats); err != nil {
		x.log.Warn("remember peers from an action result", zap.Error(err))
	}
}

// entities indexes a result's users and chats for conversion, falling back
// to the peer cache.
func (x *Executor) entities(users []tg.UserClass, chats []tg.ChatClass) event.Entities {
	return event.NewEntities(x.self(), users, chats, x.peers)
}
