package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// HandlerFunc handles one event (or one run of a scheduled job). Return nil
// when done, Continue to let the next matching handler of the same group
// run too, Stop to skip the later groups, or an error: the event is then
// acknowledged as failed (logged and counted by the runner, not redelivered).
type HandlerFunc func(c *Context) error

// Control values a handler may return.
var (
	// Continue: this handler passes; the next matching handler of the
	// same group runs.
	Continue = errors.New("sdk: continue with the next handler of the group")
	// Stop: the event is handled; later groups do not see it.
	Stop = errors.New("sdk: stop handling the event")
)

// Context is what a handler gets: the event, what its filters found, and
// the actions it may take. Every action is a call to the runner, which
// checks the plugin's permissions and the guard; the call carries the
// event's seq for the audit log. Context is a context.Context: it is
// cancelled when the runner goes away or the shutdown grace runs out.
//
// A Context is only valid during the handler call.
type Context struct {
	context.Context
	plugin *Plugin
	event  *pluginv1.Event // nil for scheduled jobs
	log    hclog.Logger    // made on first use: most handlers never log

	// Set by the filters of the handler that matched.
	command, argText    string
	matches, matchNames []string
}

func (c *Context) resetMatch() {
	c.command, c.argText = "", ""
	c.matches, c.matchNames = nil, nil
}

// Event is the event being handled; nil in a scheduled job.
func (c *Context) Event() *pluginv1.Event { return c.event }

// Seq is the event's journal sequence number; 0 in a scheduled job.
func (c *Context) Seq() uint64 { return c.event.GetSeq() }

// Message is the new or edited message of the event, or nil.
func (c *Context) Message() *pluginv1.Message {
	if m := c.event.GetNewMessage(); m != nil {
		return m
	}
	return c.event.GetEditedMessage()
}

// Text is the message's text, or "".
func (c *Context) Text() string { return c.Message().GetText() }

// Chat is the chat the event happened in, or nil.
func (c *Context) Chat() *pluginv1.Chat { return chatOf(c.event) }

// ChatPeer is the peer of Chat, or nil.
func (c *Context) ChatPeer() *pluginv1.Peer { return c.Chat().GetPeer() }

// Sender is the author of the message, or the actor of another event, or
// nil when unknown (channel posts).
func (c *Context) Sender() *pluginv1.User {
	if m := c.Message(); m != nil {
		return m.GetSender()
	}
	switch {
	case c.event.GetChatAction() != nil:
		return c.event.GetChatAction().GetActor()
	case c.event.GetReaction() != nil:
		return c.event.GetReaction().GetUser()
	case c.event.GetTyping() != nil:
		return c.event.GetTyping().GetUser()
	case c.event.GetUserStatus() != nil:
		return c.event.GetUserStatus().GetUser()
	}
	return nil
}

// Command is the name of the command that matched, without the prefix.
func (c *Context) Command() string { return c.command }

// ArgText is what follows the command name, trimmed.
func (c *Context) ArgText() string { return c.argText }

// Args is ArgText split on white space.
func (c *Context) Args() []string { return strings.Fields(c.argText) }

// Matches is the regex match and its groups (index 0 is the whole match).
func (c *Context) Matches() []string { return c.matches }

// Group returns the named regex group, or "".
func (c *Context) Group(name string) string {
	for i, n := range c.matchNames {
		if n == name && i < len(c.matches) {
			return c.matches[i]
		}
	}
	return ""
}

// Log is the plugin's logger, tagged with the event's seq. The runner
// forwards it into its own log under the plugin's name.
func (c *Context) Log() hclog.Logger {
	if c.log == nil {
		c.log = c.plugin.logger.With("seq", c.Seq())
	}
	return c.log
}

// Plugin is the plugin handling the event.
func (c *Context) Plugin() *Plugin { return c.plugin }

// WithLabel returns a copy of c whose actions carry label: the audit log
// shows it next to the plugin's name ("plugin:rules (greet)"), so a plugin
// that acts for several things of its own (rules, feeds, schedules) can
// say which one made each call. It is only a name: budgets and
// permissions stay the plugin's. The runner keeps at most 64 bytes of it,
// without control characters. c itself is unchanged.
func (c *Context) WithLabel(label string) *Context {
	cp := *c
	cp.Context = WithLabel(c.Context, label)
	return &cp
}

// Label is the label c's actions carry, or "".
func (c *Context) Label() string { return LabelOf(c) }

type labelKey struct{}

// WithLabel returns ctx with an audit label for the actions called with
// it (see Context.WithLabel); "" removes the label.
func WithLabel(ctx context.Context, label string) context.Context {
	return context.WithValue(ctx, labelKey{}, label)
}

// LabelOf is the audit label ctx carries, or "".
func LabelOf(ctx context.Context) string {
	s, _ := ctx.Value(labelKey{}).(string)
	return s
}

// Do sends any action to the runner and waits for its result. The typed
// methods below are shortcuts for it.
func (c *Context) Do(action *pluginv1.Action) (*pluginv1.ActionResult, error) {
	res, err := c.plugin.call(c, action, c.Seq())
	if err != nil {
		return nil, err
	}
	if e := res.GetError(); e != nil {
		return nil, ErrorFromProto(e)
	}
	return res, nil
}

func (c *Context) do(name string, action *pluginv1.Action) (*pluginv1.ActionResult, error) {
	res, err := c.Do(action)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

// SendOption adjusts a sent or edited message.
type SendOption func(*sendOptions)

type sendOptions struct {
	parseMode pluginv1.ParseMode
	entities  []*pluginv1.TextEntity
	replyTo   int64
	silent    bool
	schedule  int64
	noWebpage bool
}

func collect(opts []SendOption) sendOptions {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Markdown parses the text as Markdown.
func Markdown() SendOption {
	return func(o *sendOptions) { o.parseMode = pluginv1.ParseMode_PARSE_MODE_MARKDOWN }
}

// HTML parses the text as HTML.
func HTML() SendOption {
	return func(o *sendOptions) { o.parseMode = pluginv1.ParseMode_PARSE_MODE_HTML }
}

// Entities styles the text with explicit entities (no parse mode).
func Entities(e ...*pluginv1.TextEntity) SendOption {
	return func(o *sendOptions) { o.entities = append(o.entities, e...) }
}

// ReplyTo makes the message a reply.
func ReplyTo(messageID int64) SendOption { return func(o *sendOptions) { o.replyTo = messageID } }

// Silent sends without a notification.
func Silent() SendOption { return func(o *sendOptions) { o.silent = true } }

// NoWebpage disables the link preview.
func NoWebpage() SendOption { return func(o *sendOptions) { o.noWebpage = true } }

// ScheduleAt has Telegram deliver the message at t.
func ScheduleAt(t time.Time) SendOption { return func(o *sendOptions) { o.schedule = t.Unix() } }

var errNoMessage = fmt.Errorf("%w: the event has no message", ErrInvalidArgument)

// Reply answers the event's message in its chat, as a reply to it.
func (c *Context) Reply(text string, opts ...SendOption) (*pluginv1.Message, error) {
	m := c.Message()
	if m == nil {
		return nil, fmt.Errorf("reply: %w", errNoMessage)
	}
	return c.Send(m.GetChat().GetPeer(), text, append([]SendOption{ReplyTo(m.GetId())}, opts...)...)
}

// Send sends a text message to chat.
func (c *Context) Send(chat *pluginv1.Peer, text string, opts ...SendOption) (*pluginv1.Message, error) {
	o := collect(opts)
	res, err := c.do("send", &pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{
		Chat: chat, Text: text, ParseMode: o.parseMode, Entities: o.entities,
		ReplyToMessageId: o.replyTo, Silent: o.silent, ScheduleDate: o.schedule, NoWebpage: o.noWebpage,
	}}})
	return firstMessage(res), err
}

// Edit replaces the text of a message. Only the parse mode and entity
// options apply.
func (c *Context) Edit(chat *pluginv1.Peer, messageID int64, text string, opts ...SendOption) (*pluginv1.Message, error) {
	o := collect(opts)
	res, err := c.do("edit", &pluginv1.Action{Kind: &pluginv1.Action_Edit{Edit: &pluginv1.EditMessage{
		Chat: chat, MessageId: messageID, Text: text, ParseMode: o.parseMode, Entities: o.entities,
	}}})
	return firstMessage(res), err
}

// Delete deletes messages; revoke deletes them for everyone.
func (c *Context) Delete(chat *pluginv1.Peer, revoke bool, messageIDs ...int64) error {
	_, err := c.do("delete", &pluginv1.Action{Kind: &pluginv1.Action_Delete{Delete: &pluginv1.DeleteMessages{
		Chat: chat, MessageIds: messageIDs, Revoke: revoke,
	}}})
	return err
}

// Forward forwards messages with the "forwarded from" header. Only the
// Silent option applies.
func (c *Context) Forward(from *pluginv1.Peer, messageIDs []int64, to *pluginv1.Peer, opts ...SendOption) ([]*pluginv1.Message, error) {
	return c.forward("forward", from, messageIDs, to, false, opts)
}

// Copy sends copies of messages without the "forwarded from" header.
func (c *Context) Copy(from *pluginv1.Peer, messageIDs []int64, to *pluginv1.Peer, opts ...SendOption) ([]*pluginv1.Message, error) {
	return c.forward("copy", from, messageIDs, to, true, opts)
}

func (c *Context) forward(name string, from *pluginv1.Peer, ids []int64, to *pluginv1.Peer, drop bool, opts []SendOption) ([]*pluginv1.Message, error) {
	o := collect(opts)
	res, err := c.do(name, &pluginv1.Action{Kind: &pluginv1.Action_Forward{Forward: &pluginv1.ForwardMessages{
		FromChat: from, MessageIds: ids, ToChat: to, DropAuthor: drop, Silent: o.silent,
	}}})
	return allMessages(res), err
}

// React sets the account's reaction on a message; "" removes it.
func (c *Context) React(chat *pluginv1.Peer, messageID int64, emoji string) error {
	_, err := c.do("react", &pluginv1.Action{Kind: &pluginv1.Action_React{React: &pluginv1.SendReaction{
		Chat: chat, MessageId: messageID, Reaction: emoji,
	}}})
	return err
}

// MarkRead marks a chat read up to maxID (0: everything).
func (c *Context) MarkRead(chat *pluginv1.Peer, maxID int64) error {
	_, err := c.do("mark_read", &pluginv1.Action{Kind: &pluginv1.Action_MarkRead{MarkRead: &pluginv1.MarkRead{
		Chat: chat, MaxId: maxID,
	}}})
	return err
}

// Typing shows an activity in chat: "typing", "cancel", "upload_photo",
// "record_voice", ...
func (c *Context) Typing(chat *pluginv1.Peer, action string) error {
	_, err := c.do("typing", &pluginv1.Action{Kind: &pluginv1.Action_Typing{Typing: &pluginv1.SetTyping{
		Chat: chat, Action: action,
	}}})
	return err
}

// History returns up to limit messages older than offsetID (0: the
// newest), newest first.
func (c *Context) History(chat *pluginv1.Peer, limit int, offsetID int64) ([]*pluginv1.Message, error) {
	res, err := c.do("history", &pluginv1.Action{Kind: &pluginv1.Action_History{History: &pluginv1.GetHistory{
		Chat: chat, Limit: int32(limit), OffsetId: offsetID,
	}}})
	return allMessages(res), err
}

// GetMessages fetches messages by id.
func (c *Context) GetMessages(chat *pluginv1.Peer, messageIDs ...int64) ([]*pluginv1.Message, error) {
	res, err := c.do("get_messages", &pluginv1.Action{Kind: &pluginv1.Action_GetMessages{GetMessages: &pluginv1.GetMessages{
		Chat: chat, MessageIds: messageIDs,
	}}})
	return allMessages(res), err
}

// Resolve finds a chat or user by "@username", "username", a t.me link,
// or the "+phone" of a contact. A user comes back as a private chat.
func (c *Context) Resolve(query string) (*pluginv1.Chat, error) {
	r := &pluginv1.Resolve{}
	switch q := strings.TrimSpace(query); {
	case strings.HasPrefix(q, "https://") || strings.HasPrefix(q, "http://") || strings.HasPrefix(q, "t.me/"):
		r.Query = &pluginv1.Resolve_Link{Link: q}
	case strings.HasPrefix(q, "+"):
		r.Query = &pluginv1.Resolve_Phone{Phone: q}
	default:
		r.Query = &pluginv1.Resolve_Username{Username: strings.TrimPrefix(q, "@")}
	}
	res, err := c.do("resolve", &pluginv1.Action{Kind: &pluginv1.Action_Resolve{Resolve: r}})
	if err != nil {
		return nil, err
	}
	if ch := res.GetChat(); ch != nil {
		return ch, nil
	}
	if u := res.GetUser(); u != nil {
		return userChat(u), nil
	}
	return nil, fmt.Errorf("resolve %q: %w: the runner returned neither a chat nor a user", query, ErrInternal)
}

func userChat(u *pluginv1.User) *pluginv1.Chat {
	t := pluginv1.ChatType_CHAT_TYPE_PRIVATE
	if u.GetSelf() {
		t = pluginv1.ChatType_CHAT_TYPE_SELF
	}
	return &pluginv1.Chat{
		Peer: UserPeer(u.GetId()), Type: t, Username: u.GetUsername(),
		Title: strings.TrimSpace(u.GetFirstName() + " " + u.GetLastName()),
	}
}

// GetChat returns what the runner knows of a chat.
func (c *Context) GetChat(chat *pluginv1.Peer) (*pluginv1.Chat, error) {
	res, err := c.do("get_chat", &pluginv1.Action{Kind: &pluginv1.Action_GetChat{GetChat: &pluginv1.GetChat{Chat: chat}}})
	return res.GetChat(), err
}

// Me returns the account the runner is logged in as. It answers from what
// the runner said in Configure when it can, without a round trip.
func (c *Context) Me() (*pluginv1.User, error) {
	if me := c.plugin.Settings().Me; me != nil {
		return me, nil
	}
	res, err := c.do("get_me", &pluginv1.Action{Kind: &pluginv1.Action_GetMe{GetMe: &pluginv1.GetMe{}}})
	return res.GetUser(), err
}

// Download fetches the media of a message, refusing files over maxBytes
// (the runner has its own cap too).
func (c *Context) Download(chat *pluginv1.Peer, messageID, maxBytes int64) (*pluginv1.File, error) {
	res, err := c.do("download", &pluginv1.Action{Kind: &pluginv1.Action_Download{Download: &pluginv1.Download{
		Chat: chat, MessageId: messageID, MaxBytes: maxBytes,
	}}})
	return res.GetFile(), err
}

// Upload is a file to send with SendMedia.
type Upload struct {
	Data     []byte
	FileName string
	MimeType string
	// AsPhoto sends an image as a photo instead of a document.
	AsPhoto bool
	Caption string
	ReplyTo int64
}

// SendMedia uploads and sends a file.
func (c *Context) SendMedia(chat *pluginv1.Peer, u Upload) (*pluginv1.Message, error) {
	res, err := c.do("send_media", &pluginv1.Action{Kind: &pluginv1.Action_SendMedia{SendMedia: &pluginv1.SendMedia{
		Chat: chat, Data: u.Data, FileName: u.FileName, MimeType: u.MimeType,
		AsPhoto: u.AsPhoto, Caption: u.Caption, ReplyToMessageId: u.ReplyTo,
	}}})
	return firstMessage(res), err
}

// Join joins a public group or channel.
func (c *Context) Join(chat *pluginv1.Peer) error {
	_, err := c.do("join", &pluginv1.Action{Kind: &pluginv1.Action_Join{Join: &pluginv1.JoinChat{
		Target: &pluginv1.JoinChat_Chat{Chat: chat},
	}}})
	return err
}

// JoinInvite joins by an invite link.
func (c *Context) JoinInvite(link string) error {
	_, err := c.do("join", &pluginv1.Action{Kind: &pluginv1.Action_Join{Join: &pluginv1.JoinChat{
		Target: &pluginv1.JoinChat_InviteLink{InviteLink: link},
	}}})
	return err
}

// Leave leaves a group or channel.
func (c *Context) Leave(chat *pluginv1.Peer) error {
	_, err := c.do("leave", &pluginv1.Action{Kind: &pluginv1.Action_Leave{Leave: &pluginv1.LeaveChat{Chat: chat}}})
	return err
}

// RawInvoke sends a TL-encoded request and returns the TL-encoded answer.
// It needs the raw_invoke permission; some methods stay refused even then.
func (c *Context) RawInvoke(requestTL []byte) ([]byte, error) {
	res, err := c.do("raw_invoke", &pluginv1.Action{Kind: &pluginv1.Action_RawInvoke{RawInvoke: &pluginv1.RawInvoke{RequestTl: requestTL}}})
	return res.GetRawTl(), err
}

// RunnerStatus reports how the runner and its plugins are doing. It needs
// the runner_control permission.
func (c *Context) RunnerStatus() (*pluginv1.RunnerStatus, error) {
	res, err := c.do("runner_status", &pluginv1.Action{Kind: &pluginv1.Action_RunnerStatus{RunnerStatus: &pluginv1.GetRunnerStatus{}}})
	return res.GetRunnerStatus(), err
}

// PauseRunner holds every outgoing action of the runner until
// ResumeRunner; nothing queued is lost. It needs runner_control.
func (c *Context) PauseRunner(reason string) error {
	_, err := c.do("pause", &pluginv1.Action{Kind: &pluginv1.Action_Pause{Pause: &pluginv1.PauseRunner{Reason: reason}}})
	return err
}

// ResumeRunner ends a pause. It needs runner_control.
func (c *Context) ResumeRunner() error {
	_, err := c.do("resume", &pluginv1.Action{Kind: &pluginv1.Action_Resume{Resume: &pluginv1.ResumeRunner{}}})
	return err
}

// ListPlugins describes every configured plugin. It needs runner_control.
func (c *Context) ListPlugins() ([]*pluginv1.PluginInfo, error) {
	res, err := c.do("list_plugins", &pluginv1.Action{Kind: &pluginv1.Action_ListPlugins{ListPlugins: &pluginv1.ListPlugins{}}})
	return res.GetPlugins().GetPlugins(), err
}

// KV is the plugin's key-value store, kept by the runner per plugin
// instance; it survives restarts of the plugin and of the runner.
func (c *Context) KV() KV { return KV{c: c} }

// KV reads and writes the plugin's store. Get it with Context.KV.
type KV struct{ c *Context }

// Get returns the value of key and whether it exists.
func (kv KV) Get(key string) ([]byte, bool, error) {
	res, err := kv.c.do("kv_get", &pluginv1.Action{Kind: &pluginv1.Action_KvGet{KvGet: &pluginv1.KVGet{Key: key}}})
	if err != nil {
		return nil, false, err
	}
	return res.GetKvValue().GetValue(), res.GetKvValue().GetFound(), nil
}

// Set stores value under key.
func (kv KV) Set(key string, value []byte) error {
	_, err := kv.c.do("kv_set", &pluginv1.Action{Kind: &pluginv1.Action_KvSet{KvSet: &pluginv1.KVSet{Key: key, Value: value}}})
	return err
}

// Delete removes key; removing a missing key is not an error.
func (kv KV) Delete(key string) error {
	_, err := kv.c.do("kv_delete", &pluginv1.Action{Kind: &pluginv1.Action_KvDelete{KvDelete: &pluginv1.KVDelete{Key: key}}})
	return err
}

// List returns the keys that start with prefix, sorted.
func (kv KV) List(prefix string) ([]string, error) {
	res, err := kv.c.do("kv_list", &pluginv1.Action{Kind: &pluginv1.Action_KvList{KvList: &pluginv1.KVList{Prefix: prefix}}})
	return res.GetKvKeys().GetKeys(), err
}

func firstMessage(res *pluginv1.ActionResult) *pluginv1.Message {
	if m := res.GetMessage(); m != nil {
		return m
	}
	if ms := res.GetMessages().GetMessages(); len(ms) > 0 {
		return ms[0]
	}
	return nil
}

func allMessages(res *pluginv1.ActionResult) []*pluginv1.Message {
	if ms := res.GetMessages(); ms != nil {
		return ms.GetMessages()
	}
	if m := res.GetMessage(); m != nil {
		return []*pluginv1.Message{m}
	}
	return nil
}

// ActionName is the name of an action's kind as the contract spells it:
// "send", "edit", "kv_get", ... ("" for an empty action).
func ActionName(a *pluginv1.Action) string {
	od := a.ProtoReflect().Descriptor().Oneofs().ByName("kind")
	fd := a.ProtoReflect().WhichOneof(od)
	if fd == nil {
		return ""
	}
	return string(fd.Name())
}
