package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tgrunner/tgrunner/core/config"
)

const (
	apiHash  = "0123456789abcdef0123456789abcdef"
	password = "correct horse battery staple"
	phone    = "+15551234567"
	authKey  = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	code     = "48213"
)

// loadConfig loads a real config so the secrets come from the same path
// the runner uses.
func loadConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	yml := "account:\n  api_id: 123456\n  api_hash: ${H}\n  password: ${P}\n  phone: ${PH}\n" + extra
	c, err := config.Parse("t.yaml", []byte(yml), config.LoadOptions{
		LookupEnv: config.MapEnv(map[string]string{"H": apiHash, "P": password, "PH": phone}),
		BaseDir:   t.TempDir(),
	})
	require.NoError(t, err)
	return c
}

type account struct {
	Phone string
	Hash  string
	ID    int64
}

type objectWithSecret struct{ hash string }

func (o objectWithSecret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("hash", o.hash)
	enc.AddInt("n", 7)
	return enc.AddObject("inner", objectWithSecret2{o.hash})
}

type objectWithSecret2 struct{ s string }

func (o objectWithSecret2) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("deep", "key="+o.s)
	return nil
}

type stringer struct{}

func (stringer) String() string { return "phone is " + phone }

// logEverything writes the secrets through every kind of field.
func logEverything(l *zap.Logger) {
	l = l.With(zap.String("with", "hash "+apiHash)).Named("login")
	l.Info("sending code to "+phone+" with api_hash "+apiHash,
		zap.String("password", password),
		zap.ByteString("bytes", []byte("pw="+password)),
		zap.Stringer("stringer", stringer{}),
		zap.Error(fmt.Errorf("auth.signIn: %w", errors.New("PASSWORD_HASH_INVALID for "+password))),
		zap.Any("struct", account{Phone: phone, Hash: apiHash, ID: 777000}),
		zap.Object("object", objectWithSecret{apiHash}),
		zap.Strings("list", []string{"x", password}),
		zap.Inline(objectWithSecret2{password}),
		zap.Int64("user_id", 123456789),
		zap.String("code", "code "+code),
		zap.String("auth_key", authKey),
	)
	l.Sugar().Infof("2FA password is %s and phone %s", password, "+1 (555) 123-4567")
}

func TestRedactionJSON(t *testing.T) {
	c := loadConfig(t, "")
	var buf bytes.Buffer
	l, err := New(config.Log{Level: "debug", Format: "json", Redact: c.Log.Redact}, Options{Output: &buf, Secrets: c.SecretValues()})
	require.NoError(t, err)
	l.Redactor.Register(code, authKey) // as login does when they appear
	logEverything(l.Logger)
	require.NoError(t, l.Close())

	out := buf.String()
	for _, secret := range []string{apiHash, password, phone, "15551234567", "555) 123-4567", code, authKey} {
		require.NotContains(t, out, secret)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec), "output is still valid JSON")
	require.Equal(t, "sending code to [redacted] with api_hash [redacted]", rec["msg"])
	require.Equal(t, "hash [redacted]", rec["with"])
	require.Equal(t, "[redacted]", rec["password"])
	require.Equal(t, "pw=[redacted]", rec["bytes"])
	require.Equal(t, "phone is [redacted]", rec["stringer"])
	require.Equal(t, "auth.signIn: PASSWORD_HASH_INVALID for [redacted]", rec["error"])
	require.Equal(t, map[string]any{"Phone": "[redacted]", "Hash": "[redacted]", "ID": float64(777000)}, rec["struct"])
	require.Equal(t, map[string]any{"hash": "[redacted]", "n": float64(7), "inner": map[string]any{"deep": "key=[redacted]"}}, rec["object"])
	require.Equal(t, []any{"x", "[redacted]"}, rec["list"])
	require.Equal(t, "key=[redacted]", rec["deep"])
	require.Equal(t, float64(123456789), rec["user_id"], "ids are not phone numbers in plus mode")
	require.Equal(t, "code [redacted]", rec["code"])
	require.Equal(t, "[redacted]", rec["auth_key"])
	require.Equal(t, "login", rec["logger"])
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, "2FA password is [redacted] and phone [phone]", rec["msg"], "unregistered phones are masked by pattern")
}

func TestRedactionText(t *testing.T) {
	c := loadConfig(t, "")
	var buf bytes.Buffer
	l, err := New(config.Log{Level: "info", Format: "text", Redact: c.Log.Redact}, Options{Output: &buf, Secrets: c.SecretValues()})
	require.NoError(t, err)
	l.Redactor.Register(code, authKey)
	logEverything(l.Logger)
	l.Debug("debug is below the level " + apiHash)

	out := buf.String()
	for _, secret := range []string{apiHash, password, phone, code, authKey} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "INFO\tlogin\tsending code to [redacted] with api_hash [redacted]")
	require.Contains(t, out, `"password": "[redacted]"`)
	require.NotContains(t, out, "debug is below")
}

func TestPhonePolicies(t *testing.T) {
	tests := []struct {
		policy config.Redact
		in     string
		want   string
	}{
		{config.Redact{PhoneNumbers: "plus"}, "call +44 20 7946 0958 or chat 1234567890", "call [phone] or chat 1234567890"},
		{config.Redact{PhoneNumbers: "plus"}, "+1-555-123-4567.", "[phone]."},
		{config.Redact{PhoneNumbers: "plus"}, "version +1.2", "version +1.2"},
		{config.Redact{PhoneNumbers: "digits", MinDigits: 9}, "user 447946095812 in chat 1234 at -1001234567890123", "user [phone] in chat 1234 at -1001234567890123"},
		{config.Redact{PhoneNumbers: "digits", MinDigits: 7}, "id=7946095, n=794609", "id=[phone], n=794609"},
		{config.Redact{PhoneNumbers: "off"}, "call +44 20 7946 0958", "call +44 20 7946 0958"},
	}
	for _, tt := range tests {
		t.Run(tt.policy.PhoneNumbers+" "+tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, NewRedactor(tt.policy).Redact(tt.in))
		})
	}
}

func TestRegisterOverlapping(t *testing.T) {
	r := NewRedactor(config.Redact{PhoneNumbers: "off"})
	r.Register("abc", "abcdef", "")
	require.Equal(t, "x [redacted] y [redacted]", r.Redact("x abcdef y abc"))
	r.Register("abc") // no-op
	require.Equal(t, "[redacted]", r.Redact("abcdef"))
}

func TestLogFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs", "runner.log")
	l, err := New(config.Log{Level: "warn", Format: "json", File: path}, Options{Secrets: []string{apiHash}})
	require.NoError(t, err)
	l.Info("dropped")
	l.Warn("kept " + apiHash)
	require.NoError(t, l.Close())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(data), "dropped")
	require.Contains(t, string(data), `"msg":"kept [redacted]"`)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestNewRejectsBadSettings(t *testing.T) {
	_, err := New(config.Log{Level: "loud", Format: "json"}, Options{})
	require.ErrorContains(t, err, `log level "loud"`)
	_, err = New(config.Log{Level: "info", Format: "xml"}, Options{})
	require.ErrorContains(t, err, `log format "xml"`)
}

func BenchmarkRedactingCore(b *testing.B) {
	r := NewRedactor(config.Redact{PhoneNumbers: "plus"})
	r.Register(apiHash, password, phone)
	core := NewRedactingCore(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(discard{}), zap.InfoLevel), r)
	l := zap.New(core)
	b.ReportAllocs()
	for b.Loop() {
		l.Info("message delivered", zap.String("chat", "@someone"), zap.Int64("id", 1234567), zap.Duration("took", 1500))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
