package sandbox

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gotd/td/mtproxy/obfuscated2"
	"github.com/gotd/td/proto/codec"
)

// Transport framing is detected per connection before tgtest sees it:
// transport.Listener detects codecs inside Accept, so one slow or malformed
// client would stall (or, on error, stop) tgtest's accept loop. The listener
// below accepts, sniffs and unwraps obfuscation in a goroutine per
// connection and only hands over connections whose framing is known.

const handshakeTimeout = 10 * time.Second

type connListener struct {
	inner  net.Listener
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	onConn func(*trackedConn)
	onGone func()
}

func newConnListener(inner net.Listener, onGone func()) *connListener {
	l := &connListener{
		inner:  inner,
		conns:  make(chan net.Conn),
		done:   make(chan struct{}),
		onGone: onGone,
	}
	go l.acceptLoop()
	return l
}

func (l *connListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			_ = l.Close()
			return
		}
		go l.prepare(c)
	}
}

func (l *connListener) prepare(raw net.Conn) {
	_ = raw.SetReadDeadline(time.Now().Add(handshakeTimeout))
	conn, err := unwrapTransport(raw)
	if err != nil {
		_ = raw.Close()
		return
	}
	_ = raw.SetReadDeadline(time.Time{})
	tc := &trackedConn{Conn: conn, onClose: l.onGone}
	select {
	case l.conns <- tc:
	case <-l.done:
		_ = raw.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *connListener) Addr() net.Addr { return l.inner.Addr() }

// trackedConn reports its closing, so the server can find sessions whose
// connection went away.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.onClose != nil {
			go c.onClose()
		}
	})
	return err
}

type readConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c *readConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *readConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// unwrapTransport returns a connection that starts with a plain MTProto
// transport tag (abridged, intermediate, padded intermediate) or a full
// transport frame, removing obfuscated2 if the client used it.
func unwrapTransport(raw net.Conn) (net.Conn, error) {
	br := bufio.NewReaderSize(raw, 128)
	head, err := br.Peek(8)
	if err != nil {
		// Abridged connections may start with fewer bytes.
		if len(head) >= 1 && head[0] == codec.AbridgedClientStart[0] {
			return &readConn{Conn: raw, r: br, w: raw}, nil
		}
		return nil, err
	}
	if isPlainTransport(head) {
		return &readConn{Conn: raw, r: br, w: raw}, nil
	}
	rw, md, err := obfuscated2.Accept(&readConn{Conn: raw, r: br, w: raw}, nil)
	if err != nil {
		return nil, err
	}
	var tag []byte
	switch {
	case md.Protocol[0] == codec.AbridgedClientStart[0]:
		tag = md.Protocol[:1]
	case md.Protocol == codec.IntermediateClientStart, md.Protocol == codec.PaddedIntermediateClientStart:
		tag = md.Protocol[:]
	default:
		return nil, io.ErrUnexpectedEOF
	}
	return &readConn{Conn: raw, r: io.MultiReader(bytes.NewReader(tag), rw), w: rw}, nil
}

// isPlainTransport reports whether the first 8 bytes are a known
// unobfuscated MTProto transport start. Obfuscated2 headers are built by
// clients to never look like these.
func isPlainTransport(head []byte) bool {
	if head[0] == codec.AbridgedClientStart[0] {
		return true
	}
	var first [4]byte
	copy(first[:], head[:4])
	if first == codec.IntermediateClientStart || first == codec.PaddedIntermediateClientStart {
		return true
	}
	// Full transport: length, then sequence number 0.
	return binary.LittleEndian.Uint32(head[4:8]) == 0
}
