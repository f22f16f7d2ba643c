package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/lease"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/core/store/redisstore"
	"github.com/tgrunner/tgrunner/core/store/redisstore/redistest"
)

// writeCA writes a self-signed certificate and its key as PEM files.
func writeCA(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{"redis.test"},
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestParseURL(t *testing.T) {
	dir := t.TempDir()
	ca, key := writeCA(t, dir)
	pwFile := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("from-file\n"), 0o600))
	for _, tc := range []struct {
		name  string
		url   string
		check func(t *testing.T, o *redis.Options)
		err   string
	}{
		{name: "plain", url: "redis://localhost:6380/2", check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, "localhost:6380", o.Addr)
			require.Equal(t, 2, o.DB)
			require.Nil(t, o.TLSConfig)
		}},
		{name: "default port and db", url: "redis://db.internal", check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, "db.internal:6379", o.Addr)
			require.Equal(t, 0, o.DB)
		}},
		{name: "user and password", url: "redis://runner:s3cret@10.0.0.5:6379/1", check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, "runner", o.Username)
			require.Equal(t, "s3cret", o.Password)
		}},
		{name: "password only", url: "redis://:s3cret@h:1/0", check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, "", o.Username)
			require.Equal(t, "s3cret", o.Password)
		}},
		{name: "password file", url: "redis://runner@h/0?password_file=" + pwFile, check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, "from-file", o.Password, "trailing newline trimmed")
		}},
		{name: "tls", url: "rediss://h:6390/0", check: func(t *testing.T, o *redis.Options) {
			require.NotNil(t, o.TLSConfig)
			require.False(t, o.TLSConfig.InsecureSkipVerify)
			require.Equal(t, "h", o.TLSConfig.ServerName)
		}},
		{name: "tls with ca, client cert and server name", url: "rediss://h:6390/0?tls_ca_file=" + ca + "&tls_cert_file=" + ca + "&tls_key_file=" + key + "&tls_server_name=redis.test",
			check: func(t *testing.T, o *redis.Options) {
				require.NotNil(t, o.TLSConfig.RootCAs)
				require.Len(t, o.TLSConfig.Certificates, 1)
				require.Equal(t, "redis.test", o.TLSConfig.ServerName)
			}},
		{name: "go-redis options pass through", url: "redis://h/0?dial_timeout=3s&pool_size=7", check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, 3*time.Second, o.DialTimeout)
			require.Equal(t, 7, o.PoolSize)
		}},
		{name: "unix socket", url: "unix:///run/redis.sock?db=4", check: func(t *testing.T, o *redis.Options) {
			require.Equal(t, "unix", o.Network)
			require.Equal(t, "/run/redis.sock", o.Addr)
			require.Equal(t, 4, o.DB)
		}},
		{name: "insecure needs the confirmation", url: "rediss://h/0?tls_insecure_skip_verify=true", err: "i_know_this_is_insecure"},
		{name: "insecure confirmed", url: "rediss://h/0?tls_insecure_skip_verify=true&i_know_this_is_insecure=true", check: func(t *testing.T, o *redis.Options) {
			require.True(t, o.TLSConfig.InsecureSkipVerify)
		}},
		{name: "wrong scheme", url: "http://h/0", err: `scheme "http"`},
		{name: "directory is not a URL", url: "/var/lib/tgrunner", err: "scheme"},
		{name: "tls option without rediss", url: "redis://h/0?tls_ca_file=" + ca, err: "need the rediss:// scheme"},
		{name: "cert without key", url: "rediss://h/0?tls_cert_file=" + ca, err: "go together"},
		{name: "missing ca file", url: "rediss://h/0?tls_ca_file=/nonexistent/ca.pem", err: "tls_ca_file"},
		{name: "ca file without certificate", url: "rediss://h/0?tls_ca_file=" + pwFile, err: "no PEM certificate"},
		{name: "bad db", url: "redis://h/abc", err: "invalid database"},
		{name: "unknown option", url: "redis://h/0?colour=blue", err: "colour"},
		{name: "password twice", url: "redis://u:p@h/0?password_file=" + pwFile, err: "not both"},
		{name: "bad boolean", url: "rediss://h/0?tls_insecure_skip_verify=maybe", err: "not a boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := redisstore.ParseURL(tc.url)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

func TestParseURLNeverEchoesThePassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:hunter2@h/abc",
		"redis://user:hunter2@h/0?colour=blue",
		"rediss://user:hunter2@h/0?tls_ca_file=/nonexistent",
		"redis://user:hunter2@h:notaport/0",
		"redis://user:hunter2@h/0?dial_timeout=soon",
	} {
		_, err := redisstore.ParseURL(u)
		require.Error(t, err, u)
		require.NotContains(t, err.Error(), "hunter2", u)
	}
	require.Equal(t, "redis://user:xxxxx@h/0", redisstore.Redact("redis://user:hunter2@h/0"))
	require.True(t, redisstore.IsURL("rediss://h"))
	require.False(t, redisstore.IsURL("/var/lib/tgrunner"))
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://u:p@h:1/2", "rediss://h/0?tls_server_name=x", "unix:///s?db=1", "redis://h/0?pool_size=3", "redis://:p@[::1]:6379/15"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := redisstore.ParseURL(s)
		if err == nil {
			require.NotNil(t, o)
			require.True(t, redisstore.IsURL(s))
			return
		}
		// Errors never echo the password (when it is distinctive enough to
		// tell it apart from the rest of the URL).
		u, perr := url.Parse(s)
		if perr != nil || u.User == nil {
			return
		}
		pw, ok := u.User.Password()
		rest := strings.Replace(s, pw, "", 1)
		if ok && len(pw) >= 6 && !strings.Contains(rest, pw) {
			require.NotContains(t, err.Error(), pw)
		}
	})
}

// A real server with an ACL user, a password and a database number: the
// parsed options connect and land in that database.
func TestURLConnectsWithAuthAndDB(t *testing.T) {
	redistest.Client(t)
	s, err := redistest.Start("--requirepass", "adminpw")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Network: "unix", Addr: s.Sock, Password: "adminpw"})
	defer admin.Close()
	// The ACL docs/scale-out.md recommends.
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "runner", "on", ">runnerpw", "~tgr:*", "+@all", "-@admin", "-@dangerous").Err())

	o, err := redisstore.ParseURL("redis://runner:runnerpw@" + s.Addr() + "/3")
	require.NoError(t, err)
	rdb := redis.NewClient(o)
	defer rdb.Close()
	l, err := lease.NewLocker(rdb, lease.Options{TTL: time.Minute})
	require.NoError(t, err)
	le, err := l.Acquire(ctx, "acct")
	require.NoError(t, err)
	defer le.Release(ctx)
	st, err := redisstore.Open(ctx, rdb, "acct", le, redisstore.Options{})
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.Session().StoreSession(ctx, []byte("x")))
	_, err = st.Journal().Append(ctx, entries("a1", "a2"))
	require.NoError(t, err)
	c, err := st.Journal().Consumer(ctx, "c", store.ConsumerOptions{})
	require.NoError(t, err)
	_, err = c.Read(ctx, 0, 10)
	require.NoError(t, err)
	require.NoError(t, c.AckWith(ctx, func(tx store.Txn) error { return tx.KV("p").Set("k", []byte("v")) }, 1, 2))
	_, err = c.Position(ctx)
	require.NoError(t, err)
	_, err = st.Journal().Compact(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Audit().Append(ctx, time.Now(), []byte("a")))
	require.NoError(t, st.Peers().Put(ctx, store.Peer{Ref: store.PeerRef{Kind: store.PeerUser, ID: 1}}))
	admin3 := redis.NewClient(&redis.Options{Network: "unix", Addr: s.Sock, Password: "adminpw", DB: 3})
	defer admin3.Close()
	n, err := admin3.Exists(ctx, "tgr:{acct}:session").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "written to db 3")

	o, err = redisstore.ParseURL("redis://runner:wrong@" + s.Addr() + "/3")
	require.NoError(t, err)
	bad := redis.NewClient(o)
	defer bad.Close()
	_, err = redisstore.Open(ctx, bad, "acct", nil, redisstore.Options{})
	require.ErrorContains(t, err, "WRONGPASS")
}
