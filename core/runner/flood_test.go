package runner_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/sandbox"
)

// A plugin process that fires 20 sends at once is held to the configured
// per-chat rate by the guard, and every message still arrives.
func TestGuardThrottlesFloodingPlugin(t *testing.T) {
	path, sum := buildPlugin(t, "github.com/tgrunner/tgrunner/core/runner/testdata/flooder")
	e := newEnv(t)
	c, err := config.Parse("test.yaml", []byte(`version: 1
server: sandbox
limits:
  send:
    per_chat: {rate: 5/s, burst: 2}
    plugin: {rate: 100/s, burst: 50}
    global: {rate: 100/s, burst: 50}
plugins:
  - name: flooder
    path: `+path+`
    sha256: `+sum+`
    permissions:
      actions: [send]
      chats: [private]
`), config.LoadOptions{LookupEnv: config.MapEnv(nil)})
	require.NoError(t, err)
	c.Account, c.Storage = e.cfg.Account, e.cfg.Storage
	e.cfg = c
	e.runStack(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[int]bool{}
		for len(seen) < 20 {
			m, err := e.sb.WaitMessage(ctx, func(m sandbox.Message) bool {
				return m.From == e.owner.ID && strings.HasPrefix(m.Text, "flood ") && !seen[m.ID]
			})
			if err != nil {
				return
			}
			seen[m.ID] = true
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
	}()
	_, err = e.sb.As(e.alice.ID).SendText(ctx, sandbox.UserPeer(e.owner.ID), ".flood 20")
	require.NoError(t, err)
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, arrivals, 20, "every message arrives")
	// 20 messages at 5/s with a burst of 2: at least (20-2)/5 = 3.6 s.
	span := arrivals[len(arrivals)-1].Sub(arrivals[0])
	require.GreaterOrEqual(t, span, 3400*time.Millisecond, "the guard spread the flood over time")
	// No window of one second holds more than rate+burst messages.
	for i := range arrivals {
		n := 0
		for j := i; j < len(arrivals) && arrivals[j].Sub(arrivals[i]) < time.Second; j++ {
			n++
		}
		require.LessOrEqual(t, n, 7, "messages within one second from #%d", i)
	}
}
