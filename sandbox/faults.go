package sandbox

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/gotd/td/tgerr"
	"github.com/gotd/td/tgtest"
)

// Faults makes the sandbox misbehave like Telegram does, so tests can prove
// a client survives it. The zero value injects nothing.
type Faults struct {
	// Latency delays every answer.
	Latency time.Duration `yaml:"latency"`
	// MethodLimits caps calls per account to a method named like
	// "messages.sendMessage"; past the cap the call gets FLOOD_WAIT_X.
	MethodLimits map[string]Limit `yaml:"method_limits"`
	// ChatLimit caps messages one account sends to one chat (any peer);
	// ChatLimits overrides it per peer id (user, chat or channel id).
	ChatLimit  Limit           `yaml:"chat_limit"`
	ChatLimits map[int64]Limit `yaml:"chat_limits"`
	// PeerFloodLimit is how many strangers (not contacts, never wrote to
	// the account) an account may write to first; the next one gets
	// PEER_FLOOD. 0 disables the check.
	PeerFloodLimit int `yaml:"peer_flood_limit"`
	// DisconnectEvery closes a connection after every N-th answered request
	// on it. 0 disables.
	DisconnectEvery int `yaml:"disconnect_every"`
	// Errors answers the named methods with an RPC error, e.g.
	// {"messages.sendMessage": "INTERNAL"} (code 500) or "420:FLOOD_WAIT_3".
	Errors map[string]string `yaml:"errors"`
	// Flaky answers the first Times calls of the named methods with Error
	// (same forms as Errors), then lets them through: Telegram's passing
	// internal errors (RPC_CALL_FAIL, -503 Timeout). With Done the call is
	// carried out first and only its answer is the error: a lost answer.
	Flaky map[string]Flaky `yaml:"flaky"`
}

// Flaky is a passing error; see Faults.Flaky.
type Flaky struct {
	Error string `yaml:"error"`
	Times int    `yaml:"times"`
	Done  bool   `yaml:"done"`
}

// Limit allows Count calls per sliding Window. Zero Count means unlimited.
type Limit struct {
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
}

// SetFaults replaces the fault configuration; it applies to the next request.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.limiter.reset()
	s.mu.Unlock()
}

// limiter is a sliding-window call log per key.
type limiter struct {
	mu    sync.Mutex
	calls map[string][]time.Time
	reqs  map[int64]int  // answered requests per session
	flaky map[string]int // Flaky errors given, by method
}

func newLimiter() *limiter {
	return &limiter{calls: map[string][]time.Time{}, reqs: map[int64]int{}, flaky: map[string]int{}}
}

// flaky reports the passing error method's call gets now under faults
// f, if any, and whether the call is carried out first.
func (s *Server) flaky(f Faults, method string) (err *tgerr.Error, done bool) {
	fl, ok := f.Flaky[method]
	if !ok || fl.Times <= 0 {
		return nil, false
	}
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	if s.limiter.flaky[method] >= fl.Times {
		return nil, false
	}
	s.limiter.flaky[method]++
	return parseInjected(fl.Error), fl.Done
}

func (l *limiter) reset() {
	l.mu.Lock()
	l.calls = map[string][]time.Time{}
	l.reqs = map[int64]int{}
	l.flaky = map[string]int{}
	l.mu.Unlock()
}

// take records one call under key, or returns the wait until one is allowed.
func (l *limiter) take(key string, lim Limit, t time.Time) (time.Duration, bool) {
	if lim.Count <= 0 || lim.Window <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	log := l.calls[key]
	cut := 0
	for cut < len(log) && t.Sub(log[cut]) >= lim.Window {
		cut++
	}
	log = log[cut:]
	if len(log) >= lim.Count {
		l.calls[key] = log
		return log[0].Add(lim.Window).Sub(t), false
	}
	l.calls[key] = append(log, t)
	return 0, true
}

func waitSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

func parseInjected(v string) *tgerr.Error {
	var code int
	var msg string
	if n, _ := fmt.Sscanf(v, "%d:%s", &code, &msg); n == 2 {
		return tgerr.New(code, msg)
	}
	return tgerr.New(500, v)
}

// faultBefore applies latency, injected errors and method limits under
// faults f (read once per call).
func (s *Server) faultBefore(c *call, f Faults) error {
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
	}
	name := MethodName(c.method)
	if v, ok := f.Errors[name]; ok {
		return parseInjected(v)
	}
	if lim, ok := f.MethodLimits[name]; ok && c.userID != 0 {
		if wait, ok := s.limiter.take(fmt.Sprintf("m:%d:%s", c.userID, name), lim, time.Now()); !ok {
			return floodWait(waitSeconds(wait))
		}
	}
	return nil
}

// chatLimitLocked applies per-chat send limits for sender writing to peer.
func (s *Server) chatLimitLocked(sender int64, peer peerKey) error {
	lim, ok := s.faults.ChatLimits[peer.id]
	if !ok {
		lim = s.faults.ChatLimit
	}
	if wait, ok := s.limiter.take(fmt.Sprintf("c:%d:%d:%d", sender, peer.kind, peer.id), lim, time.Now()); !ok {
		return floodWait(waitSeconds(wait))
	}
	return nil
}

// faultDisconnect counts answered requests per session and closes the
// connection on every DisconnectEvery-th.
func (s *Server) faultDisconnect(c *call) bool {
	s.mu.Lock()
	every := s.faults.DisconnectEvery
	s.mu.Unlock()
	if every <= 0 || c.sessionID == 0 {
		return false
	}
	s.limiter.mu.Lock()
	s.limiter.reqs[c.sessionID]++
	n := s.limiter.reqs[c.sessionID]
	s.limiter.mu.Unlock()
	if n%every != 0 {
		return false
	}
	s.mu.Lock()
	ls := s.sessions[c.sessionID]
	if ls != nil {
		s.removeSessionLocked(ls)
	}
	s.mu.Unlock()
	s.tg.ForceDisconnect(tgtest.Session{ID: c.sessionID, AuthKey: c.key})
	return true
}
