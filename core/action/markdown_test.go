package action

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

type ent struct {
	typ    pb.EntityType
	off    int32
	length int32
	extra  string // url or language
	user   int64
}

func ents(in []*pb.TextEntity) []ent {
	out := make([]ent, 0, len(in))
	for _, e := range in {
		x := ent{typ: e.Type, off: e.Offset, length: e.Length, extra: e.Url + e.Language, user: e.UserId}
		out = append(out, x)
	}
	return out
}

const (
	bold    = pb.EntityType_ENTITY_TYPE_BOLD
	italic  = pb.EntityType_ENTITY_TYPE_ITALIC
	code    = pb.EntityType_ENTITY_TYPE_CODE
	pre     = pb.EntityType_ENTITY_TYPE_PRE
	link    = pb.EntityType_ENTITY_TYPE_TEXT_URL
	strike  = pb.EntityType_ENTITY_TYPE_STRIKE
	spoiler = pb.EntityType_ENTITY_TYPE_SPOILER
	mention = pb.EntityType_ENTITY_TYPE_MENTION_NAME
)

func TestParseMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		text string
		ents []ent
	}{
		{"plain", "just text", "just text", []ent{}},
		{"bold", "a **b** c", "a b c", []ent{{bold, 2, 1, "", 0}}},
		{"italic", "__it__", "it", []ent{{italic, 0, 2, "", 0}}},
		{"strike and spoiler", "~~no~~ ||yes||", "no yes", []ent{{strike, 0, 2, "", 0}, {spoiler, 3, 3, "", 0}}},
		{"code keeps markers", "`**x**`", "**x**", []ent{{code, 0, 5, "", 0}}},
		{"pre with language", "```go\nfmt.Println()\n```", "fmt.Println()", []ent{{pre, 0, 13, "go", 0}}},
		{"pre without language", "```\nx := 1\n```", "x := 1", []ent{{pre, 0, 6, "", 0}}},
		{"pre on one line", "```a b```", "a b", []ent{{pre, 0, 3, "", 0}}},
		{"pre keeps first line with spaces", "```not a lang\nbody```", "not a lang\nbody", []ent{{pre, 0, 15, "", 0}}},
		{"link", "see [docs](https://example.org/a_b)", "see docs", []ent{{link, 4, 4, "https://example.org/a_b", 0}}},
		{"link with escaped paren", `[x](https://e.org/\(1\))`, "x", []ent{{link, 0, 1, "https://e.org/(1)", 0}}},
		{"mention link", "[Bob](tg://user?id=42)", "Bob", []ent{{mention, 0, 3, "", 42}}},
		{"nested", "**bold __both__**", "bold both", []ent{{bold, 0, 9, "", 0}, {italic, 5, 4, "", 0}}},
		{"styled link text", "[**b**](u)", "b", []ent{{link, 0, 1, "u", 0}, {bold, 0, 1, "", 0}}},
		{"UTF-16 offsets", "🙂 **é🙂**", "🙂 é🙂", []ent{{bold, 3, 3, "", 0}}},
		{"escapes", `\*\*not bold\*\* \_ \\ \a`, `**not bold** _ \ \a`, []ent{}},
		{"unclosed bold stays", "2 ** 3", "2 ** 3", []ent{}},
		{"unclosed code stays", "a ` b", "a ` b", []ent{}},
		{"unclosed pre stays", "```x", "```x", []ent{}},
		{"single markers are text", "a*b_c~d|e", "a*b_c~d|e", []ent{}},
		{"empty styles stay", "****x", "****x", []ent{}},
		{"empty link stays", "[](u) x", "[](u) x", []ent{}},
		{"two backticks", "``x", "``x", []ent{}},
		{"bracket without link", "[a] (b) [c]", "[a] (b) [c]", []ent{}},
		{"link with space in url stays", "[a](b c)", "[a](b c)", []ent{}},
		{"empty url stays", "[a]()", "[a]()", []ent{}},
		{"crossed markers", "**a __b** c__", "a __b c__", []ent{{bold, 0, 5, "", 0}}},
		{"close inside link", "[a **b](u) c**", "a **b c**", []ent{{link, 0, 5, "u", 0}}},
		{"link close without open", "x](u)", "x](u)", []ent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, got := ParseMarkdown(tc.in)
			require.Equal(t, tc.text, text)
			require.Equal(t, tc.ents, ents(got))
		})
	}
}

func TestUTF16Len(t *testing.T) {
	for in, want := range map[string]int{"": 0, "abc": 3, "é": 1, "🙂": 2, "a🙂b": 4, "\u20ac": 1, "\U0010FFFF": 2} {
		require.Equal(t, want, UTF16Len(in), in)
	}
}

// FuzzParseMarkdown checks the parser's promises on any input: no panic,
// valid UTF-8 in and out, entities inside the text, nothing but markup lost.
func FuzzParseMarkdown(f *testing.F) {
	for _, s := range []string{
		"**b** __i__ ~~s~~ ||p|| `c` ```go\nx\n``` [l](https://e.org) [m](tg://user?id=1)",
		"🙂 **é🙂**", `\*\\`, "**a __b** c__", "[a **b](u) c**", "](](](", "``````", "```\n```",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		text, got := ParseMarkdown(in)
		size := int32(UTF16Len(text))
		if utf8.ValidString(in) && !utf8.ValidString(text) {
			t.Fatalf("valid input %q gave invalid output %q", in, text)
		}
		for _, e := range got {
			if e.Length <= 0 || e.Offset < 0 || e.Offset+e.Length > size {
				t.Fatalf("entity %v outside text %q (%d units) from %q", e, text, size, in)
			}
		}
		if !strings.ContainsAny(in, "\\`*_~|[]") && text != in {
			t.Fatalf("input without markup changed: %q -> %q", in, text)
		}
		if len(text) > len(in) {
			t.Fatalf("output %q longer than input %q", text, in)
		}
		// Every letter and digit of the input survives, in the text or in
		// an entity's url or language (mentions keep only the user id).
		kept, mentions := count(text), false
		for _, e := range got {
			kept += count(e.Url) + count(e.Language)
			mentions = mentions || e.Type == mention
		}
		if kept > count(in) || !mentions && kept != count(in) {
			t.Fatalf("alphanumerics lost or invented: %q -> %q %v", in, text, got)
		}
	})
}

// count counts characters that are never markup.
func count(s string) int {
	n := 0
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			n++
		}
	}
	return n
}

func BenchmarkParseMarkdown(b *testing.B) {
	in := strings.Repeat("**bold** and __italic__ with `code` and [a link](https://example.org) 🙂\n", 50)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		ParseMarkdown(in)
	}
}

// BenchmarkParseMarkdownAdversarial feeds the largest accepted input made
// of unclosed markers, link halves and escapes; it must stay linear.
func BenchmarkParseMarkdownAdversarial(b *testing.B) {
	for name, unit := range map[string]string{
		"link halves": "](", "unclosed": "**[`", "escapes": `\*`, "fences": "```a`", "mixed": "[a](b ** __ ||",
	} {
		in := strings.Repeat(unit, maxRawText/len(unit))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				ParseMarkdown(in)
			}
		})
	}
}
