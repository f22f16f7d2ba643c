package sandbox

import (
	"context"
	"testing"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
)

// FuzzDispatch feeds random TL request bodies to the dispatcher, as an
// authorized account, and requires an RPC error or a result, never a panic.
func FuzzDispatch(f *testing.F) {
	s := startServer(f, Options{})
	u, err := s.CreateUser(context.Background(), UserSpec{Phone: "9996610001", FirstName: "Fuzz", Username: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	s.mu.Lock()
	s.keys[[8]byte{1}] = &keyState{userID: u.ID}
	s.mu.Unlock()
	seed := func(e bin.Encoder) {
		var b bin.Buffer
		if err := e.Encode(&b); err == nil {
			f.Add(b.Buf)
		}
	}
	seed(&tg.MessagesSendMessageRequest{Peer: &tg.InputPeerSelf{}, Message: "hi", RandomID: 1})
	seed(&tg.MessagesGetHistoryRequest{Peer: &tg.InputPeerSelf{}, Limit: 10})
	seed(&tg.UpdatesGetDifferenceRequest{Pts: 0})
	seed(&tg.ContactsResolveUsernameRequest{Username: "fuzz"})
	seed(&tg.InvokeWithLayerRequest{Layer: tg.Layer, Query: &tg.HelpGetConfigRequest{}})
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		c := &call{ctx: context.Background(), s: s}
		c.key.ID = [8]byte{1}
		res, err := s.dispatch(c, &bin.Buffer{Buf: append([]byte(nil), body...)})
		if err != nil {
			if _, ok := tgerr.As(err); !ok {
				t.Fatalf("non-RPC error %T: %v", err, err)
			}
			return
		}
		var b bin.Buffer
		if err := res.Encode(&b); err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
	})
}
