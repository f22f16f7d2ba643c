// Command probe does what each message text tells it, so one small binary
// can exercise the host's supervision, permissions and environment:
//
//	hang             never acks (the host must kill it at the deadline)
//	slow MS          takes MS milliseconds
//	send PEER        sends to PEER, reports the result code as result:SEQ
//	raw HEX          raw_invoke with HEX bytes, reports result:SEQ
//	labelled PEER HEX  sends to PEER with the audit label HEX (decoded,
//	                 byte for byte), reports result:SEQ
//	env              reports its whole environment as env, NUL-separated
//	spawn            starts a child process, reports its pid as child
//	rtt N            N sequential send actions to the event's chat,
//	                 reports the round trips in ns as rtt
//	pid              reports its own pid as pid
//	hang-once        hangs unless a marker file exists in its working
//	                 directory, which it creates first
//	cwd              reports its working directory as cwd
//	log MSG          writes MSG as an hclog JSON warning on stderr
//
// Anything else is acked at once.
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/core/pluginhost/testdata/plugins/tplug"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

func main() {
	tplug.Serve(tplug.Plugin{
		Info: &pluginv1.PluginInfo{Name: "probe", Version: "1.0.0", Sdk: "tplug"},
		Handle: func(s *tplug.Session, ev *pluginv1.Event) error {
			cmd, arg, _ := strings.Cut(tplug.Text(ev), " ")
			switch cmd {
			case "hang":
				select {}
			case "slow":
				ms, _ := strconv.Atoi(arg)
				time.Sleep(time.Duration(ms) * time.Millisecond)
			case "send":
				peer, err := parsePeer(arg)
				if err != nil {
					return err
				}
				return result(s, ev, &pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{Chat: peer, Text: "hi"}}})
			case "labelled":
				to, hexLabel, _ := strings.Cut(arg, " ")
				peer, err := parsePeer(to)
				if err != nil {
					return err
				}
				label, err := hex.DecodeString(hexLabel)
				if err != nil {
					return err
				}
				r, err := s.CallLabelled(&pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{Chat: peer, Text: "hi"}}}, ev.GetSeq(), string(label))
				if err != nil {
					return err
				}
				return report(s, ev, r)
			case "raw":
				b, err := hex.DecodeString(arg)
				if err != nil {
					return err
				}
				return result(s, ev, &pluginv1.Action{Kind: &pluginv1.Action_RawInvoke{RawInvoke: &pluginv1.RawInvoke{RequestTl: b}}})
			case "env":
				return s.Report("env", strings.Join(os.Environ(), "\x00"))
			case "spawn":
				c := exec.Command("/bin/sleep", "600") // no PATH: the host passes none
				if err := c.Start(); err != nil {
					return err
				}
				return s.Report("child", strconv.Itoa(c.Process.Pid))
			case "hang-once":
				if _, err := os.Stat("hung-once"); err != nil {
					if err := os.WriteFile("hung-once", nil, 0o600); err != nil {
						return err
					}
					select {}
				}
			case "cwd":
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				return s.Report("cwd", wd)
			case "log":
				fmt.Fprintf(tplug.Stderr, `{"@level":"warn","@message":%q,"@timestamp":%q,"seq":%d}`+"\n", arg, time.Now().Format("2006-01-02T15:04:05.000000Z07:00"), ev.GetSeq())
			case "pid":
				return s.Report("pid", strconv.Itoa(os.Getpid()))
			case "rtt":
				n, _ := strconv.Atoi(arg)
				chat := ev.GetNewMessage().GetChat().GetPeer()
				var out []string
				for range n {
					t := time.Now()
					r, err := s.Call(&pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{Chat: chat, Text: "x"}}}, ev.GetSeq())
					if err != nil {
						return err
					}
					if r.GetError() != nil {
						return fmt.Errorf("rtt: %s", r.GetError().GetMessage())
					}
					out = append(out, strconv.FormatInt(int64(time.Since(t)), 10))
				}
				return s.Report("rtt", strings.Join(out, ","))
			}
			return nil
		},
	})
}

func result(s *tplug.Session, ev *pluginv1.Event, a *pluginv1.Action) error {
	r, err := s.Call(a, ev.GetSeq())
	if err != nil {
		return err
	}
	return report(s, ev, r)
}

func report(s *tplug.Session, ev *pluginv1.Event, r *pluginv1.ActionResult) error {
	code := "OK"
	if e := r.GetError(); e != nil {
		code = e.GetCode().String() + ": " + e.GetMessage()
	}
	return s.Report(fmt.Sprintf("result:%d", ev.GetSeq()), code)
}

func parsePeer(s string) (*pluginv1.Peer, error) {
	kind, id, _ := strings.Cut(s, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", s, err)
	}
	k := map[string]pluginv1.PeerKind{"user": pluginv1.PeerKind_PEER_KIND_USER, "chat": pluginv1.PeerKind_PEER_KIND_CHAT, "channel": pluginv1.PeerKind_PEER_KIND_CHANNEL}[kind]
	return &pluginv1.Peer{Kind: k, Id: n}, nil
}
