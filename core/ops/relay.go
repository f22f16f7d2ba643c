package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/core/lease"
)

// Relay forwards control requests to the runner holding an account, for
// runners under leases (*lease.Relay).
type Relay interface {
	Forward(ctx context.Context, holder string, req lease.RelayRequest, wait time.Duration) (lease.RelayResponse, error)
	Serve(ctx context.Context, handle func(context.Context, lease.RelayRequest) lease.RelayResponse) error
}

// relayedHeader marks a request that came through the relay: it is
// answered where it lands, never forwarded again.
const relayedHeader = "X-Tgrunner-Relayed-From"

// relayWait bounds how long a relayed request waits for the holder; a
// plugin restart or an audit query answers well within it.
const relayWait = 15 * time.Second

// maxRelayBody caps a relayed request's body (control bodies are small).
const maxRelayBody = 1 << 16

// relayed wraps the control handler: a request naming (?account=) an
// account another runner holds goes to that runner, so plugin commands
// and audit queries work from any machine. Status, pause and resume
// already cover the fleet and stay here.
func (o *Ops) relayed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holder, ok := o.relayTarget(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRelayBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "read request: %v", err)
			return
		}
		name := r.URL.Query().Get(AccountParam)
		resp, err := o.opts.Relay.Forward(r.Context(), holder, lease.RelayRequest{
			Method: r.Method, Path: r.URL.RequestURI(), Body: body,
		}, relayWait)
		if err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, lease.ErrNotListening) {
				code = http.StatusServiceUnavailable
			}
			writeError(w, code, "account %s runs in runner %s, and the request could not reach it: %v; check that runner (runner status shows every holder) and try again, or ask it through its own control socket", name, holder, err)
			return
		}
		if resp.ContentType != "" {
			w.Header().Set("Content-Type", resp.ContentType)
		}
		w.Header().Set(relayedHeader, holder)
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
	})
}

// relayTarget says whether r goes to another runner, and which.
func (o *Ops) relayTarget(r *http.Request) (string, bool) {
	if o.opts.Relay == nil || r.Header.Get(relayedHeader) != "" {
		return "", false
	}
	switch r.URL.Path {
	case "/v1/status", "/v1/pause", "/v1/resume", "/v1/reload":
		return "", false
	}
	name := r.URL.Query().Get(AccountParam)
	if name == "" {
		return "", false
	}
	a := o.Account(name)
	if a == nil || a.view().held {
		return "", false
	}
	holder := a.status(r.Context()).HeldBy
	if holder == "" || holder == o.opts.Holder {
		return "", false
	}
	return holder, true
}

// serveRelay answers requests other runners relay here with the control
// handler, as if they had come through the socket.
func (o *Ops) serveRelay(ctx context.Context) error {
	h := o.controlHandler()
	return o.opts.Relay.Serve(ctx, func(ctx context.Context, req lease.RelayRequest) lease.RelayResponse {
		hr, err := http.NewRequestWithContext(ctx, req.Method, "http://runner"+req.Path, bytes.NewReader(req.Body))
		if err != nil {
			return lease.RelayResponse{Status: http.StatusBadRequest, Body: []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))}
		}
		hr.Header.Set(relayedHeader, req.From)
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, hr)
		o.log.Info("Answered a control request relayed from another runner",
			zap.String("from", req.From), zap.String("method", req.Method), zap.String("path", hr.URL.Path), zap.Int("status", rec.status))
		return lease.RelayResponse{Status: rec.status, ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()}
	})
}

// recorder is the ResponseWriter of a relayed request.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
