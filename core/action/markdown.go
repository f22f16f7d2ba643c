package action

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ParseMarkdown turns tgrunner's small Markdown dialect into plain text and
// entities (offsets in UTF-16 units):
//
//	**bold**  __italic__  ~~strike~~  ||spoiler||  `code`
//	```lang
//	pre
//	```
//	[text](https://example.org)   [name](tg://user?id=123)
//
// Styles nest, except inside code and pre, whose content is taken as is.
// A backslash before an ASCII punctuation character makes it literal. A
// marker that is never closed, or encloses nothing, stays in the text as
// typed, so no input is an error and no character is lost. A pre block's first line is its language
// when it is a single word; one newline after the opening and before the
// closing fence is dropped.
func ParseMarkdown(s string) (string, []*pb.TextEntity) {
	toks := tokenizeMarkdown(s)
	partner := matchMarkdown(toks)

	var out strings.Builder
	out.Grow(len(s))
	pos := 0 // UTF-16 units written
	write := func(t string) {
		out.WriteString(t)
		pos += UTF16Len(t)
	}
	openAt := make(map[int]int)
	var ents []*pb.TextEntity
	for i, t := range toks {
		switch t.kind {
		case tokText:
			write(t.text)
		case tokCode, tokPre:
			start := pos
			write(t.text)
			if pos > start {
				e := &pb.TextEntity{Type: pb.EntityType_ENTITY_TYPE_CODE, Offset: int32(start), Length: int32(pos - start)}
				if t.kind == tokPre {
					e.Type, e.Language = pb.EntityType_ENTITY_TYPE_PRE, t.lang
				}
				ents = append(ents, e)
			}
		default: // markers and link parts
			p, matched := partner[i]
			switch {
			case !matched:
				write(t.raw)
			case p > i: // opener
				openAt[i] = pos
			default: // closer
				start := openAt[p]
				if pos == start {
					// Nothing to style: keep the markers as typed.
					write(toks[p].raw + t.raw)
					continue
				}
				e := &pb.TextEntity{Type: t.style, Offset: int32(start), Length: int32(pos - start)}
				if t.kind == tokLinkClose {
					if id, ok := mentionID(t.url); ok {
						e.Type, e.UserId = pb.EntityType_ENTITY_TYPE_MENTION_NAME, id
					} else {
						e.Url = t.url
					}
				}
				ents = append(ents, e)
			}
		}
	}
	// Outer entities first at equal offsets, as Telegram sends them. Inner
	// ones were closed first, so reversing puts outer first among equal
	// ranges before the stable sort.
	slices.Reverse(ents)
	sort.SliceStable(ents, func(a, b int) bool {
		if ents[a].Offset != ents[b].Offset {
			return ents[a].Offset < ents[b].Offset
		}
		return ents[a].Length > ents[b].Length
	})
	return out.String(), ents
}

// mentionID recognises tg://user?id=N links, which mention a user by id.
func mentionID(url string) (int64, bool) {
	rest, ok := strings.CutPrefix(url, "tg://user?id=")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0
}

type tokKind uint8

const (
	tokText tokKind = iota
	tokMarker
	tokLinkOpen
	tokLinkClose
	tokCode
	tokPre
)

type mdToken struct {
	kind  tokKind
	text  string // tokText, tokCode, tokPre: content
	raw   string // markers: the source, written back when unmatched
	style pb.EntityType
	url   string // tokLinkClose
	lang  string // tokPre
}

var markerStyles = map[string]pb.EntityType{
	"**": pb.EntityType_ENTITY_TYPE_BOLD,
	"__": pb.EntityType_ENTITY_TYPE_ITALIC,
	"~~": pb.EntityType_ENTITY_TYPE_STRIKE,
	"||": pb.EntityType_ENTITY_TYPE_SPOILER,
}

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isLangByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+#.-", c) >= 0
}

// tokenizeMarkdown splits s into tokens in one pass. Searches for closing
// fences remember their failure, so the whole pass stays linear.
func tokenizeMarkdown(s string) []mdToken {
	var toks []mdToken
	// Literal text gathers here until the next token, so many escapes in a
	// row do not copy the run again and again.
	var run strings.Builder
	text := func(t string) { run.WriteString(t) }
	flush := func() {
		if run.Len() > 0 {
			toks = append(toks, mdToken{kind: tokText, text: run.String()})
			run.Reset()
		}
	}
	emit := func(t mdToken) {
		flush()
		toks = append(toks, t)
	}
	noTriple, noSingle := false, false
	parenFailUntil := -1 // a URL scan from before this index cannot succeed
	for i := 0; i < len(s); {
		c := s[i]
		two := ""
		if i+1 < len(s) {
			two = s[i : i+2]
		}
		switch {
		case c == '\\':
			if i+1 < len(s) && isASCIIPunct(s[i+1]) {
				text(s[i+1 : i+2])
				i += 2
			} else {
				text("\\")
				i++
			}
		case strings.HasPrefix(s[i:], "```"):
			if !noTriple {
				if j := strings.Index(s[i+3:], "```"); j >= 0 {
					body := s[i+3 : i+3+j]
					lang, content := preBody(body)
					emit(mdToken{kind: tokPre, text: content, lang: lang})
					i += 3 + j + 3
					continue
				}
				noTriple = true
			}
			text("```")
			i += 3
		case c == '`':
			if !noSingle {
				if j := strings.IndexByte(s[i+1:], '`'); j > 0 {
					emit(mdToken{kind: tokCode, text: s[i+1 : i+1+j]})
					i += 1 + j + 1
					continue
				} else if j < 0 {
					noSingle = true
				}
			}
			// "``" is two literal backticks, not an empty code span.
			if two == "``" {
				text("``")
				i += 2
				continue
			}
			text("`")
			i++
		case markerStyles[two] != 0:
			emit(mdToken{kind: tokMarker, raw: two, style: markerStyles[two]})
			i += 2
		case c == '[':
			emit(mdToken{kind: tokLinkOpen, raw: "[", style: pb.EntityType_ENTITY_TYPE_TEXT_URL})
			i++
		case two == "](" && i+2 >= parenFailUntil:
			url, end, ok := scanURL(s, i+2)
			if !ok {
				parenFailUntil = end
				text("]")
				i++
				continue
			}
			emit(mdToken{kind: tokLinkClose, raw: s[i:end], style: pb.EntityType_ENTITY_TYPE_TEXT_URL, url: url})
			i = end
		default:
			j := i + 1
			for j < len(s) && strings.IndexByte("\\`*_~|[]", s[j]) < 0 {
				j++
			}
			text(s[i:j])
			i = j
		}
	}
	flush()
	return toks
}

// preBody splits a pre block into its language and content.
func preBody(body string) (lang, content string) {
	content = body
	if nl := strings.IndexByte(body, '\n'); nl >= 0 {
		first := body[:nl]
		word := first != ""
		for k := 0; k < len(first); k++ {
			if !isLangByte(first[k]) {
				word = false
				break
			}
		}
		if word || first == "" {
			lang, content = first, body[nl+1:]
		}
	}
	content = strings.TrimSuffix(content, "\n")
	return lang, content
}

// scanURL reads a link target starting at from (just after "](") up to the
// closing ")". A backslash escapes the next character. It fails at
// whitespace or at the end of s, and then returns where it stopped.
func scanURL(s string, from int) (url string, end int, ok bool) {
	var b strings.Builder
	for i := from; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ')':
			if b.Len() == 0 {
				return "", i, false
			}
			return b.String(), i + 1, true
		case isSpace(c):
			return "", i, false
		case c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]):
			b.WriteByte(s[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return "", len(s), false
}

// matchMarkdown pairs openers with closers. A closer closes the nearest
// open marker of its style; markers opened after that one and still open
// are left unmatched (literal). partner maps each matched token to its pair.
// Each style is open at most once at a time, so lookups are direct and the
// pass stays linear however many openers are left unclosed.
func matchMarkdown(toks []mdToken) map[int]int {
	partner := map[int]int{}
	var stack []int                    // token indices of open markers
	styleAt := map[pb.EntityType]int{} // open marker style -> stack position
	var linkAt []int                   // stack positions of open "[", ascending
	closeAt := func(k, closer int) {
		partner[stack[k]], partner[closer] = closer, stack[k]
		for j := len(stack) - 1; j >= k; j-- {
			if t := toks[stack[j]]; t.kind == tokMarker {
				delete(styleAt, t.style)
			} else {
				linkAt = linkAt[:len(linkAt)-1]
			}
		}
		stack = stack[:k]
	}
	for i, t := range toks {
		switch t.kind {
		case tokMarker:
			if k, open := styleAt[t.style]; open {
				closeAt(k, i)
			} else {
				styleAt[t.style] = len(stack)
				stack = append(stack, i)
			}
		case tokLinkOpen:
			linkAt = append(linkAt, len(stack))
			stack = append(stack, i)
		case tokLinkClose:
			if len(linkAt) > 0 {
				closeAt(linkAt[len(linkAt)-1], i)
			}
		}
	}
	return partner
}
