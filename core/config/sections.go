package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

func decodeAccount(d *decoder, c *Config, top *fields) {
	f := top.sub("account", accountKeys...)
	if f == nil {
		return
	}
	decodeAccountKeys(d, &c.Account, f)
}

// server: accepts the shorthand "server: sandbox" and the mapping form.
func decodeServer(d *decoder, c *Config, top *fields) {
	v := top.get("server")
	if v == nil {
		return
	}
	s := &c.Server
	defer func() {
		if s.Type == ServerTest && s.DC == 0 {
			s.DC = DefaultTestDC
		}
	}()
	if v.Kind == yaml.ScalarNode {
		var t string
		if top.enum("server", &t, serverTypes) {
			s.Type = ServerType(t)
			if s.Type == ServerCustom {
				d.errorf(v, "server", "a custom server needs a mapping: server: {type: custom, address: HOST:PORT, dc: N, public_key_file: FILE}")
			}
		}
		return
	}
	f := top.sub("server", "type", "address", "dc", "public_key_file", "obfuscated", "seed_file")
	if f == nil {
		return
	}
	var t string
	if !f.has("type") {
		d.errorf(f.at, "server.type", "required: one of %s", strings.Join(serverTypes, ", "))
		return
	}
	if !f.enum("type", &t, serverTypes) {
		return
	}
	s.Type = ServerType(t)
	only := func(key string, types ...ServerType) bool {
		if !f.has(key) {
			return false
		}
		for _, ok := range types {
			if s.Type == ok {
				return true
			}
		}
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = string(t)
		}
		d.errorf(f.get(key), f.p(key), "only valid with type: %s (type is %s)", strings.Join(names, " or "), s.Type)
		return false
	}
	if only("dc", ServerCustom, ServerTest) {
		f.integer("dc", &s.DC, 1, 1000)
	}
	if only("address", ServerCustom) {
		var addr string
		if f.str("address", &addr) {
			host, port, err := net.SplitHostPort(addr)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				d.errorf(f.get("address"), f.p("address"), "expected HOST:PORT such as 127.0.0.1:8443, got %q", addr)
			} else {
				s.Address = addr
			}
		}
	}
	if only("public_key_file", ServerCustom) && f.filePath("public_key_file", &s.PublicKeyFile) {
		keys, err := readPublicKeys(s.PublicKeyFile)
		if err != nil {
			d.errorf(f.get("public_key_file"), f.p("public_key_file"), "%v", err)
		} else {
			s.PublicKeys = keys
		}
	}
	if only("obfuscated", ServerCustom) {
		f.boolean("obfuscated", &s.Obfuscated)
	}
	if only("seed_file", ServerSandbox) && f.filePath("seed_file", &s.SeedFile) {
		if st, err := os.Stat(s.SeedFile); err != nil || st.IsDir() {
			d.errorf(f.get("seed_file"), f.p("seed_file"), "%s: no such file", s.SeedFile)
		}
	}
}

// readPublicKeys reads the RSA public keys (PKCS#1 or PKIX PEM) of a
// custom server.
func readPublicKeys(path string) ([]*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: no such file", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var keys []*rsa.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: bad RSA PUBLIC KEY block: %v", path, err)
			}
			keys = append(keys, k)
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: bad PUBLIC KEY block: %v", path, err)
			}
			rk, ok := k.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("%s: the key is %T; MTProto needs an RSA key", path, k)
			}
			keys = append(keys, rk)
		default:
			return nil, fmt.Errorf("%s: unexpected PEM block %q; expected RSA PUBLIC KEY or PUBLIC KEY", path, block.Type)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key found", path)
	}
	return keys, nil
}

func decodeStorage(d *decoder, c *Config, top *fields) {
	f := top.sub("storage", "dir", "url", "url_file", "lease_ttl")
	if f == nil {
		return
	}
	f.filePath("dir", &c.Storage.Dir)
	decodeStorageURL(c, f)
}

func decodeLog(d *decoder, c *Config, top *fields) {
	f := top.sub("log", "level", "format", "file", "redact")
	if f == nil {
		return
	}
	l := &c.Log
	f.enum("level", &l.Level, []string{LevelDebug, LevelInfo, LevelWarn, LevelError})
	f.enum("format", &l.Format, []string{FormatText, FormatJSON})
	f.filePath("file", &l.File)
	if r := f.sub("redact", "phone_numbers", "min_digits"); r != nil {
		r.enum("phone_numbers", &l.Redact.PhoneNumbers, []string{RedactPhonesPlus, RedactPhonesDigits, RedactPhonesOff})
		r.integer("min_digits", &l.Redact.MinDigits, 5, 15)
	}
}

// rateLimit reads "key: 20/min" (Burst keeps its default) or
// "key: {rate: 20/min, burst: 5}".
func (f *fields) rateLimit(key string, dst *RateLimit) {
	v := f.get(key)
	if v == nil {
		return
	}
	if v.Kind == yaml.ScalarNode {
		f.rate(key, &dst.Rate)
		return
	}
	m := f.sub(key, "rate", "burst")
	if m == nil {
		return
	}
	m.rate("rate", &dst.Rate)
	m.integer("burst", &dst.Burst, 1, 10000)
}

const maxPerDay = 100000

func decodeLimits(d *decoder, c *Config, top *fields) {
	f := top.sub("limits", "dry_run", "send", "first_contacts", "duplicate_text", "daily",
		"quiet_hours", "flood_wait", "rpc", "persist_waiting")
	if f == nil {
		return
	}
	l := &c.Limits
	f.boolean("dry_run", &l.DryRun)
	f.boolean("persist_waiting", &l.PersistWaiting)
	if s := f.sub("send", "per_chat", "per_group", "global", "plugin"); s != nil {
		s.rateLimit("per_chat", &l.Send.PerChat)
		s.rateLimit("per_group", &l.Send.PerGroup)
		s.rateLimit("global", &l.Send.Global)
		s.rateLimit("plugin", &l.Send.Plugin)
	}
	if s := f.sub("first_contacts", "per_day", "peer_flood_pause"); s != nil {
		s.integer("per_day", &l.FirstContacts.PerDay, 0, maxPerDay)
		s.duration("peer_flood_pause", &l.FirstContacts.PeerFloodPause, time.Minute, 30*day)
	}
	if s := f.sub("duplicate_text", "max_chats", "window", "allow"); s != nil {
		s.integer("max_chats", &l.DuplicateText.MaxChats, 1, maxPerDay)
		s.duration("window", &l.DuplicateText.Window, time.Second, 30*day)
		s.strs("allow", &l.DuplicateText.Allow, nil)
	}
	if s := f.sub("daily", "joins", "invites", "contact_imports"); s != nil {
		s.integer("joins", &l.Daily.Joins, 0, maxPerDay)
		s.integer("invites", &l.Daily.Invites, 0, maxPerDay)
		s.integer("contact_imports", &l.Daily.ContactImports, 0, maxPerDay)
	}
	if f.has("quiet_hours") {
		decodeQuietHours(d, c, f)
	}
	if s := f.sub("flood_wait", "max_wait", "max_retries", "on_exceed"); s != nil {
		s.duration("max_wait", &l.FloodWait.MaxWait, time.Second, day)
		s.integer("max_retries", &l.FloodWait.MaxRetries, 0, 100)
		s.enum("on_exceed", &l.FloodWait.OnExceed, []string{OnExceedRetryLater, OnExceedFail})
	}
	if s := f.sub("rpc", "interval", "burst"); s != nil {
		s.duration("interval", &l.RPC.Interval, time.Millisecond, time.Minute)
		s.integer("burst", &l.RPC.Burst, 1, 1000)
	}
}

var clockRe = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)

func decodeQuietHours(d *decoder, c *Config, limits *fields) {
	f := limits.sub("quiet_hours", "from", "to", "time_zone")
	if f == nil {
		return
	}
	q := &QuietHours{TimeZone: "Local"}
	good := true
	for _, key := range []string{"from", "to"} {
		var s string
		if !f.has(key) {
			d.errorf(f.at, f.p(key), `required: a time of day such as "23:00"`)
			good = false
			continue
		}
		if !f.str(key, &s) {
			good = false
			continue
		}
		m := clockRe.FindStringSubmatch(s)
		if m == nil {
			d.errorf(f.get(key), f.p(key), `expected a time of day HH:MM such as "23:00", got %q`, s)
			good = false
			continue
		}
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		if key == "from" {
			q.From = h*60 + mi
		} else {
			q.To = h*60 + mi
		}
	}
	if f.str("time_zone", &q.TimeZone) && q.TimeZone == "" {
		q.TimeZone = "Local"
	}
	loc, err := time.LoadLocation(q.TimeZone)
	if err != nil {
		d.errorf(f.get("time_zone"), f.p("time_zone"), "unknown time zone %q; use an IANA name such as Europe/Berlin, or UTC", q.TimeZone)
		good = false
	}
	q.Location = loc
	if good {
		c.Limits.QuietHours = q
	}
}

var pluginKeys = []string{
	"name", "path", "sha256", "builtin", "args", "config", "permissions", "events",
	"filter", "env", "timeouts", "queue", "restart", "limits", "disabled",
	"command_prefix",
}

func decodePlugins(d *decoder, c *Config, top *fields) {
	items, ok := top.list("plugins")
	if !ok {
		return
	}
	for i, it := range items {
		p := defaultPlugin(RateLimit{})
		path := indexPath(top.p("plugins"), i)
		if isNull(it) {
			d.errorf(it, path, "empty plugin entry; it needs at least a name, and a path or a builtin")
			continue
		}
		f := d.mapping(nil, it, path, pluginKeys)
		if f == nil {
			continue
		}
		decodePlugin(d, &p, f)
		c.Plugins = append(c.Plugins, p)
	}
}

func decodePlugin(d *decoder, p *Plugin, f *fields) {
	f.str("name", &p.Name)
	f.filePath("path", &p.Path)
	if f.str("sha256", &p.SHA256) {
		p.SHA256 = strings.ToLower(strings.TrimPrefix(p.SHA256, "sha256:"))
	}
	f.str("builtin", &p.Builtin)
	f.strs("args", &p.Args, nil)
	if v := f.get("config"); v != nil {
		if v.Kind != yaml.MappingNode {
			d.errorf(v, f.p("config"), "expected a mapping (the plugin's own settings), got %s", describe(v))
		} else {
			p.Config = v
		}
	}
	if perm := f.sub("permissions", "actions", "chats"); perm != nil {
		actions := make([]string, len(Actions))
		for i, a := range Actions {
			actions[i] = string(a)
		}
		var names []string
		if perm.strs("actions", &names, d.oneOf(actions)) {
			for _, n := range names {
				p.Permissions.Actions = append(p.Permissions.Actions, Action(n))
			}
		}
		p.Permissions.Chats = perm.chats("chats")
	}
	f.strs("events", &p.Events, d.oneOf(EventKinds))
	if fl := f.sub("filter", "chats", "direction", "pattern"); fl != nil {
		p.Filter.Chats = fl.chats("chats")
		fl.enum("direction", &p.Filter.Direction, []string{DirectionAny, DirectionIncoming, DirectionOutgoing})
		var pat string
		if fl.str("pattern", &pat) {
			re, err := regexp.Compile(pat)
			if err != nil {
				d.errorf(fl.get("pattern"), fl.p("pattern"), "invalid regular expression: %v", err)
			} else {
				p.Filter.Pattern = re
			}
		}
	}
	f.strs("env", &p.Env, func(n *yaml.Node, path, s string) bool {
		if !envNameRe.MatchString(s) {
			d.errorf(n, path, "%q is not an environment variable name", s)
			return false
		}
		// account is decoded first, so every secret's variable is known here.
		if key, leak := d.envRefs[s]; leak {
			d.errorf(n, path, "%s holds %s; a plugin must never see the account's secrets", s, key)
			return false
		}
		return true
	})
	if t := f.sub("timeouts", "start", "event"); t != nil {
		t.duration("start", &p.Timeouts.Start, 100*time.Millisecond, 10*time.Minute)
		t.duration("event", &p.Timeouts.Event, 10*time.Millisecond, time.Hour)
	}
	if q := f.sub("queue", "size", "overflow"); q != nil {
		q.integer("size", &p.Queue.Size, 1, 1_000_000)
		q.enum("overflow", &p.Queue.Overflow, []string{OverflowBlock, OverflowDropOldest, OverflowQuarantine})
	}
	if r := f.sub("restart", "backoff_min", "backoff_max", "max_crashes", "window"); r != nil {
		r.duration("backoff_min", &p.Restart.BackoffMin, 10*time.Millisecond, time.Hour)
		r.duration("backoff_max", &p.Restart.BackoffMax, 10*time.Millisecond, 24*time.Hour)
		r.integer("max_crashes", &p.Restart.MaxCrashes, 1, 1000)
		r.duration("window", &p.Restart.Window, time.Second, 7*day)
	}
	if l := f.sub("limits", "send", "first_contacts_per_day", "joins_per_day", "invites_per_day", "contact_imports_per_day"); l != nil {
		l.rateLimit("send", &p.Limits.Send)
		p.Limits.FirstContactsPerDay = l.optInt("first_contacts_per_day")
		p.Limits.JoinsPerDay = l.optInt("joins_per_day")
		p.Limits.InvitesPerDay = l.optInt("invites_per_day")
		p.Limits.ContactImportsPerDay = l.optInt("contact_imports_per_day")
	}
	f.boolean("disabled", &p.Disabled)
	if f.str("command_prefix", &p.CommandPrefix) && (p.CommandPrefix == "" || len([]rune(p.CommandPrefix)) > 3 || strings.ContainsAny(p.CommandPrefix, " \t\n")) {
		f.d.errorf(f.get("command_prefix"), f.p("command_prefix"), "must be 1 to 3 characters without spaces, e.g. \".\" or \"!\"")
	}
}

func (f *fields) optInt(key string) *int {
	var n int
	if f.integer(key, &n, 0, maxPerDay) {
		return &n
	}
	return nil
}

// oneOf vets list items against allowed values.
func (d *decoder) oneOf(allowed []string) func(*yaml.Node, string, string) bool {
	return func(n *yaml.Node, path, s string) bool {
		if contains(allowed, s) {
			return true
		}
		msg := fmt.Sprintf("unknown value %q; expected one of %s", s, strings.Join(allowed, ", "))
		if sug := suggest(s, allowed); sug != "" {
			msg = fmt.Sprintf("unknown value %q; did you mean %q? (expected one of %s)", s, sug, strings.Join(allowed, ", "))
		}
		d.errorf(n, path, "%s", msg)
		return false
	}
}

var usernameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{3,31}$`)

// chats reads a list of chat references: ids, @usernames or kinds.
func (f *fields) chats(key string) []ChatRef {
	items, ok := f.list(key)
	if !ok {
		return nil
	}
	var out []ChatRef
	for i, it := range items {
		ip := indexPath(f.p(key), i)
		if it.Kind != yaml.ScalarNode || isNull(it) {
			f.d.errorf(it, ip, "expected a chat id, @username or one of %s; got %s", strings.Join(chatKinds, ", "), describe(it))
			continue
		}
		s := it.Value
		switch {
		case contains(chatKinds, s):
			out = append(out, ChatRef{Kind: s})
		case strings.HasPrefix(s, "@"):
			if !usernameRe.MatchString(s[1:]) {
				f.d.errorf(it, ip, "%q is not a valid username (5-32 letters, digits and _, starting with a letter)", s)
				continue
			}
			out = append(out, ChatRef{Username: strings.ToLower(s[1:])})
		default:
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id == 0 {
				msg := fmt.Sprintf("expected a chat id, @username or one of %s; got %q", strings.Join(chatKinds, ", "), s)
				if s == "me" || s == "saved" {
					msg += ` (did you mean "self"?)`
				} else if sug := suggest(s, chatKinds); sug != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sug)
				} else if usernameRe.MatchString(s) {
					msg += fmt.Sprintf(" (did you mean \"@%s\"?)", s)
				}
				f.d.errorf(it, ip, "%s", msg)
				continue
			}
			out = append(out, ChatRef{ID: id})
		}
	}
	return out
}
