package config

import "fmt"

// Redacted is what a Secret prints as, in every format.
const Redacted = "[redacted]"

// SecretSource says where a secret came from.
type SecretSource string

// Secret sources.
const (
	SourceNone    SecretSource = ""        // not set
	SourceLiteral SecretSource = "literal" // written in the config itself
	SourceEnv     SecretSource = "env"     // ${NAME} from the environment
	SourceFile    SecretSource = "file"    // read from a *_file path
	SourceDefault SecretSource = "default" // filled in by the runner (sandbox sample credentials)
	SourceCode    SecretSource = "code"    // set by a program through NewSecret
)

// Secret holds a sensitive value (api_hash, 2FA password, phone number).
// Every way of printing or marshalling it yields "[redacted]"; only Reveal
// returns the value. The field is unexported so reflection-based encoders
// cannot reach it either.
type Secret struct {
	value  string
	source SecretSource
	ref    string // env variable name or file path; never the value
}

// NewSecret wraps a value, for configs built in code and for tests.
func NewSecret(value string) Secret {
	if value == "" {
		return Secret{}
	}
	return Secret{value: value, source: SourceCode}
}

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s.value != "" }

// Source says where the value came from.
func (s Secret) Source() SecretSource { return s.source }

// Describe says where the value came from without revealing it, for
// summaries: "env TG_API_HASH", "file /run/secrets/api_hash", "literal",
// or "not set".
func (s Secret) Describe() string {
	switch s.source {
	case SourceEnv:
		return "env " + s.ref
	case SourceFile:
		return "file " + s.ref
	case SourceLiteral:
		return "literal"
	case SourceDefault:
		return "default"
	case SourceCode:
		return "code"
	default:
		return "not set"
	}
}

// String implements fmt.Stringer; zap.Any also uses it.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter so that no verb (%d, %x, %+v...) can
// print the struct's fields.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return Redacted, nil }

// EnvName is the environment variable the secret was read from, or "".
func (s Secret) EnvName() string {
	if s.source == SourceEnv {
		return s.ref
	}
	return ""
}

// SecretEnvNames lists the environment variables the config's secrets came
// from, so that they are never passed on to plugins.
func (c *Config) SecretEnvNames() []string {
	var out []string
	for _, a := range c.allAccounts() {
		for _, s := range []Secret{a.APIHash, a.Phone, a.Password, c.Storage.URL} {
			if n := s.EnvName(); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}
