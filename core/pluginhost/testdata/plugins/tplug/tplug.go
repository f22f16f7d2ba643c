// Package tplug is the plugin side of the contract, kept as small as the
// host's tests need: a Session loop with ordered handling, batched acks and
// concurrent action calls. It is written directly against pluginv1, wire
// and go-plugin, independent of the SDK.
package tplug

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/hashicorp/go-plugin"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/wire"
)

// Stderr is the process's real stderr, where go-plugin reads hclog JSON
// lines; plugin.Serve redirects os.Stderr into its stdio stream.
var Stderr = os.Stderr

// Plugin describes a test plugin.
type Plugin struct {
	Info *pluginv1.PluginInfo
	// Handle handles one event; an error acks it with the error.
	Handle func(s *Session, ev *pluginv1.Event) error
}

// Serve runs the plugin (GOMAXPROCS=1, as plugins should on a small box).
func Serve(p Plugin) {
	runtime.GOMAXPROCS(1)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.ServerPlugins(&server{p: p}),
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

type server struct {
	pluginv1.UnimplementedPluginServer
	p    Plugin
	conf *pluginv1.ConfigureRequest
}

func (s *server) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.PluginInfo, error) {
	if s.p.Info != nil {
		return s.p.Info, nil
	}
	return &pluginv1.PluginInfo{Name: "test", Version: "0.0.1", Sdk: "tplug"}, nil
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.conf = req
	return &pluginv1.ConfigureResponse{}, nil
}

// Session is the plugin's end of one session.
type Session struct {
	Config *pluginv1.ConfigureRequest
	stream pluginv1.Plugin_SessionServer

	sendMu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *pluginv1.ActionResult
}

func (s *server) Session(stream pluginv1.Plugin_SessionServer) error {
	ss := &Session{Config: s.conf, stream: stream, pending: map[uint64]chan *pluginv1.ActionResult{}}
	events := make(chan *pluginv1.Event, 1024)
	handled := make(chan error, 1)
	go func() { handled <- ss.work(events, s.p.Handle) }()
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch m := msg.GetMsg().(type) {
		case *pluginv1.HostMessage_Event:
			events <- m.Event
		case *pluginv1.HostMessage_ActionResponse:
			ss.mu.Lock()
			ch := ss.pending[m.ActionResponse.GetId()]
			delete(ss.pending, m.ActionResponse.GetId())
			ss.mu.Unlock()
			if ch != nil {
				ch <- m.ActionResponse.GetResult()
			}
		case *pluginv1.HostMessage_Shutdown:
			close(events)
			return <-handled
		}
	}
}

// work handles events in order. Acks are batched while more events wait
// and sent at once when none do, so an idle plugin acks immediately.
func (s *Session) work(events <-chan *pluginv1.Event, handle func(*Session, *pluginv1.Event) error) error {
	var batch []uint64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.send(&pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Ack{Ack: &pluginv1.Ack{Seqs: batch}}})
		batch = nil
		return err
	}
	for ev := range events {
		var herr error
		if handle != nil {
			herr = handle(s, ev)
		}
		if herr != nil {
			if err := flush(); err != nil {
				return err
			}
			if err := s.send(&pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Ack{Ack: &pluginv1.Ack{Seqs: []uint64{ev.GetSeq()}, Error: herr.Error()}}}); err != nil {
				return err
			}
			continue
		}
		batch = append(batch, ev.GetSeq())
		if len(events) == 0 || len(batch) >= 64 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (s *Session) send(m *pluginv1.PluginMessage) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

// Call asks the host for an action and waits for its result.
func (s *Session) Call(a *pluginv1.Action, causeSeq uint64) (*pluginv1.ActionResult, error) {
	return s.CallLabelled(a, causeSeq, "")
}

// CallLabelled is Call with the request's audit label set to label, byte
// for byte (tests send hostile labels through it).
func (s *Session) CallLabelled(a *pluginv1.Action, causeSeq uint64, label string) (*pluginv1.ActionResult, error) {
	ch := make(chan *pluginv1.ActionResult, 1)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id] = ch
	s.mu.Unlock()
	if err := s.send(&pluginv1.PluginMessage{Msg: &pluginv1.PluginMessage_Action{Action: &pluginv1.ActionRequest{Id: id, Action: a, CauseSeq: causeSeq, Label: label}}}); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-s.stream.Context().Done():
		return nil, s.stream.Context().Err()
	}
}

// Report stores key=value in the plugin's KV namespace, so a test can read
// what the plugin saw.
func (s *Session) Report(key, value string) error {
	r, err := s.Call(&pluginv1.Action{Kind: &pluginv1.Action_KvSet{KvSet: &pluginv1.KVSet{Key: key, Value: []byte(value)}}}, 0)
	if err != nil {
		return err
	}
	if r.GetError() != nil {
		return fmt.Errorf("report %s: %s", key, r.GetError().GetMessage())
	}
	return nil
}

// Text returns a message event's text.
func Text(ev *pluginv1.Event) string {
	if m := ev.GetNewMessage(); m != nil {
		return m.GetText()
	}
	return ev.GetEditedMessage().GetText()
}

// Logf writes a plain line to stderr (go-plugin re-logs it).
func Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
