package config

import (
	"strings"
	"time"
)

// decodeStorageURL reads storage.url (a secret: ${NAME} or url_file) and
// storage.lease_ttl.
func decodeStorageURL(c *Config, f *fields) {
	f.secret("url", &c.Storage.URL)
	f.duration("lease_ttl", &c.Storage.LeaseTTL, 3*time.Second, 10*time.Minute)
}

// storageURL checks the scheme only; the URL is parsed in full (TLS files,
// options) when the runner connects.
func (v *validator) storageURL() {
	u := v.c.Storage.URL
	if !u.IsSet() {
		return
	}
	s := u.Reveal()
	for _, scheme := range []string{"redis://", "rediss://", "unix://"} {
		if strings.HasPrefix(s, scheme) {
			return
		}
	}
	// Print the scheme only: the rest may hold a password.
	scheme, _, found := strings.Cut(s, "://")
	if !found {
		scheme = "none"
	}
	v.errorf("storage.url", "expected redis://, rediss:// (TLS) or unix:// (a Redis socket), got scheme %q", scheme)
}

// UsesRedis reports whether the config keeps its storage in Redis.
func (c *Config) UsesRedis() bool { return c.Storage.URL.IsSet() }
