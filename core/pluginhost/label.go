package pluginhost

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLabelBytes is the longest action label the host keeps.
const MaxLabelBytes = 64

// CleanLabel makes a plugin's action label safe to store and show: a
// plugin is untrusted, and the label ends up in the audit log, terminals
// and the status page. Invalid UTF-8 is dropped, control and format
// characters (newlines, escapes, bidi overrides) become spaces, runs of
// white space collapse to one, and the result is cut to MaxLabelBytes at
// a character boundary.
func CleanLabel(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(min(len(s), MaxLabelBytes))
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > MaxLabelBytes {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}
