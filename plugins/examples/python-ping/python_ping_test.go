// Package pythonping tests the Python example plugin as the runner runs
// it: a real process under go-plugin with AutoMTLS.
package pythonping

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// The system interpreter: Debian's python3-grpcio is installed for it, not
// for whatever python3 comes first on PATH.
const python = "/usr/bin/python3"

func requirePython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput()
	if err != nil {
		t.Skipf("python3-grpcio is not installed: %s cannot import grpc, google.protobuf and cryptography (%v: %s); "+
			"apt-get install python3-grpcio python3-protobuf python3-cryptography", python, err, strings.TrimSpace(string(out)))
	}
	script, err := filepath.Abs("ping.py")
	if err != nil {
		t.Fatal(err)
	}
	return script
}

func TestPythonPluginPongs(t *testing.T) {
	script := requirePython(t)
	// Started directly, as the runner starts plugins: the shebang names the
	// system interpreter.
	h, err := sdktest.StartProcess(t, exec.Command(script), sdktest.WithPrefix("!"))
	if err != nil {
		t.Fatal(err)
	}
	info := h.Info()
	if info.GetName() != "python-ping" || info.GetSdk() != "python/0.1.0" || info.GetCommands()[0].GetName() != "ping" {
		t.Fatalf("info %v", info)
	}

	ev := sdktest.GroupText("!ping")
	out := h.Handle(ev)
	if out.Err != "" {
		t.Fatalf("ack error %q", out.Err)
	}
	if len(out.Calls) != 1 || out.Calls[0].Name != "send" {
		t.Fatalf("calls %v", out.Calls)
	}
	send := out.Calls[0].Action.GetSend()
	if !strings.HasPrefix(send.GetText(), "pong") || sdk.PeerString(send.GetChat()) != "chat:3001" || send.GetReplyToMessageId() != ev.GetNewMessage().GetId() {
		t.Fatalf("send %v", send)
	}
	if out.Calls[0].CauseSeq != out.Seq {
		t.Fatalf("cause_seq %d, want %d", out.Calls[0].CauseSeq, out.Seq)
	}

	// Not a command: acked, nothing sent. A redelivered event is acked
	// again without a second pong.
	if out := h.Handle(sdktest.PrivateText("!pingu")); len(out.Calls) != 0 {
		t.Fatalf("calls for !pingu: %v", out.Calls)
	}
	h.Redeliver(ev)
	h.WaitAck(ev.GetSeq())
	if n := len(h.Calls("send")); n != 1 {
		t.Fatalf("%d sends after a redelivery", n)
	}

	// A failed action is acked with its error; the plugin keeps going.
	h.FailNext("send", &sdk.FloodWaitError{Seconds: 7})
	if out := h.Handle(sdktest.PrivateText("!ping")); !strings.Contains(out.Err, "FLOOD_WAIT (retry after 7s)") {
		t.Fatalf("ack error %q", out.Err)
	}
	if out := h.Handle(sdktest.PrivateText("!ping")); out.Err != "" || len(out.Calls) != 1 {
		t.Fatalf("after a failure: %+v", out)
	}

	// A config reload changes the reply.
	if err := h.Reconfigure(`{"reply":"pong!"}`); err != nil {
		t.Fatal(err)
	}
	if out := h.Handle(sdktest.PrivateText("!ping")); len(out.Calls) != 1 || out.Calls[0].Text() != "pong!" {
		t.Fatalf("after reload: %v", out.Calls)
	}
	if err := h.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestPythonPluginRefusesUnknownConfig(t *testing.T) {
	script := requirePython(t)
	_, err := sdktest.StartProcess(t, exec.Command(script), sdktest.WithConfig(`{"replay":"x"}`), sdktest.Quiet())
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config: replay: unknown key") {
		t.Fatalf("Configure: %v", err)
	}
}

func TestPythonPluginRunByHand(t *testing.T) {
	script := requirePython(t)
	out, err := exec.Command(script).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "is a tgrunner plugin") {
		t.Fatalf("run by hand: %v: %s", err, out)
	}
}
