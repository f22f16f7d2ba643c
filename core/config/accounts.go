package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultAccountName names the one account of a config with account:.
const DefaultAccountName = "default"

// AccountEntry is one item of accounts:. Plugins and limits, when the entry
// sets them, replace the top-level ones for this account; otherwise the
// account uses the top-level plugins: and limits:. Rules (rules: and
// rules_files:) are top-level only and apply to every account.
type AccountEntry struct {
	Name    string
	Account Account
	// Plugins is nil when the entry has no plugins: (the top-level ones apply).
	Plugins []Plugin
	// OwnPlugins and OwnLimits say whether the entry set plugins:/limits:.
	OwnPlugins bool
	OwnLimits  bool
	Limits     Limits
}

// accountNameRe matches what every storage backend can use as a namespace:
// a directory name and a Redis hash tag.
var accountNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

var accountKeys = []string{
	"api_id", "api_hash", "api_hash_file", "phone", "phone_file",
	"password", "password_file", "allow_published_api_id",
	"allow_literal_secrets", "device",
}

// AccountNames lists the accounts the config runs: the names of accounts:,
// or DefaultAccountName for a config with a single account:.
func (c *Config) AccountNames() []string {
	if len(c.Accounts) == 0 {
		return []string{DefaultAccountName}
	}
	names := make([]string, len(c.Accounts))
	for i, a := range c.Accounts {
		names[i] = a.Name
	}
	return names
}

// ForAccount returns the config one account runs with: its credentials,
// plugins and limits, and its own storage directory <storage.dir>/<name>.
// For a config with a single account: it is c itself (storage.dir as is).
func (c *Config) ForAccount(name string) (*Config, error) {
	if len(c.Accounts) == 0 {
		if name != DefaultAccountName && name != "" {
			return nil, fmt.Errorf("account %q is not in the config (it has a single account:, named %q)", name, DefaultAccountName)
		}
		return c, nil
	}
	for _, a := range c.Accounts {
		if a.Name != name {
			continue
		}
		out := *c
		out.Accounts = nil
		out.Account = a.Account
		if a.OwnPlugins {
			out.Plugins = a.Plugins
		}
		if a.OwnLimits {
			out.Limits = a.Limits
		}
		out.Storage.Dir = filepath.Join(c.Storage.Dir, a.Name)
		return &out, nil
	}
	return nil, fmt.Errorf("account %q is not in the config; it has %s", name, strings.Join(c.AccountNames(), ", "))
}

// allAccounts is every account's credentials, for redaction.
func (c *Config) allAccounts() []Account {
	out := []Account{c.Account}
	for _, a := range c.Accounts {
		out = append(out, a.Account)
	}
	return out
}

// decodeAccountKeys reads the account keys of f into a.
func decodeAccountKeys(d *decoder, a *Account, f *fields) {
	if v := f.get("api_id"); v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && envRefRe.MatchString(v.Value) {
		// api_id is not secret, but people keep it next to the hash in env.
		s, ok := d.expand(v, f.p("api_id"), v.Value)
		if ok {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				d.errorf(v, f.p("api_id"), "expected a positive integer from %s, got %q", v.Value, s)
			} else {
				a.APIID = n
			}
		}
	} else {
		f.integer("api_id", &a.APIID, 1, 1<<31-1)
	}
	f.secret("api_hash", &a.APIHash)
	f.secret("phone", &a.Phone)
	f.secret("password", &a.Password)
	f.boolean("allow_published_api_id", &a.AllowPublishedAPIID)
	f.boolean("allow_literal_secrets", &a.AllowLiteralSecrets)
	if dev := f.sub("device", "model", "system_version", "app_version", "lang_code", "system_lang_code"); dev != nil {
		dev.str("model", &a.Device.Model)
		dev.str("system_version", &a.Device.SystemVersion)
		dev.str("app_version", &a.Device.AppVersion)
		dev.str("lang_code", &a.Device.LangCode)
		dev.str("system_lang_code", &a.Device.SystemLangCode)
	}
}

// decodeAccounts reads accounts:. It runs after limits: and plugins:, whose
// values an entry inherits.
func decodeAccounts(d *decoder, c *Config, top *fields) {
	if !top.has("accounts") {
		return
	}
	items, ok := top.list("accounts")
	if !ok {
		return
	}
	if top.has("account") {
		d.errorf(top.keyNode("accounts"), "accounts", "set either account: (one account) or accounts: (several), not both")
		return
	}
	if len(items) == 0 {
		d.errorf(top.get("accounts"), "accounts", "empty: list at least one account, or use account:")
		d.failed["account"] = true // no need to also ask for account: keys
		return
	}
	known := append(slicesClone(accountKeys), "name", "plugins", "limits")
	for i, it := range items {
		path := indexPath("accounts", i)
		if isNull(it) {
			d.errorf(it, path, "empty account entry; it needs at least a name and api_id/api_hash")
			continue
		}
		f := d.mapping(nil, it, path, known)
		if f == nil {
			continue
		}
		e := AccountEntry{}
		f.str("name", &e.Name)
		decodeAccountKeys(d, &e.Account, f)
		if f.has("plugins") {
			// The plugin decoder appends to a config's Plugins; give it an
			// empty one, and the top-level limits to override key by key.
			sub := Config{Limits: c.Limits}
			decodePlugins(d, &sub, f)
			e.Plugins, e.OwnPlugins = sub.Plugins, true
		}
		if f.has("limits") {
			sub := Config{Limits: c.Limits}
			if q := c.Limits.QuietHours; q != nil {
				cp := *q
				sub.Limits.QuietHours = &cp
			}
			decodeLimits(d, &sub, f)
			e.Limits, e.OwnLimits = sub.Limits, true
		}
		c.Accounts = append(c.Accounts, e)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// accounts checks accounts: names and each entry's credentials and
// plugins.
func (v *validator) accounts() {
	seen := map[string]int{}
	for i, a := range v.c.Accounts {
		path := indexPath("accounts", i)
		switch {
		case a.Name == "":
			v.errorf(path+".name", "required: a short name such as sales; it names the account's storage")
		case !accountNameRe.MatchString(a.Name):
			v.errorf(path+".name", "%q: use 1-64 letters, digits, '_', '.' or '-'", a.Name)
		default:
			if j, dup := seen[a.Name]; dup {
				v.errorf(path+".name", "%q is already used by accounts[%d]", a.Name, j)
			}
			seen[a.Name] = i
		}
		v.accountAt(path, a.Account)
		if !a.OwnPlugins && !a.OwnLimits {
			continue
		}
		sub := &validator{
			c:      &Config{File: v.c.File, Plugins: a.Plugins, Limits: a.Limits, pos: v.c.pos},
			failed: v.failed,
			prefix: path + ".",
		}
		if a.OwnPlugins {
			sub.plugins()
		}
		if a.OwnLimits {
			sub.limits()
		}
		v.problems = append(v.problems, sub.problems...)
		v.c.Warnings = append(v.c.Warnings, sub.c.Warnings...)
	}
}
