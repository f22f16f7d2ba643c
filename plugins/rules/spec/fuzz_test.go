package spec

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzTemplate: any text either fails to compile with an error, or renders
// within the limits against the sample data, without panicking.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"plain", "Hi {{ .Sender.Name }}", "{{ .Message.Text | upper | truncate 5 }}",
		"{{ range 10 }}x{{ end }}", `{{ .Now | in "Europe/Berlin" | date "15:04" }}`,
		"{{ nth 3 .Args }}{{ .Groups.g }}", "{{ .Nope }}", "{{ if }}", "{{ printf \"%99999d\" 1 }}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := ParseTemplate("t", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "template: ") {
				t.Fatalf("error without the template prefix: %v", err)
			}
			return
		}
		out, err := tp.Execute(sampleData())
		if err == nil && utf8.RuneCountInString(out) > MaxMessageRunes {
			t.Fatalf("output of %d runes exceeds %d", utf8.RuneCountInString(out), MaxMessageRunes)
		}
	})
}

// FuzzChatRef: a reference either parses to exactly one of id, username
// and kind, which prints back to a form that parses the same, or fails.
func FuzzChatRef(f *testing.F) {
	for _, s := range []string{"-1001234567890", "@alice", "self", "me", "private", "0", "alice", "@a", "12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseChatRef(Ref(s), true)
		if err != nil {
			return
		}
		set := 0
		if ref.ID != 0 {
			set++
		}
		if ref.Username != "" {
			set++
		}
		if ref.Kind != "" {
			set++
		}
		if set != 1 {
			t.Fatalf("%q parsed to %+v", s, ref)
		}
		again, err := ParseChatRef(Ref(ref.String()), true)
		if err != nil || again != ref {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, ref, ref.String(), again, err)
		}
	})
}

func TestTemplateChecks(t *testing.T) {
	for _, tc := range []struct {
		src, err string
	}{
		{"{{ .Sender.Nmae }}", "can't evaluate field Nmae"},
		{"{{ shout .Message.Text }}", `function "shout" not defined`},
		{"{{ truncate .Message.Text 3 }}", "wrong type"},
		{"{{ index .Args 5 }}", ""}, // depends on the data: only fails at run time
		{"{{ .Groups.anything }}", ""},
	} {
		_, err := ParseTemplate("t", tc.src)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.err)
		}
	}
	tp, err := ParseTemplate("t", "{{ range 100000 }}0123456789{{ end }}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Execute(sampleData()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("runaway output: %v", err)
	}
}
