package pluginhost_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tgrunner/tgrunner/core/pluginhost"
	"github.com/tgrunner/tgrunner/core/pluginhost/hosttest"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

var labelCases = []struct {
	name, in, want string
}{
	{"empty", "", ""},
	{"plain", "greet", "greet"},
	{"unicode kept", "привет 👋", "привет 👋"},
	{"newline becomes a space", "greet\nplugin:admin ok", "greet plugin:admin ok"},
	{"terminal escape dropped", "a\x1b[31mred", "a [31mred"},
	{"control runs collapse", "a\r\n\t\x00b", "a b"},
	{"edges trimmed", "  \n greet \t", "greet"},
	{"invalid UTF-8 dropped", "gr\xffe\xc3et", "greet"},
	{"bidi override dropped", "abc\u202edcba", "abc dcba"},
	{"cut at 64 bytes", strings.Repeat("x", 100), strings.Repeat("x", 64)},
	{"cut at a character", strings.Repeat("x", 63) + "é", strings.Repeat("x", 63)},
	{"only controls", "\n\x01\x7f", ""},
}

func TestCleanLabel(t *testing.T) {
	for _, c := range labelCases {
		t.Run(c.name, func(t *testing.T) {
			if got := pluginhost.CleanLabel(c.in); got != c.want {
				t.Fatalf("CleanLabel(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func FuzzCleanLabel(f *testing.F) {
	for _, c := range labelCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := pluginhost.CleanLabel(in)
		if len(out) > pluginhost.MaxLabelBytes || !utf8.ValidString(out) {
			t.Fatalf("CleanLabel(%q) = %q: too long or not UTF-8", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("CleanLabel(%q) = %q keeps %U", in, out, r)
			}
		}
		if out != strings.TrimSpace(out) || strings.Contains(out, "  ") {
			t.Fatalf("CleanLabel(%q) = %q: stray spaces", in, out)
		}
		if again := pluginhost.CleanLabel(out); again != out {
			t.Fatalf("CleanLabel is not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}

// A real plugin process sends labels as they are: the executor and the
// audit log get them cleaned, and the call stays the plugin's own, whatever
// the label claims, so the guard's per-plugin budgets and the permissions
// still apply to it.
func TestActionLabelIsCleanedAndNeverChangesThePlugin(t *testing.T) {
	limited := spec(t, "limited", "probe")
	limited.Grants = pluginhost.Grants{Actions: []string{"send"}, Chats: []pluginhost.ChatRef{mustChat(t, "user:5")}}
	resolver := hosttest.Resolver{
		"user:6": {Peer: &pluginv1.Peer{Kind: pluginv1.PeerKind_PEER_KIND_USER, Id: 6}, Type: pluginv1.ChatType_CHAT_TYPE_PRIVATE},
	}
	e := start(t, pluginhost.Options{Resolver: resolver}, limited)

	cases := []struct {
		to, label, wantLabel, wantResult string
	}{
		// (Invalid UTF-8 never gets this far: protobuf refuses it in a
		// string field on both ends. CleanLabel drops it all the same.)
		{"user:5", "", "", "OK"},
		{"user:5", "greet", "greet", "OK"},
		{"user:5", "plugin:admin\nsource: owner", "plugin:admin source: owner", "OK"},
		{"user:5", "\x1b[2J\u202e" + strings.Repeat("long", 40), "[2J " + strings.Repeat("long", 15), "OK"},
		// A label is no way around a permission, and a denial records it.
		{"user:6", "owner", "owner", "ERROR_CODE_FORBIDDEN"},
	}
	for _, c := range cases {
		seq := e.feeds.Get("limited").Publish(text(fmt.Sprintf("labelled %s %s", c.to, hex.EncodeToString([]byte(c.label)))))
		if got := e.report(t, "limited", fmt.Sprintf("result:%d", seq)); !strings.HasPrefix(got, c.wantResult) {
			t.Fatalf("label %q to %s: got %q, want %s", c.label, c.to, got, c.wantResult)
		}
	}
	calls := e.exec.Calls()
	if len(calls) != 4 {
		t.Fatalf("executor got %d calls, want 4: %+v", len(calls), calls)
	}
	for i, c := range calls {
		if c.Plugin != "limited" || c.CauseSeq == 0 {
			t.Errorf("call %d: plugin %q cause %d, want limited and the event", i, c.Plugin, c.CauseSeq)
		}
		if c.Label != cases[i].wantLabel {
			t.Errorf("call %d: label %q, want %q", i, c.Label, cases[i].wantLabel)
		}
	}
	var denied []pluginhost.AuditEntry
	for _, a := range e.audit.Entries() {
		if a.Kind == pluginhost.AuditDenied {
			denied = append(denied, a)
		}
	}
	if len(denied) != 1 || denied[0].Plugin != "limited" || denied[0].Label != "owner" || denied[0].Chat != "user:6" {
		t.Fatalf("denials audited: %+v, want one of limited labelled owner to user:6", denied)
	}
}
