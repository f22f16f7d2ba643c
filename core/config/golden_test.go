package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// testEnv is the whole environment the tests see.
var testEnv = map[string]string{
	"TG_API_HASH": "0123456789abcdef0123456789abcdef",
	"TG_PASSWORD": "correct horse battery staple",
	"TG_PHONE":    "+15551234567",
	"TG_EMPTY":    "",
	"TG_SHORT":    "abc",
}

func testOptions() LoadOptions { return LoadOptions{LookupEnv: MapEnv(testEnv)} }

// TestBadConfigs loads every testdata/bad/*.yaml and compares the full
// error text with its .golden file. Run with -update to regenerate.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("found %d bad configs, want at least 30", len(files))
	}
	absDir, err := filepath.Abs("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(t.Context(), file, testOptions())
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want an error; config: %+v", file, cfg)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load(%s) error is %T, want *config.Error: %v", file, err, err)
			}
			for _, p := range cerr.Problems {
				if p.File != file {
					t.Errorf("problem %q names file %q, want %q", p, p.File, file)
				}
			}
			// Absolute paths differ between machines.
			got := strings.ReplaceAll(err.Error(), absDir, "$TESTDATA") + "\n"
			for _, secret := range []string{testEnv["TG_API_HASH"], testEnv["TG_PASSWORD"], "hunter2hunter2"} {
				if strings.Contains(got, secret) {
					t.Errorf("error text reveals a secret value:\n%s", got)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBadConfigs -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text differs from %s\n--- got:\n%s--- want:\n%s", golden, got, want)
			}
		})
	}
}
