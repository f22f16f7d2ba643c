package pluginhost

import (
	"context"
	"encoding/binary"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gotd/td/tg"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func TestParseChatRef(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"user:123", "user:123", ""},
		{"chat:45", "chat:45", ""},
		{"channel:678", "channel:678", ""},
		{"@Alice_1", "@Alice_1", ""},
		{"private", "private", ""},
		{"group", "group", ""},
		{"channel", "channel", ""},
		{"self", "self", ""},
		{"*", "*", ""},
		{"123", "user:123", ""},
		{"-45", "chat:45", ""},
		{"-1000000000678", "channel:678", ""},
		{"user:-1", "", "positive number"},
		{"bot:1", "", `unknown peer kind "bot"`},
		{"@ab", "", "4-32 letters"},
		{"everyone", "", "want user:ID"},
		{"0", "", "want user:ID"},
	} {
		got, err := ParseChatRef(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err == "" && got.String() != c.want:
			t.Errorf("%q: got %s, want %s", c.in, got, c.want)
		}
	}
}

func FuzzParseChatRef(f *testing.F) {
	for _, s := range []string{"user:1", "@abcd", "-1001", "group", "chat:x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseChatRef(s)
		if err != nil {
			return
		}
		if err := ref.validate(); err != nil {
			t.Fatalf("%q parsed to an invalid ref: %v", s, err)
		}
		again, err := ParseChatRef(ref.String())
		if err != nil || again.String() != ref.String() {
			t.Fatalf("%q -> %s does not round-trip: %v", s, ref, err)
		}
	})
}

func msgEvent(kind pluginv1.EventKind, chat *pluginv1.Chat, text string, out bool) *pluginv1.Event {
	m := &pluginv1.Message{Chat: chat, Text: text, Outgoing: out}
	ev := &pluginv1.Event{Kind: kind}
	if kind == pluginv1.EventKind_EVENT_KIND_EDITED_MESSAGE {
		ev.Payload = &pluginv1.Event_EditedMessage{EditedMessage: m}
	} else {
		ev.Payload = &pluginv1.Event_NewMessage{NewMessage: m}
	}
	return ev
}

func TestMatcher(t *testing.T) {
	priv := &pluginv1.Chat{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 1}, Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE, Username: "Bob"}
	super := &pluginv1.Chat{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_CHANNEL, Id: 2}, Type: pluginv1.ChatType_CHAT_TYPE_SUPERGROUP}
	newMsg := pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE
	typing := &pluginv1.Event{Kind: pluginv1.EventKind_EVENT_KIND_TYPING, Payload: &pluginv1.Event_Typing{Typing: &pluginv1.Typing{Chat: super}}}
	for _, c := range []struct {
		name string
		cfg  Filter
		sub  *pluginv1.Subscription
		ev   *pluginv1.Event
		want bool
	}{
		{"empty matches all", Filter{}, nil, typing, true},
		{"event kind", Filter{Events: []pluginv1.EventKind{newMsg}}, nil, typing, false},
		{"group kind covers supergroups", Filter{Chats: []ChatRef{{Kind: ChatGroup}}}, nil, typing, true},
		{"username, any case", Filter{Chats: []ChatRef{{Username: "bob"}}}, nil, msgEvent(newMsg, priv, "x", false), true},
		{"peer id", Filter{Chats: []ChatRef{{Peer: super.Peer}}}, nil, msgEvent(newMsg, priv, "x", false), false},
		{"incoming only", Filter{Direction: pluginv1.Direction_DIRECTION_INCOMING}, nil, msgEvent(newMsg, priv, "x", true), false},
		{"outgoing only", Filter{Direction: pluginv1.Direction_DIRECTION_OUTGOING}, nil, msgEvent(newMsg, priv, "x", true), true},
		{"prefix", Filter{TextPrefixes: []string{".", "!"}}, nil, msgEvent(newMsg, priv, "!ping", false), true},
		{"prefix skips non-messages", Filter{TextPrefixes: []string{"."}}, nil, typing, false},
		{"pattern", Filter{Pattern: regexp.MustCompile(`^\d+$`)}, nil, msgEvent(pluginv1.EventKind_EVENT_KIND_EDITED_MESSAGE, priv, "42", false), true},
		{"subscription narrows config", Filter{}, &pluginv1.Subscription{ChatTypes: []pluginv1.ChatType{pluginv1.ChatType_CHAT_TYPE_PRIVATE}}, typing, false},
		{"both must match", Filter{Chats: []ChatRef{{Kind: ChatPrivate}}}, &pluginv1.Subscription{TextPrefixes: []string{"."}}, msgEvent(newMsg, priv, ".hi", false), true},
		{"subscription chats", Filter{}, &pluginv1.Subscription{Chats: []string{"channel:2"}}, typing, true},
	} {
		m, err := newMatcher(c.cfg, c.sub)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := m.match(c.ev); got != c.want {
			t.Errorf("%s: match = %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := newMatcher(Filter{}, &pluginv1.Subscription{Chats: []string{"nonsense"}}); err == nil {
		t.Error("a bad chat in a subscription was accepted")
	}
}

func TestRawTLIsStrippedUnlessSubscribed(t *testing.T) {
	ev := &pluginv1.Event{Seq: 3, Kind: pluginv1.EventKind_EVENT_KIND_TYPING, RawTl: []byte{1, 2, 3, 4}}
	m, _ := newMatcher(Filter{}, nil)
	if got := m.forPlugin(ev); len(got.GetRawTl()) != 0 || got.GetSeq() != 3 || len(ev.GetRawTl()) != 4 {
		t.Fatalf("stripped %v, original %v", got, ev)
	}
	m, _ = newMatcher(Filter{}, &pluginv1.Subscription{RawTl: true})
	if got := m.forPlugin(ev); len(got.GetRawTl()) != 4 {
		t.Fatal("raw TL stripped from a plugin that asked for it")
	}
}

func TestRawInvokeDenyList(t *testing.T) {
	req := func(id uint32) []byte { return binary.LittleEndian.AppendUint32(nil, id) }
	for id, name := range map[uint32]string{
		tg.AccountDeleteAccountRequestTypeID: "account.deleteAccount", tg.AuthLogOutRequestTypeID: "auth.logOut",
		tg.AuthResetAuthorizationsRequestTypeID: "auth.resetAuthorizations", tg.AccountUpdatePasswordSettingsRequestTypeID: "account.updatePasswordSettings",
		tg.AccountChangePhoneRequestTypeID: "account.changePhone", tg.AuthExportAuthorizationRequestTypeID: "auth.exportAuthorization",
		tg.AccountResetAuthorizationRequestTypeID: "account.resetAuthorization", tg.AuthAcceptLoginTokenRequestTypeID: "auth.acceptLoginToken",
		tg.InvokeWithoutUpdatesRequestTypeID: "invokeWithoutUpdates",
	} {
		d := checkRawInvoke(req(id))
		if d == nil || d.code != pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN || !strings.Contains(d.reason, name) {
			t.Errorf("%s: %+v", name, d)
		}
	}
	if d := checkRawInvoke(req(tg.MessagesGetDialogsRequestTypeID)); d != nil {
		t.Errorf("messages.getDialogs refused: %+v", d)
	}
	if d := checkRawInvoke([]byte{1, 2}); d == nil || d.code != pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Errorf("short request: %+v", d)
	}
	if got := rawMethodName(req(tg.MessagesGetDialogsRequestTypeID)); got != "messages.getDialogs#a0f4cb4f" && !strings.HasPrefix(got, "messages.getDialogs") {
		t.Errorf("name %q", got)
	}
}

func TestPermissionCheck(t *testing.T) {
	p := newPermissions(Grants{Actions: []string{"send", "forward", "join"}, Chats: []ChatRef{{Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 1}}}})
	peer := func(id int64) *pluginv1.Peer { return &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: id} }
	for _, c := range []struct {
		name string
		a    *pluginv1.Action
		code pluginv1.ErrorCode // 0: allowed
	}{
		{"granted", &pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{Chat: peer(1)}}}, 0},
		{"other chat", &pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{Chat: peer(2)}}}, pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{"no chat", &pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{}}}, pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT},
		{"forward needs both chats", &pluginv1.Action{Kind: &pluginv1.Action_Forward{Forward: &pluginv1.ForwardMessages{FromChat: peer(1), ToChat: peer(2)}}}, pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{"action not granted", &pluginv1.Action{Kind: &pluginv1.Action_Delete{Delete: &pluginv1.DeleteMessages{Chat: peer(1)}}}, pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{"join by link needs *", &pluginv1.Action{Kind: &pluginv1.Action_Join{Join: &pluginv1.JoinChat{Target: &pluginv1.JoinChat_InviteLink{InviteLink: "https://t.me/+x"}}}}, pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN},
		{"get_me needs nothing", &pluginv1.Action{Kind: &pluginv1.Action_GetMe{GetMe: &pluginv1.GetMe{}}}, 0},
	} {
		info, err := describeAction(c.a)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		d := p.check(context.Background(), nil, info, c.a)
		switch {
		case c.code == 0 && d != nil:
			t.Errorf("%s: denied: %+v", c.name, d)
		case c.code != 0 && (d == nil || d.code != c.code):
			t.Errorf("%s: got %+v, want %v", c.name, d, c.code)
		}
	}
	if _, err := describeAction(&pluginv1.Action{}); err == nil {
		t.Error("empty action accepted")
	}
}

func TestBackoffDelay(t *testing.T) {
	p := RestartPolicy{BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
	for crashes, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		if got := backoffDelay(p, crashes); got != want {
			t.Errorf("%d crashes: %s, want %s", crashes, got, want)
		}
	}
	p.Jitter = 0.2
	for range 100 {
		if d := backoffDelay(p, 2); d < 160*time.Millisecond || d > 240*time.Millisecond {
			t.Fatalf("jittered delay %s outside ±20%% of 200ms", d)
		}
	}
}

func TestSpecValidation(t *testing.T) {
	good := Spec{Name: "x", Path: "/bin/x", SHA256: strings.Repeat("0", 64), WorkDir: "/tmp/x"}
	for _, c := range []struct {
		field string
		mut   func(*Spec)
	}{
		{"name", func(s *Spec) { s.Name = "Bad Name" }},
		{"path", func(s *Spec) { s.Builtin = "echo" }},
		{"path", func(s *Spec) { s.Path = "rel/x" }},
		{"sha256", func(s *Spec) { s.SHA256 = "abc" }},
		{"config", func(s *Spec) { s.Config = []byte("{") }},
		{"workdir", func(s *Spec) { s.WorkDir = "" }},
		{"permissions.actions", func(s *Spec) { s.Grants.Actions = []string{"nuke"} }},
		{"env", func(s *Spec) { s.EnvAllow = []string{"MY_SESSION"} }},
		{"queue.overflow", func(s *Spec) { s.Queue.Overflow = "spill" }},
		{"restart.backoff", func(s *Spec) { s.Restart.BackoffMax = time.Millisecond }},
		{"chats", func(s *Spec) { s.Grants.Chats = []ChatRef{{Kind: "everyone"}} }},
	} {
		s := good
		c.mut(&s)
		err := s.WithDefaults().Validate()
		se, ok := err.(*SpecError)
		if !ok || se.Field != c.field {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
	if err := good.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
}
