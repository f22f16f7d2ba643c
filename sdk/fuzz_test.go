package sdk

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{".ping", ".echo a b", "!x\ty", ".", "", ". x", ".é ü", "..a"} {
		f.Add(s, ".")
	}
	f.Add("!!ban me", "!!")
	f.Fuzz(func(t *testing.T, text, prefix string) {
		name, args, ok := parseCommand(text, prefix)
		if !ok {
			if name != "" || args != "" {
				t.Fatalf("no command but name %q args %q", name, args)
			}
			return
		}
		if prefix == "" || !strings.HasPrefix(text, prefix+name) || name == "" {
			t.Fatalf("%q with prefix %q parsed as %q", text, prefix, name)
		}
		if strings.IndexFunc(name, unicode.IsSpace) >= 0 {
			t.Fatalf("name %q has white space", name)
		}
		if args != strings.TrimSpace(args) || !strings.Contains(text, args) {
			t.Fatalf("args %q of %q", args, text)
		}
	})
}

type fuzzConfig struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  []string          `json:"tags"`
	Inner struct{ On bool } `json:"inner"`
	Map   map[string]int    `json:"map"`
}

func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"x","count":2}`, `{"inner":{"On":true,"off":1}}`, `{"tags":[1]}`, `{"map":{"a":"b"}}`, `[`, `null`, `{"x":1} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var c fuzzConfig
		err := decodeStrict(raw, &c)
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("%q: error %T %v is not a *ConfigError", raw, err, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "config: ") {
			t.Fatalf("%q: message %q", raw, err)
		}
	})
}
