// Package redistest runs a real redis-server for tests: a child process on
// a loopback port and a unix socket in a temporary directory, without
// persistence, stopped at the end.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL, when set in a test process, names an already running server
// (children of crash tests use the parent's).
const EnvURL = "TGRUNNER_TEST_REDIS_URL"

// Server is a running redis-server.
type Server struct {
	cmd  *exec.Cmd
	dir  string
	Port int
	Sock string
}

// ErrNotInstalled means redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server is not installed (apt-get install redis-server)")

// Start starts redis-server with extra arguments (e.g. "--requirepass", "x").
func Start(extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "tgr-redis-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, Port: port, Sock: filepath.Join(dir, "redis.sock")}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--unixsocket", s.Sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
		"--databases", "16",
	}
	s.cmd = exec.Command(bin, append(args, extra...)...)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	c := s.Client(0)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil || isAuthErr(err) {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server did not answer: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isAuthErr(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "NOAUTH") || strings.Contains(err.Error(), "WRONGPASS"))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is the server's unix socket URL for db.
func (s *Server) URL(db int) string { return fmt.Sprintf("unix://%s?db=%d", s.Sock, db) }

// Addr is host:port on loopback.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Client connects over the unix socket to db.
func (s *Server) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Network: "unix", Addr: s.Sock, DB: db})
}

// Pid is the server's process id (for SIGSTOP tests).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	_ = os.RemoveAll(s.dir)
}

// Main runs a TestMain with a server in *srv (nil when redis-server is
// missing: Need then skips, and the reason is printed once).
func Main(m *testing.M, srv **Server) int {
	if os.Getenv(EnvURL) != "" {
		return m.Run()
	}
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis tests skipped:", err)
		return m.Run()
	}
	*srv = s
	os.Setenv(EnvURL, s.URL(0))
	code := m.Run()
	s.Stop()
	return code
}

// Client returns a client for the tests' server (from EnvURL), skipping
// the test when there is none.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("parse %s: %v", u, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
