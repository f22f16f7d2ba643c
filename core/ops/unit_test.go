package ops_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/ops"
	"github.com/tgrunner/tgrunner/core/store"
)

// newBareOps is ops over a real store with no runner behind it.
func newBareOps(t *testing.T, socket string) *ops.Ops {
	t.Helper()
	dir, err := os.MkdirTemp("", "opsu")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	st, err := store.Open(context.Background(), filepath.Join(dir, "data"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cfg := config.Default()
	o, err := ops.New(ops.Options{Config: cfg, Store: st, Listen: "127.0.0.1:0", Socket: socket, Notifier: nopNotifier{}})
	require.NoError(t, err)
	return o
}

// Reconnects count a new connect after a ready or dead connection, and
// the reported state wins over the session's.
func TestConnectionStateAndReconnects(t *testing.T) {
	o := newBareOps(t, "")
	require.NoError(t, o.Start(context.Background()))
	defer o.Close()
	o.SessionUp("default", 42, "owner", "Owner")
	for _, s := range []string{"connecting", "ready", "disconnected", "connecting", "ready", "connecting", "ready"} {
		o.ConnectionState(s)
	}
	o.ConnectionDead(os.ErrDeadlineExceeded)
	fams := scrape(t, o)
	v, _ := value(fams, "tgrunner_mtproto_reconnects_total", nil)
	require.Equal(t, 2.0, v)
	v, _ = value(fams, "tgrunner_mtproto_connected", nil)
	require.Equal(t, 1.0, v)
	st := o.Status(context.Background())
	require.True(t, st.Connection.Reported)
	require.Equal(t, 2, st.Connection.Reconnects)
	require.Equal(t, os.ErrDeadlineExceeded.Error(), st.Connection.LastDead)

	o.ConnectionState("disconnected")
	code, body := get(t, o, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "MTProto connection is disconnected")
	v, _ = value(scrape(t, o), "tgrunner_mtproto_connection_state", map[string]string{"state": "disconnected"})
	require.Equal(t, 1.0, v)
}

// A page elsewhere cannot read the loopback address through DNS
// rebinding: a foreign Host is refused.
func TestForeignHostRefused(t *testing.T) {
	o := newBareOps(t, "")
	require.NoError(t, o.Start(context.Background()))
	defer o.Close()
	req, err := http.NewRequest(http.MethodGet, "http://"+o.Addr()+"/api/status", nil)
	require.NoError(t, err)
	req.Host = "attacker.example:9465"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	req.Host = "localhost:9465"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A stale socket file is replaced, a live socket or another file is not,
// and the socket is 0600.
func TestControlSocketFile(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "runner.sock")

	// Stale: a socket file nobody listens on.
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	o := newBareOps(t, path)
	require.NoError(t, o.Start(context.Background()))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, err = ops.NewClient(path).Status(context.Background())
	require.NoError(t, err)

	// Live: a second server refuses to take it over.
	o2 := newBareOps(t, path)
	require.ErrorContains(t, o2.Start(context.Background()), "another runner answers on it")
	require.NoError(t, o.Close())
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)

	// Not a socket: left alone.
	require.NoError(t, os.WriteFile(path, []byte("mine"), 0o600))
	o3 := newBareOps(t, path)
	require.ErrorContains(t, o3.Start(context.Background()), "is not a socket")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "mine", string(b))

	// No runner: the client says so.
	require.NoError(t, os.Remove(path))
	_, err = ops.NewClient(path).Status(context.Background())
	var nr *ops.NotRunningError
	require.ErrorAs(t, err, &nr)
}
