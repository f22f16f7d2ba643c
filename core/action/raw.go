package action

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// rawRequest sends bytes that are already a TL-encoded request.
type rawRequest []byte

func (r rawRequest) Encode(b *bin.Buffer) error {
	b.Put(r)
	return nil
}

// rawAnswer keeps the answer's bytes undecoded.
type rawAnswer struct{ data []byte }

func (r *rawAnswer) Decode(b *bin.Buffer) error {
	r.data = append([]byte{}, b.Buf...)
	b.Skip(len(b.Buf))
	return nil
}

// maxRawRequest bounds a raw request; MTProto messages are at most 1 MiB.
const maxRawRequest = 1 << 20

// wrappers are the requests that carry another request. raw_invoke refuses
// them: the guard judges a raw request by its outer method, so a wrapper
// would hide the real one.
var wrappers = map[uint32]bool{
	tg.InvokeAfterMsgRequestTypeID:                true,
	tg.InvokeAfterMsgsRequestTypeID:               true,
	tg.InitConnectionRequestTypeID:                true,
	tg.InvokeWithLayerRequestTypeID:               true,
	tg.InvokeWithoutUpdatesRequestTypeID:          true,
	tg.InvokeWithMessagesRangeRequestTypeID:       true,
	tg.InvokeWithTakeoutRequestTypeID:             true,
	tg.InvokeWithBusinessConnectionRequestTypeID:  true,
	tg.InvokeWithGooglePlayIntegrityRequestTypeID: true,
	tg.InvokeWithApnsSecretRequestTypeID:          true,
	tg.InvokeWithReCaptchaRequestTypeID:           true,
}

// methods maps the constructor id of every API method (not type) to its
// TL name, such as "messages.sendMessage".
var methods = sync.OnceValue(func() map[uint32]string {
	names := tg.TypesMap()
	out := map[uint32]string{}
	for id, mk := range tg.TypesConstructorMap() {
		t := reflect.TypeOf(mk())
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if !strings.HasSuffix(t.Name(), "Request") {
			continue
		}
		name := names[id]
		if i := strings.IndexByte(name, '#'); i >= 0 {
			name = name[:i]
		}
		out[id] = name
	}
	return out
})

// RawMethod names the method of a TL-encoded request ("messages.sendMessage"),
// or returns "" when the bytes do not start with a known API method.
func RawMethod(req []byte) string {
	if len(req) < 4 {
		return ""
	}
	return methods()[binary.LittleEndian.Uint32(req)]
}

// checkRaw validates a raw request before it is sent.
func checkRaw(req []byte) (string, error) {
	if len(req) < 4 {
		return "", invalidf("request_tl: %d bytes; a TL request starts with its 4-byte constructor id", len(req))
	}
	if len(req)%4 != 0 {
		return "", invalidf("request_tl: %d bytes; TL requests are padded to 4 bytes", len(req))
	}
	if len(req) > maxRawRequest {
		return "", invalidf("request_tl: %d bytes, over the 1 MiB MTProto limit", len(req))
	}
	id := binary.LittleEndian.Uint32(req)
	if wrappers[id] {
		return "", invalidf("request_tl: %s wraps another request; send the bare method", tg.TypesMap()[id])
	}
	name := RawMethod(req)
	if name == "" {
		return "", invalidf("request_tl: constructor %#08x is not an API method of layer %d", id, tg.Layer)
	}
	return name, nil
}

// rawInvoke sends a TL request as given and returns the TL answer as
// received. Nothing is decoded, so entities in the answer do not reach the
// peer cache and updates in it do not reach the updates manager.
func (x *Executor) rawInvoke(ctx context.Context, m *pb.RawInvoke) (*pb.ActionResult, error) {
	req := m.GetRequestTl()
	name, err := checkRaw(req)
	if err != nil {
		return nil, err
	}
	var out rawAnswer
	if err := x.api.Invoker().Invoke(ctx, rawRequest(req), &out); err != nil {
		return nil, fmt.Errorf("raw invoke %s: %w", name, err)
	}
	return &pb.ActionResult{Result: &pb.ActionResult_RawTl{RawTl: out.data}}, nil
}
