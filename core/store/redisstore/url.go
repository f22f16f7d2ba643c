package redisstore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseURL turns a storage URL into client options:
//
//	redis://[user[:password]@]host[:port][/db][?options]
//	rediss://...  (TLS)
//	unix://[user[:password]@]/path/to/socket[?db=N&options]
//
// Options: everything go-redis accepts (dial_timeout, read_timeout,
// pool_size, ...), plus tls_ca_file, tls_cert_file, tls_key_file,
// tls_server_name and tls_insecure_skip_verify (rediss only; "true" is
// refused unless the URL also says i_know_this_is_insecure=true). A password
// may come from password_file=PATH instead of the URL.
func ParseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("storage URL: %w", errRedacted(err, raw))
	}
	if !IsURL(raw) {
		return nil, fmt.Errorf("storage URL %s: scheme %q is not redis://, rediss:// or unix://", Redact(raw), u.Scheme)
	}
	q := u.Query()
	take := func(k string) string {
		v := q.Get(k)
		q.Del(k)
		return v
	}
	caFile, certFile, keyFile := take("tls_ca_file"), take("tls_cert_file"), take("tls_key_file")
	serverName, insecure, iKnow := take("tls_server_name"), take("tls_insecure_skip_verify"), take("i_know_this_is_insecure")
	passwordFile := take("password_file")
	if u.Scheme != "rediss" && (caFile != "" || certFile != "" || keyFile != "" || serverName != "" || insecure != "") {
		return nil, fmt.Errorf("storage URL %s: tls_* options need the rediss:// scheme", Redact(raw))
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("storage URL %s: tls_cert_file and tls_key_file go together", Redact(raw))
	}
	u.RawQuery = q.Encode()
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("storage URL %s: %w", Redact(raw), errRedacted(err, raw))
	}
	if passwordFile != "" {
		if _, set := u.User.Password(); set {
			return nil, fmt.Errorf("storage URL %s: give the password in the URL or in password_file, not both", Redact(raw))
		}
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("storage URL %s: password_file: %w", Redact(raw), err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	if u.Scheme == "rediss" {
		if opts.TLSConfig == nil {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if serverName != "" {
			opts.TLSConfig.ServerName = serverName
		}
		if insecure != "" {
			skip, err := strconv.ParseBool(insecure)
			if err != nil {
				return nil, fmt.Errorf("storage URL %s: tls_insecure_skip_verify=%q is not a boolean", Redact(raw), insecure)
			}
			if skip && iKnow != "true" {
				return nil, fmt.Errorf("storage URL %s: tls_insecure_skip_verify=true disables server authentication; add i_know_this_is_insecure=true if you really mean it", Redact(raw))
			}
			opts.TLSConfig.InsecureSkipVerify = skip
		}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("storage URL %s: tls_ca_file: %w", Redact(raw), err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("storage URL %s: tls_ca_file %s holds no PEM certificate", Redact(raw), caFile)
			}
			opts.TLSConfig.RootCAs = pool
		}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("storage URL %s: client certificate: %w", Redact(raw), err)
			}
			opts.TLSConfig.Certificates = []tls.Certificate{cert}
		}
	}
	return opts, nil
}

// IsURL reports whether a storage setting names Redis rather than a directory.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://") || strings.HasPrefix(s, "unix://")
}

// Redact hides the password of a storage URL, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Do not echo something that may hold a password.
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// errRedacted keeps a parse error from echoing a password.
func errRedacted(err error, raw string) error {
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		if perr != nil {
			return fmt.Errorf("malformed URL")
		}
		return err
	}
	if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), p, "xxxxx"))
	}
	return err
}
