package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gotd/td/constant"
)

// LoadOptions make loading hermetic: tests inject the environment.
type LoadOptions struct {
	// LookupEnv resolves ${NAME} references. Nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// BaseDir is what relative paths in the config are relative to. Load
	// sets it to the config file's directory when empty; Parse uses the
	// working directory when empty.
	BaseDir string
}

// MapEnv returns a LookupEnv over a fixed map, for tests and embedding.
func MapEnv(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Resolve picks the config path: the --config flag if given, else
// $TGRUNNER_CONFIG, else ./tgrunner.yaml. lookupEnv nil means os.LookupEnv.
func Resolve(flagPath string, lookupEnv func(string) (string, bool)) string {
	if flagPath != "" {
		return flagPath
	}
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if p, ok := lookupEnv(EnvConfigPath); ok && p != "" {
		return p
	}
	return "./" + DefaultFileName
}

// Load reads, decodes, provisions and validates the config at path. Config
// problems come back as *Error; an unreadable file as a wrapped os error.
func Load(ctx context.Context, path string, opts LoadOptions) (*Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	if opts.BaseDir == "" {
		opts.BaseDir = filepath.Dir(path)
	}
	return Parse(path, data, opts)
}

// Parse decodes, provisions and validates config data; name is used in
// error positions.
func Parse(name string, data []byte, opts LoadOptions) (*Config, error) {
	d := newDecoder(name, opts)
	c := Default()
	c.File = name
	d.decodeDocument(data, c)
	if c.Storage.Dir == DefaultStorageDir {
		c.Storage.Dir = d.abs(DefaultStorageDir)
	}
	provision(c)
	c.pos = d.pos
	problems := d.problems
	if !d.broken {
		problems = append(problems, c.validate(d.failed)...)
	}
	if err := asError(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// provision fills in what depends on other sections.
func provision(c *Config) {
	if c.Server.Type == ServerSandbox && c.Account.APIID == 0 && !c.Account.APIHash.IsSet() {
		// The sandbox accepts anything; the sample credentials are fine there
		// and keep sandbox configs short.
		c.Account.APIID = constant.TestAppID
		c.Account.APIHash = Secret{value: constant.TestAppHash, source: SourceDefault}
	}
	for i := range c.Plugins {
		if c.Plugins[i].Limits.Send.Rate.IsZero() {
			c.Plugins[i].Limits.Send.Rate = c.Limits.Send.Plugin.Rate
		}
		if c.Plugins[i].Limits.Send.Burst == 0 {
			c.Plugins[i].Limits.Send.Burst = c.Limits.Send.Plugin.Burst
		}
	}
}

// SecretValues returns every secret value in the config (and the forms a
// phone number is commonly printed in), for the log redactor.
func (c *Config) SecretValues() []string {
	var out []string
	for _, a := range c.allAccounts() {
		for _, s := range []Secret{a.APIHash, a.Password} {
			if s.IsSet() {
				out = append(out, s.Reveal())
			}
		}
		if a.Phone.IsSet() {
			out = append(out, PhoneForms(a.Phone.Reveal())...)
		}
	}
	if c.Storage.URL.IsSet() {
		out = append(out, c.Storage.URL.Reveal())
	}
	return out
}

// PhoneForms returns a phone number as written, digits only, and with a
// leading "+", so that each form can be masked.
func PhoneForms(phone string) []string {
	digits := make([]byte, 0, len(phone))
	for i := 0; i < len(phone); i++ {
		if phone[i] >= '0' && phone[i] <= '9' {
			digits = append(digits, phone[i])
		}
	}
	out := []string{phone}
	if len(digits) > 0 {
		out = append(out, string(digits), "+"+string(digits))
	}
	return out
}
