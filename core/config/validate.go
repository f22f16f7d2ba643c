package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Validate checks the rules that span keys or need the whole config. Load
// and Parse run it; call it again on a Config built or changed in code. It
// reads each enabled external plugin's binary to check its sha256, and
// recomputes c.Warnings.
func (c *Config) Validate() error {
	return asError(c.validate(nil))
}

type validator struct {
	c *Config
	// prefix is put before every path: "accounts[1]." while checking an
	// account's own plugins and limits.
	prefix   string
	failed   map[string]bool
	problems []Problem
}

// validate returns the problems, skipping keys in failed: the decoder has
// already said what is wrong with them.
func (c *Config) validate(failed map[string]bool) []Problem {
	v := &validator{c: c, failed: failed}
	c.Warnings = nil
	if len(c.Accounts) == 0 {
		v.accountAt("account", c.Account)
	}
	v.accounts()
	v.server()
	if c.Version != CurrentVersion {
		v.errorf("version", "this runner reads version %d; got %d", CurrentVersion, c.Version)
	}
	if c.Storage.Dir == "" {
		v.errorf("storage.dir", "must not be empty")
	}
	v.storageURL()
	v.enum("log.level", c.Log.Level, LevelDebug, LevelInfo, LevelWarn, LevelError)
	v.enum("log.format", c.Log.Format, FormatText, FormatJSON)
	v.enum("log.redact.phone_numbers", c.Log.Redact.PhoneNumbers, RedactPhonesPlus, RedactPhonesDigits, RedactPhonesOff)
	v.limits()
	v.plugins()
	v.rules()
	return v.problems
}

// skip reports whether path or one of its ancestors failed to decode.
func (v *validator) skip(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if v.failed[p] {
			return true
		}
	}
	return false
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// at finds where path (or its nearest written ancestor) is in the file.
func (v *validator) at(path string) position {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := v.c.pos[p]; ok {
			return pos
		}
	}
	return position{}
}

func (v *validator) problem(path string, err error, format string, args ...any) {
	if v.skip(path) {
		return
	}
	pos := v.at(path)
	v.problems = append(v.problems, Problem{
		File: v.c.File, Line: pos.Line, Col: pos.Col, Path: path,
		Msg: fmt.Sprintf(format, args...), Err: err,
	})
}

func (v *validator) errorf(path, format string, args ...any) { v.problem(path, nil, format, args...) }

func (v *validator) warnf(path, format string, args ...any) {
	pos := v.at(path)
	v.c.Warnings = append(v.c.Warnings, Problem{
		File: v.c.File, Line: pos.Line, Col: pos.Col, Path: path, Msg: fmt.Sprintf(format, args...),
	})
}

func (v *validator) enum(path, val string, allowed ...string) {
	if !contains(allowed, val) {
		v.errorf(path, "expected one of %s; got %q", strings.Join(allowed, ", "), val)
	}
}

var (
	apiHashRe = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	phoneRe   = regexp.MustCompile(`^\+?[0-9]{7,15}$`)
)

const getAPIID = "get your own at https://my.telegram.org → API development tools"

func (v *validator) accountAt(at string, a Account) {
	sandbox := v.c.Server.Type == ServerSandbox
	if a.APIID == 0 && !sandbox {
		v.errorf(at+".api_id", "required: the api_id of your app (%s)", getAPIID)
	}
	switch {
	case !a.APIHash.IsSet() && !sandbox:
		v.errorf(at+".api_hash", "required: set api_hash: ${TG_API_HASH} or api_hash_file: /run/secrets/tg_api_hash (%s)", getAPIID)
	case a.APIHash.IsSet() && !apiHashRe.MatchString(a.APIHash.Reveal()):
		// Never print the value: only its shape.
		v.errorf(at+".api_hash", "expected 32 hexadecimal characters as shown on my.telegram.org, got %d characters", len(a.APIHash.Reveal()))
	}
	for _, s := range []struct {
		key    string
		secret Secret
	}{{"api_hash", a.APIHash}, {"password", a.Password}} {
		if s.secret.Source() != SourceLiteral {
			continue
		}
		path := at + "." + s.key
		if a.AllowLiteralSecrets {
			v.warnf(path, "written literally in the config (allowed by %s.allow_literal_secrets); anyone who can read the file can read it", at)
			continue
		}
		v.errorf(path, "a literal %s in the config file is refused: use %s: ${TG_%s} or %s_file: /run/secrets/tg_%s, or set %s.allow_literal_secrets: true",
			s.key, s.key, strings.ToUpper(s.key), s.key, s.key, at)
	}
	if a.Phone.IsSet() {
		digits := strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "").Replace(a.Phone.Reveal())
		if !phoneRe.MatchString(digits) {
			v.errorf(at+".phone", "expected an international phone number such as +15551234567 (7 to 15 digits)")
		}
	}
	if app, published := PublishedAPIID(a.APIID); published && v.c.Server.Type == ServerProduction {
		if a.AllowPublishedAPIID {
			v.warnf(at+".api_id", "%d is a published api_id (%s); Telegram may answer API_ID_PUBLISHED_FLOOD", a.APIID, app)
			return
		}
		v.problem(at+".api_id", ErrPublishedAPIID,
			"%d is a published api_id (%s); Telegram limits published ids server-side and refuses them with API_ID_PUBLISHED_FLOOD, and using one risks the account. "+
				"Every app needs its own: log in at https://my.telegram.org, open \"API development tools\", create an app and copy its api_id and api_hash. "+
				"(To use it anyway, set %s.allow_published_api_id: true.)", a.APIID, app, at)
	}
}

func (v *validator) server() {
	s := v.c.Server
	if !contains(serverTypes, string(s.Type)) {
		v.errorf("server", "expected one of %s; got %q", strings.Join(serverTypes, ", "), s.Type)
		return
	}
	if s.Type != ServerCustom {
		return
	}
	if s.Address == "" {
		v.errorf("server.address", "required with type: custom (HOST:PORT)")
	}
	if s.DC == 0 {
		v.errorf("server.dc", "required with type: custom (the data center id to start with)")
	}
	if len(s.PublicKeys) == 0 {
		v.errorf("server.public_key_file", "required with type: custom (the server's RSA public key, PEM)")
	}
}

func (v *validator) limits() {
	l := v.c.Limits
	for _, r := range []struct {
		path string
		rl   RateLimit
	}{
		{v.prefix + "limits.send.per_chat", l.Send.PerChat},
		{v.prefix + "limits.send.per_group", l.Send.PerGroup},
		{v.prefix + "limits.send.global", l.Send.Global},
		{v.prefix + "limits.send.plugin", l.Send.Plugin},
	} {
		if r.rl.Rate.IsZero() {
			v.errorf(r.path, "rate must be set, such as 20/min")
		}
		if r.rl.Burst < 1 {
			v.errorf(r.path, "burst must be at least 1")
		}
	}
	if l.Send.PerChat.Rate.PerSecond() > l.Send.Global.Rate.PerSecond()*60 {
		v.warnf(v.prefix+"limits.send.per_chat", "allows more than a minute's worth of the global rate each second; the global limit will do all the throttling")
	}
	v.enum(v.prefix+"limits.flood_wait.on_exceed", l.FloodWait.OnExceed, OnExceedRetryLater, OnExceedFail)
	if l.RPC.Interval <= 0 || l.RPC.Burst < 1 {
		v.errorf(v.prefix+"limits.rpc", "interval must be positive and burst at least 1")
	}
	if q := l.QuietHours; q != nil && q.From == q.To {
		v.errorf(v.prefix+"limits.quiet_hours", "from and to are the same time; remove quiet_hours to have none")
	}
}

var pluginNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (v *validator) plugins() {
	seen := map[string]int{}
	for i, p := range v.c.Plugins {
		path := indexPath(v.prefix+"plugins", i)
		switch {
		case p.Name == "":
			v.errorf(path+".name", "required: a short name such as echo")
		case !pluginNameRe.MatchString(p.Name):
			v.errorf(path+".name", "%q: use lowercase letters, digits, - and _ (at most 64), starting with a letter or digit", p.Name)
		default:
			if j, dup := seen[p.Name]; dup {
				v.errorf(path+".name", "%q is already used by plugins[%d]", p.Name, j)
			}
			seen[p.Name] = i
		}
		switch {
		case p.Path == "" && p.Builtin == "":
			v.errorf(path, "needs either path (an external binary) or builtin (a plugin inside the runner)")
		case p.Path != "" && p.Builtin != "":
			v.errorf(path+".builtin", "set either path or builtin, not both")
		case p.Builtin != "":
			if !pluginNameRe.MatchString(p.Builtin) {
				v.errorf(path+".builtin", "%q is not a builtin plugin name", p.Builtin)
			}
			if p.SHA256 != "" {
				v.errorf(path+".sha256", "only used with path; a builtin plugin is part of the runner binary")
			}
		default:
			v.externalPlugin(path, p)
		}
		if p.Restart.BackoffMin > p.Restart.BackoffMax {
			v.errorf(path+".restart.backoff_min", "%s is longer than backoff_max %s", p.Restart.BackoffMin, p.Restart.BackoffMax)
		}
		if p.Queue.Size < 1 {
			v.errorf(path+".queue.size", "must be at least 1")
		}
		v.enum(path+".queue.overflow", p.Queue.Overflow, OverflowBlock, OverflowDropOldest, OverflowQuarantine)
		if p.Timeouts.Start <= 0 || p.Timeouts.Event <= 0 {
			v.errorf(path+".timeouts", "start and event must be positive")
		}
	}
}

func (v *validator) externalPlugin(path string, p Plugin) {
	if p.SHA256 == "" {
		v.errorf(path+".sha256", "required for an external plugin: run `runner plugins pin %s` (or sha256sum %s) after checking the binary", p.Name, p.Path)
		return
	}
	if !sha256Re.MatchString(p.SHA256) {
		v.errorf(path+".sha256", "expected 64 hexadecimal characters (a SHA-256), got %d characters", len(p.SHA256))
		return
	}
	if p.Disabled {
		return
	}
	sum, err := fileSHA256(p.Path)
	if err != nil {
		v.errorf(path+".path", "%v", err)
		return
	}
	if sum != p.SHA256 {
		v.errorf(path+".sha256", "does not match %s (its sha256 is %s); if you trust the new binary, run `runner plugins pin %s`", p.Path, sum, p.Name)
	}
}

// fileSHA256 hashes an executable file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("%s: no such file", path)
		}
		return "", fmt.Errorf("%s: %v", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s: not executable; run: chmod +x %s", path, path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
