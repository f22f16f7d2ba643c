package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSandboxServePrintsAddressAndSeed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() { done <- serveSandbox(ctx, out, "127.0.0.1:0", dir, "") }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "press Ctrl+C") }, 60*time.Second, 20*time.Millisecond)
	text := out.String()
	require.Regexp(t, regexp.MustCompile(`listening on 127\.0\.0\.1:\d+ \(DC 2\)`), text)
	require.Contains(t, text, "public key: "+dir)
	require.Contains(t, text, "phone=9996610001 @alice code=11111")
	require.Contains(t, text, "Friends")
	require.Contains(t, text, "Sandbox News")
	cancel()
	require.NoError(t, <-done)
}
