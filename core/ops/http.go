package ops

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

//go:embed page.html
var statusPage []byte

// httpHandler serves the opt-in TCP address: metrics, health checks, the
// status page and its JSON. Nothing here changes the runner.
func (o *Ops) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(o.log.Named("metrics")),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// The process answers: it is alive. Readiness is /readyz.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", o.handleReady)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, o.Status(r.Context()))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy",
			"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		_, _ = w.Write(statusPage)
	})
	return o.hostCheck(securityHeaders(mux))
}

func (o *Ops) handleReady(w http.ResponseWriter, r *http.Request) {
	accounts := make([]AccountStatus, 0, len(o.accounts))
	for _, a := range o.accounts {
		accounts = append(accounts, a.readyStatus(r.Context()))
	}
	rd := o.overallReadiness(accounts)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		for _, p := range rd.Problems {
			fmt.Fprintln(w, "- "+p)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

// readyStatus is the part of the status readiness needs, without the
// journal, guard and audit reads.
func (a *AccountOps) readyStatus(ctx context.Context) AccountStatus {
	v := a.view()
	st := AccountStatus{Account: Account{Name: a.name}, Held: v.held}
	if !v.held && a.o.opts.Leases != nil {
		return st
	}
	var plugins []Plugin
	if h := v.host(); h != nil {
		for _, p := range h.Status() {
			plugins = append(plugins, Plugin{Name: p.Name, State: string(p.State)})
		}
	}
	st.Ready = v.readiness(plugins)
	return st
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// hostCheck refuses requests whose Host is not a loopback name while the
// address is loopback-only: a web page the owner visits could otherwise
// read the status through DNS rebinding.
func (o *Ops) hostCheck(next http.Handler) http.Handler {
	if o.opts.Config.Ops.AllowRemote {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "this address serves loopback clients only (Host "+r.Host+"); set ops.allow_remote to serve others", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError is the body of every failed control request.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}
