package ops_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/config"
)

// chromium finds Debian's chromium (or $TGRUNNER_CHROMIUM).
func chromium() string {
	if p := os.Getenv("TGRUNNER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for the test; it stops with the test.
func browser(t *testing.T, bin string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelT()
		cancel()
		cancelAlloc()
	})
	return ctx
}

// pageState is what the test reads from the rendered page.
type pageState struct {
	State     string   `json:"state"`
	Queue     string   `json:"queue"`
	Delivered string   `json:"delivered"`
	Account   string   `json:"account"`
	Conn      string   `json:"conn"`
	Ready     string   `json:"ready"`
	Budgets   int      `json:"budgets"`
	Audit     []string `json:"audit"`
}

const readPage = `(() => {
  const cell = (f) => { const e = document.querySelector('#plugins tr[data-key="ping"] [data-field="' + f + '"]'); return e ? e.textContent : ""; };
  return JSON.stringify({
    state: cell("state"), queue: cell("queue"), delivered: cell("delivered"),
    account: document.getElementById("account").textContent,
    conn: document.getElementById("connection").textContent,
    ready: document.getElementById("ready").textContent,
    budgets: document.querySelectorAll('#budgets tbody tr[data-key]').length,
    audit: Array.from(document.querySelectorAll('#audit tbody tr')).map(r =>
      Array.from(r.querySelectorAll('[data-field="source"],[data-field="kind"],[data-field="outcome"]')).map(c => c.textContent).join(" ")),
  });
})()`

// A real browser loads the status page of a sandbox runner; the rendered
// DOM shows live values, and they change after a sandbox message without
// a reload.
func TestStatusPageInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("skipped: no chromium found (apt-get install chromium, or set TGRUNNER_CHROMIUM); the status page was not checked in a browser")
	}
	e := newEnv(t)
	e.cfg.Plugins = []config.Plugin{pingPlugin(t)}
	l := e.start(t, true)
	e.ping(t, e.alice)

	// The page is self-contained: no external assets.
	code, body := get(t, l.ops, "/")
	require.Equal(t, http.StatusOK, code)
	for _, ref := range []string{"src=\"http", "href=\"http", "@import", "url(http", "src=\"//", "href=\"//"} {
		require.NotContains(t, body, ref)
	}

	ctx := browser(t, bin)
	_, err := chromedp.Run(ctx, chromedp.Navigate("http://"+l.ops.Addr()+"/"))
	require.NoError(t, err)
	read := func() pageState {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPage))
		require.NoError(t, err)
		var s pageState
		require.NoError(t, json.Unmarshal([]byte(raw), &s))
		return s
	}
	waitPage := func(what string, cond func(pageState) bool) pageState {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := read()
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; last: %+v", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	hasAudit := func(s pageState, want string, n int) bool {
		c := 0
		for _, a := range s.Audit {
			if a == want {
				c++
			}
		}
		return c >= n
	}
	first := waitPage("the ping plugin running and its pong audited", func(s pageState) bool {
		return s.State == "running" && hasAudit(s, "plugin:ping send ok", 1)
	})
	require.Equal(t, "0", first.Queue, "queue depth")
	require.Contains(t, first.Account, "@owner")
	require.Contains(t, first.Conn, "ready to sandbox")
	require.Equal(t, "ready", first.Ready)
	require.Positive(t, first.Budgets, "send budgets listed")
	d0, err := strconv.Atoi(first.Delivered)
	require.NoError(t, err, "delivered %q", first.Delivered)
	require.GreaterOrEqual(t, d0, 1)

	// A new message: the page follows without a reload.
	e.ping(t, e.bob)
	after := waitPage("the second .ping delivered and its pong audited", func(s pageState) bool {
		d, err := strconv.Atoi(s.Delivered)
		return err == nil && d > d0 && hasAudit(s, "plugin:ping send ok", 2)
	})
	require.Equal(t, "running", after.State)

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := os.Getenv("TGRUNNER_SCREENSHOT_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "tgrunner-status-page.png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"), "a PNG screenshot")
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
