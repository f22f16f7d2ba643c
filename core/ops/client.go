package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/core/guard"
)

// NotRunningError means no runner answers on the control socket.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("no runner is running with this storage (nothing answers on %s); start it with `runner run`", e.Socket)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// APIError is a request the runner refused or failed.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Client talks to a running runner over its control socket.
type Client struct {
	socket  string
	account string
	http    *http.Client
}

// NewClient returns a client for the socket at path. Nothing is dialed
// until a request.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &Client{socket: path, http: &http.Client{Transport: tr}}
}

// ForAccount returns a client whose requests are about one account (of a
// runner with several); "" means the runner's default: pause and resume
// act on every account, the other requests need a name only when the
// runner runs several.
func (c *Client) ForAccount(name string) *Client {
	cc := *c
	cc.account = name
	return &cc
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control socket %s: read %s %s: %w", c.socket, method, path, err)
	}
	return nil
}

// send performs a request and turns refusals into *APIError.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	if c.account != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + AccountParam + "=" + url.QueryEscape(c.account)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://runner"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) && isNotRunning(uerr.Err) {
			return nil, &NotRunningError{Socket: c.socket, Err: err}
		}
		return nil, fmt.Errorf("control socket %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e apiError
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// Status returns the runner's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Pause holds every write action until Resume.
func (c *Client) Pause(ctx context.Context, reason string) (Result, error) {
	var r Result
	err := c.do(ctx, http.MethodPost, "/v1/pause", PauseRequest{Reason: reason}, &r)
	return r, err
}

// Resume lifts an owner pause.
func (c *Client) Resume(ctx context.Context) (Result, error) {
	var r Result
	err := c.do(ctx, http.MethodPost, "/v1/resume", nil, &r)
	return r, err
}

// Reload asks the runner to re-read its config.
func (c *Client) Reload(ctx context.Context) (Result, error) {
	var r Result
	err := c.do(ctx, http.MethodPost, "/v1/reload", nil, &r)
	return r, err
}

// Plugins lists the plugins.
func (c *Client) Plugins(ctx context.Context) ([]Plugin, error) {
	var ps []Plugin
	err := c.do(ctx, http.MethodGet, "/v1/plugins", nil, &ps)
	return ps, err
}

// Plugin returns one plugin's status.
func (c *Client) Plugin(ctx context.Context, name string) (Plugin, error) {
	var p Plugin
	err := c.do(ctx, http.MethodGet, "/v1/plugins/"+url.PathEscape(name), nil, &p)
	return p, err
}

// PluginControl restarts, disables or enables a plugin.
func (c *Client) PluginControl(ctx context.Context, name, verb string) (Result, error) {
	var r Result
	err := c.do(ctx, http.MethodPost, "/v1/plugins/"+url.PathEscape(name)+"/"+url.PathEscape(verb), nil, &r)
	return r, err
}

// Audit reads the audit log through the runner.
func (c *Client) Audit(ctx context.Context, f guard.AuditFilter) ([]guard.AuditRecord, error) {
	var recs []guard.AuditRecord
	err := c.do(ctx, http.MethodGet, "/v1/audit?"+AuditQuery(f), nil, &recs)
	return recs, err
}

// Backup streams a consistent copy of the runner's store into w and
// returns its size. The copy contains the session.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup stream: %w", err)
	}
	// Trailers are only filled once the body is read to the end.
	if msg := resp.Trailer.Get(trailerBackupError); msg != "" {
		return n, fmt.Errorf("the runner could not finish the backup: %s", msg)
	}
	want, err := strconv.ParseInt(resp.Trailer.Get(trailerBackupBytes), 10, 64)
	if err != nil || want != n {
		return n, fmt.Errorf("backup stream ended early: got %d bytes, the runner sent %s", n, resp.Trailer.Get(trailerBackupBytes))
	}
	return n, nil
}

// Ping reports whether a runner answers, within timeout.
func (c *Client) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Status(ctx)
	return err
}
