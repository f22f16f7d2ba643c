package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary YAML to the decoder: it must never panic, and
// every failure must be a *Error whose problems all name the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile("../../configs/example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("server: {type: custom, dc: 99999999999999999999}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		c, err := Parse("fuzz.yaml", data, LoadOptions{LookupEnv: MapEnv(testEnv), BaseDir: dir})
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", verr)
			}
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
			t.Fatalf("error is %T without problems: %v", err, err)
		}
		for _, p := range cerr.Problems {
			if p.File != "fuzz.yaml" || p.Msg == "" {
				t.Fatalf("bad problem %#v", p)
			}
		}
	})
}
