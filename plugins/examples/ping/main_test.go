package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func TestPingRepliesPongInTheSameChat(t *testing.T) {
	h := sdktest.New(t, newPlugin())
	ev := sdktest.GroupCommand("ping")
	out := h.Handle(ev)
	if out.Err != "" {
		t.Fatalf("handling failed: %s", out.Err)
	}
	if len(out.Calls) != 2 {
		t.Fatalf("calls %v, want a send and an edit", out.Calls)
	}
	send := out.Calls[0].Action.GetSend()
	if send.GetText() != "pong" || sdk.PeerString(send.GetChat()) != "chat:3001" || send.GetReplyToMessageId() != ev.GetNewMessage().GetId() {
		t.Fatalf("send %v", send)
	}
	edit := out.Calls[1].Action.GetEdit()
	if !regexp.MustCompile(`^pong \(\d+ ms\)$`).MatchString(edit.GetText()) || edit.GetMessageId() != out.Calls[0].Result.GetMessage().GetId() {
		t.Fatalf("edit %v", edit)
	}
}

func TestPingWithoutEditPermissionOnlySends(t *testing.T) {
	h := sdktest.New(t, newPlugin(), sdktest.WithGranted(sdk.Permissions{Actions: []string{"send"}}))
	out := h.Handle(sdktest.PrivateText(".ping"))
	if len(out.Calls) != 1 || out.Calls[0].Name != "send" {
		t.Fatalf("calls %v", out.Calls)
	}
}

func TestPingIgnoresOtherText(t *testing.T) {
	h := sdktest.New(t, newPlugin())
	for _, text := range []string{"ping", ".pingpong", "hello .ping", ".PING"} {
		if out := h.Handle(sdktest.PrivateText(text)); len(out.Calls) != 0 {
			t.Fatalf("%q: calls %v", text, out.Calls)
		}
	}
}

func TestPingReportsFloodWait(t *testing.T) {
	h := sdktest.New(t, newPlugin())
	h.FailNext("send", &sdk.FloodWaitError{Seconds: 42})
	out := h.Handle(sdktest.PrivateText(".ping"))
	if !strings.Contains(out.Err, "flood wait: retry after 42s") {
		t.Fatalf("ack error %q", out.Err)
	}
	if len(out.Calls) != 1 {
		t.Fatalf("it must not edit a message it failed to send: %v", out.Calls)
	}
}

// buildPing compiles this plugin into a temporary directory.
func buildPing(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ping")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

func TestBinaryUnderGoPlugin(t *testing.T) {
	bin := buildPing(t)

	t.Run("run by hand", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("run without the runner: %v, want exit status 1", err)
		}
		if msg := stderr.String(); !strings.Contains(msg, "ping 0.1.0 is a tgrunner plugin") || !strings.Contains(msg, "docs/plugins.md") {
			t.Fatalf("message %q", msg)
		}
	})

	t.Run("served to a go-plugin client", func(t *testing.T) {
		h, err := sdktest.StartProcess(t, exec.Command(bin))
		if err != nil {
			t.Fatal(err)
		}
		if info := h.Info(); info.GetName() != "ping" || info.GetSdk() != "go/"+sdk.Version || len(info.GetCommands()) != 1 {
			t.Fatalf("info %v", info)
		}
		out := h.Handle(sdktest.GroupCommand("ping"))
		if out.Err != "" || len(out.Calls) == 0 || !strings.HasPrefix(out.Calls[0].Text(), "pong") || out.Calls[0].Name != "send" {
			t.Fatalf("outcome %+v", out)
		}
		if err := h.Shutdown(); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	})
}
