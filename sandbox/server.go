package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gotd/td/crypto"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/dcs"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgtest"

	"github.com/gotd/td/transport"
	"github.com/tgrunner/tgrunner/core/logging"
)

// Options configure a sandbox server.
type Options struct {
	// Dir keeps the RSA key (and nothing else yet) across restarts. Empty
	// means everything lives in memory.
	Dir string
	// DC is the datacenter id the server announces. Default 2.
	DC int
	// Listen is the TCP address. Default 127.0.0.1:0.
	Listen string
	// Logger receives server logs. Nil means no logs.
	Logger *zap.Logger
	// Faults injects Telegram-like failures; can be changed with SetFaults.
	Faults Faults
	// Key is the server RSA key. When nil it is loaded from Dir or generated.
	Key *rsa.PrivateKey
	// DifferenceLimit caps the events in one updates.getDifference or
	// getChannelDifference answer; larger backlogs come as slices.
	// Default 1000.
	DifferenceLimit int
	// PushQueueLimit is how many updates may wait for one slow session before
	// the server drops that session (the client recovers with getDifference).
	// Default 100000.
	PushQueueLimit int
}

func (o *Options) setDefaults() {
	if o.DC == 0 {
		o.DC = 2
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.DifferenceLimit <= 0 {
		o.DifferenceLimit = 1000
	}
	if o.PushQueueLimit <= 0 {
		o.PushQueueLimit = 100000
	}
}

// Server is a running sandbox.
type Server struct {
	opts   Options
	log    *zap.Logger
	key    *rsa.PrivateKey
	tg     *tgtest.Server
	ln     *connListener
	addr   *net.TCPAddr
	cancel context.CancelFunc
	done   chan struct{}
	ctx    context.Context

	handlers map[uint32]handlerFunc

	hashSecret uint64

	// mu guards the world, sessions and faults below.
	mu sync.Mutex
	// notify is closed and replaced whenever a message is stored, so waiters
	// wake without polling.
	notify chan struct{}

	accounts      map[int64]*account
	byPhone       map[string]int64
	byUsername    map[string]peerKey
	groups        map[int64]*basicGroup
	channels      map[int64]*channel
	invites       map[string]peerKey // invite link hash → group or channel
	nextUserID    int64
	nextChatID    int64
	nextChannelID int64
	codes         map[string]*pendingCode // by phone
	files         map[int64]*fileRec
	uploads       map[uploadKey]*upload
	nextFileID    int64
	loginTokens   map[string]*loginToken

	msgLog []loggedMsg
	// userCache holds encoded user objects per (viewer, target).
	userCache map[[2]int64]rawObject

	keys     map[[8]byte]*keyState
	sessions map[int64]*liveSession
	byUser   map[int64]map[int64]*liveSession
	maxConc  map[int64]int

	faults   Faults
	limiter  *limiter
	closeErr error
	closed   bool
}

// Start listens on opts.Listen and serves MTProto in the background until
// Close or ctx is done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts.setDefaults()
	key, err := loadOrCreateKey(opts)
	if err != nil {
		return nil, err
	}
	var secret [8]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("sandbox: random: %w", err)
	}
	s := &Server{
		opts:          opts,
		log:           opts.Logger,
		key:           key,
		hashSecret:    binary.LittleEndian.Uint64(secret[:]),
		notify:        make(chan struct{}),
		accounts:      map[int64]*account{},
		byPhone:       map[string]int64{},
		byUsername:    map[string]peerKey{},
		groups:        map[int64]*basicGroup{},
		channels:      map[int64]*channel{},
		invites:       map[string]peerKey{},
		nextUserID:    1000000,
		nextChatID:    4000,
		nextChannelID: 1000000000,
		codes:         map[string]*pendingCode{},
		files:         map[int64]*fileRec{},
		uploads:       map[uploadKey]*upload{},
		loginTokens:   map[string]*loginToken{},
		keys:          map[[8]byte]*keyState{},
		sessions:      map[int64]*liveSession{},
		byUser:        map[int64]map[int64]*liveSession{},
		maxConc:       map[int64]int{},
		userCache:     map[[2]int64]rawObject{},
		faults:        opts.Faults,
		limiter:       newLimiter(),
		done:          make(chan struct{}),
	}
	s.registerHandlers()

	lc := net.ListenConfig{}
	inner, err := lc.Listen(ctx, "tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen %s: %w", opts.Listen, err)
	}
	s.addr = inner.Addr().(*net.TCPAddr)
	s.ln = newConnListener(inner, s.probeSessions)

	s.tg = tgtest.NewServer(tgtest.NewPrivateKey(key), tgtest.HandlerFunc(s.onMessage), tgtest.ServerOptions{
		DC:           opts.DC,
		Logger:       logging.Gotd(opts.Logger.Named("mtproto")),
		ReadTimeout:  24 * time.Hour,
		WriteTimeout: 30 * time.Second,
	})

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.ctx = runCtx
	s.cancel = cancel
	go func() {
		defer close(s.done)
		if err := s.tg.Serve(runCtx, transport.Listen(s.ln)); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("serve stopped", zap.Error(err))
		}
	}()
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = s.Close()
			case <-s.done:
			}
		}()
	}
	s.log.Info("sandbox listening", zap.String("addr", s.Addr()), zap.Int("dc", opts.DC))
	return s, nil
}

// Close stops the server and drops every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	sessions := make([]*liveSession, 0, len(s.sessions))
	for _, ls := range s.sessions {
		sessions = append(sessions, ls)
	}
	s.mu.Unlock()
	for _, ls := range sessions {
		s.dropSession(ls, "server closed")
	}
	s.cancel()
	_ = s.ln.Close()
	<-s.done
	return nil
}

// Addr is the "host:port" the server listens on.
func (s *Server) Addr() string { return s.addr.String() }

// DC is the datacenter id the server announces.
func (s *Server) DC() int { return s.opts.DC }

// PublicKey is the RSA key clients pin.
func (s *Server) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

// PublicKeyPEM is PublicKey in PKCS#1 PEM, the format Telegram publishes.
func (s *Server) PublicKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{
		Type:  "RSA PUBLIC KEY",
		Bytes: x509.MarshalPKCS1PublicKey(&s.key.PublicKey),
	})
}

func (s *Server) dcOption() tg.DCOption {
	return tg.DCOption{ID: s.opts.DC, IPAddress: s.addr.IP.String(), Port: s.addr.Port, Static: true}
}

// ClientOptions returns gotd client options that reach this server: public
// key, DC, DC list and a plain TCP resolver. Callers add session storage,
// update handler and the rest.
func (s *Server) ClientOptions() telegram.Options {
	return telegram.Options{
		PublicKeys: []telegram.PublicKey{{RSA: &s.key.PublicKey}},
		DC:         s.opts.DC,
		DCList:     dcs.List{Options: []tg.DCOption{s.dcOption()}},
		Resolver:   dcs.Plain(dcs.PlainOptions{}),
	}
}

func loadOrCreateKey(opts Options) (*rsa.PrivateKey, error) {
	if opts.Key != nil {
		return opts.Key, nil
	}
	if opts.Dir == "" {
		k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
		if err != nil {
			return nil, fmt.Errorf("sandbox: generate RSA key: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(opts.Dir, "server_key.pem")
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("sandbox: load key %s: no PEM block", path)
		}
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sandbox: load key %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("sandbox: load key %s: %w", path, err)
	}
	k, err := rsa.GenerateKey(rand.Reader, crypto.RSAKeyBits)
	if err != nil {
		return nil, fmt.Errorf("sandbox: generate RSA key: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: create dir %s: %w", opts.Dir, err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, fmt.Errorf("sandbox: save key %s: %w", path, err)
	}
	return k, nil
}

func (s *Server) config() *tg.Config {
	now := int(time.Now().Unix())
	return &tg.Config{
		Date:                    now,
		Expires:                 now + 3600,
		TestMode:                false,
		ThisDC:                  s.opts.DC,
		DCOptions:               []tg.DCOption{s.dcOption()},
		DCTxtDomainName:         "sandbox.invalid",
		ChatSizeMax:             200,
		MegagroupSizeMax:        200000,
		ForwardedCountMax:       100,
		OnlineUpdatePeriodMs:    210000,
		OfflineBlurTimeoutMs:    5000,
		OfflineIdleTimeoutMs:    30000,
		OnlineCloudTimeoutMs:    300000,
		NotifyCloudDelayMs:      30000,
		NotifyDefaultDelayMs:    1500,
		PushChatPeriodMs:        60000,
		PushChatLimit:           2,
		EditTimeLimit:           172800,
		RevokeTimeLimit:         2147483647,
		RevokePmTimeLimit:       2147483647,
		RatingEDecay:            2419200,
		StickersRecentLimit:     200,
		ChannelsReadMediaPeriod: 604800,
		CallReceiveTimeoutMs:    20000,
		CallRingTimeoutMs:       90000,
		CallConnectTimeoutMs:    30000,
		CallPacketTimeoutMs:     10000,
		MeURLPrefix:             "https://t.me/",
		CaptionLengthMax:        1024,
		MessageLengthMax:        4096,
		WebfileDCID:             s.opts.DC,
	}
}
