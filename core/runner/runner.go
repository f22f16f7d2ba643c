package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotd/contrib/middleware/floodwait"
	"github.com/gotd/contrib/middleware/ratelimit"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/auth"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/telegram/updates/hook"
	"github.com/gotd/td/tg"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/logging"
	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// Session is what the journal's consumers get while the account is
// connected.
type Session struct {
	Account string
	API     *tg.Client
	Self    *tg.User
	Peers   *peers.Cache
	Store   store.Backend
	Log     *zap.Logger
}

// Service runs for as long as the session lives, reading the journal and
// acting on the account. Run returns when ctx ends; it must finish its
// in-flight work first (bounded by the shutdown timeout).
type Service interface {
	Run(ctx context.Context, s *Session) error
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(ctx context.Context, s *Session) error

// Run implements Service.
func (f ServiceFunc) Run(ctx context.Context, s *Session) error { return f(ctx, s) }

// Options tune a Runner.
type Options struct {
	// Account names the account this runner hosts: events carry it and
	// plugins see it. Default "default" (a config with a single account:).
	Account string
	Logger  *zap.Logger
	// Sandbox is the embedded server, for server: sandbox.
	Sandbox *sandbox.Server
	// Login, when set, logs the account in if the session is not
	// authorized (the sandbox demo and tests); otherwise Run fails with
	// ErrNotLoggedIn.
	Login auth.UserAuthenticator
	// Services run while the session is up.
	Services []Service
	// ShutdownTimeout bounds how long services may take to finish in-flight
	// work after a stop request. Default 10s.
	ShutdownTimeout time.Duration
	// OnReady is called once the account is known and updates flow.
	OnReady func(s *Session)
	// Observe sees every batch appended to the journal.
	Observe func([]store.Entry)
	// OnConnectionState sees the MTProto primary connection's state:
	// "connecting", "ready" or "disconnected" (gotd's ConnectionState).
	// OnDead sees why a connection died; OnFloodWait each FLOOD_WAIT the
	// client sat out below limits.flood_wait.max_wait. None may block.
	OnConnectionState func(state string)
	OnDead            func(err error)
	OnFloodWait       func(d time.Duration)
	// Lease, when set, is the account's exclusive lease (Redis storage):
	// no RPC goes out once it is invalid, and the client disconnects at
	// once when it is lost; Run then returns ErrLeaseLost.
	Lease Lease
}

// DefaultAccount is the name of the account of a config with a single
// account: section.
const DefaultAccount = "default"

// Runner hosts one account's session.
type Runner struct {
	cfg   *config.Config
	store store.Backend
	opts  Options
	log   *zap.Logger

	peers  *peers.Cache
	intake *Intake

	mu   sync.Mutex
	live *Session
}

// New prepares a runner over an open store.
func New(cfg *config.Config, st store.Backend, opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Account == "" {
		opts.Account = DefaultAccount
	}
	r := &Runner{cfg: cfg, store: st, opts: opts, log: opts.Logger}
	r.peers = peers.New(st.Peers())
	return r
}

// Session returns the live session, or nil before the runner is ready.
func (r *Runner) Session() *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

// Peers returns the runner's peer cache.
func (r *Runner) Peers() *peers.Cache { return r.peers }

// Run connects, catches up on missed updates, journals every update and
// runs the services until ctx ends or a fatal error occurs. Cancelling ctx
// is a graceful stop: intake stops, services finish their in-flight work
// (bounded), state is flushed.
func (r *Runner) Run(ctx context.Context) error {
	if r.opts.Lease != nil && !r.opts.Lease.Valid() {
		return ErrLeaseLost
	}
	opts, err := ClientOptions(r.cfg, r.opts.Sandbox)
	if err != nil {
		return err
	}
	account := r.opts.Account
	fatal := make(chan error, 1)
	r.intake = NewIntake(account, r.store.Journal(), r.peers, r.log.Named("intake"), func(err error) {
		select {
		case fatal <- err:
		default:
		}
	})
	r.intake.Observe = r.opts.Observe

	mgr := updates.New(updates.Config{
		Handler:          r.intake,
		Storage:          r.store.UpdateState(),
		AccessHasher:     r.store.AccessHashes(),
		UserAccessHasher: r.store.AccessHashes(),
		Logger:           logging.Gotd(r.log.Named("updates")),
		OnChannelTooLong: func(channelID int64) {
			r.log.Warn("Channel gap too long to recover; older updates of this channel are lost on the server side",
				zap.Int64("channel_id", channelID))
		},
	})
	fw := r.cfg.Limits.FloodWait
	waiter := floodwait.NewWaiter().
		WithMaxWait(fw.MaxWait).
		WithMaxRetries(fw.MaxRetries).
		WithCallback(func(ctx context.Context, w floodwait.FloodWait) {
			if fw.MaxWait != 0 && w.Duration > fw.MaxWait {
				// Not sat out: the error goes back to the caller (the
				// guard decides and logs).
				return
			}
			r.log.Warn("Flood wait", zap.Duration("wait", w.Duration))
			if f := r.opts.OnFloodWait; f != nil {
				f(w.Duration)
			}
		})
	rl := r.cfg.Limits.RPC
	limiter := ratelimit.New(rate.Every(rl.Interval), rl.Burst)

	if f := r.opts.OnConnectionState; f != nil {
		opts.OnConnectionState = func(s telegram.ConnectionState) { f(s.String()) }
	}
	if f := r.opts.OnDead; f != nil {
		prev := opts.OnDead
		opts.OnDead = func(err error) {
			if prev != nil {
				prev(err)
			}
			f(err)
		}
	}
	opts.SessionStorage = r.store.Session()
	gated := r.intake.Gate(mgr)
	opts.UpdateHandler = gated
	opts.Logger = logging.Gotd(r.log.Named("mtproto"))
	// Outermost first: RPC results reach the manager; then the global
	// token bucket; then passing internal errors are retried (tdl's order);
	// then flood waits are waited out next to the wire.
	opts.Middlewares = []telegram.Middleware{
		updatesHook(gated.Handle),
		hook.AffectedHook(mgr),
		limiter,
		retryInternal(retryAttempts, retryBase, r.log),
		waiter,
	}
	if r.opts.Lease != nil {
		opts.Middlewares = append(opts.Middlewares, leaseGate(r.opts.Lease))
	}
	client := telegram.NewClient(r.cfg.Account.APIID, r.cfg.Account.APIHash.Reveal(), opts)

	// The client outlives ctx so that services can finish in-flight
	// actions after a stop request.
	// Its cause tells services why it ended (ErrLeaseLost: no draining).
	clientCtx, cancelCause := context.WithCancelCause(context.WithoutCancel(ctx))
	cancelClient := func() { cancelCause(nil) }
	defer cancelClient()
	// Until a session is up there is nothing to drain: a stop request while
	// connecting (an unreachable server, a login in progress) ends at once.
	var serving atomic.Bool
	stopWatch := context.AfterFunc(ctx, func() {
		if !serving.Load() {
			cancelClient()
		}
	})
	defer stopWatch()
	// Losing the lease is not a graceful stop: nothing may drain, another
	// process may already be acting for the account.
	var leaseLost atomic.Bool
	if l := r.opts.Lease; l != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-l.Lost():
				leaseLost.Store(true)
				r.log.Error("Account lease lost: disconnecting at once")
				cancelCause(ErrLeaseLost)
			case <-done:
			}
		}()
	}

	runErr := waiter.Run(clientCtx, func(wctx context.Context) error {
		return client.Run(wctx, func(cctx context.Context) error {
			serving.Store(true)
			if ctx.Err() != nil {
				return errStopped
			}
			return r.serve(ctx, cctx, cancelClient, client, mgr, fatal)
		})
	})
	if leaseLost.Load() {
		return ErrLeaseLost
	}
	if errors.Is(runErr, errStopped) || (runErr != nil && ctx.Err() != nil && errors.Is(runErr, context.Canceled)) {
		runErr = nil
	}
	return Explain(runErr)
}

var errStopped = errors.New("runner stopped")

func (r *Runner) serve(stop, cctx context.Context, cancelClient func(), client *telegram.Client,
	mgr *updates.Manager, fatal <-chan error) error {
	status, err := client.Auth().Status(cctx)
	if err != nil {
		return fmt.Errorf("check login: %w", Explain(err))
	}
	if !status.Authorized {
		if r.opts.Login == nil {
			return ErrNotLoggedIn
		}
		flow := auth.NewFlow(r.opts.Login, auth.SendCodeOptions{})
		if err := flow.Run(cctx, client.Auth()); err != nil {
			return fmt.Errorf("log in: %w", Explain(err))
		}
	}
	self, err := client.Self(cctx)
	if err != nil {
		return fmt.Errorf("get self: %w", Explain(err))
	}
	r.intake.SetSelf(self.ID)
	if err := r.peers.Remember(cctx, []tg.UserClass{self}, nil); err != nil {
		return err
	}
	// Know every channel before the manager starts: a channel it first
	// hears of from a live update is tracked from there on, and what came
	// just before is skipped (a login done here, a channel joined while the
	// runner was down).
	if err := rememberLoginState(cctx, client.API(), r.store, self.ID); err != nil {
		r.log.Warn("Record the update state", zap.Error(err))
	}
	if err := rememberChannels(cctx, client.API(), r.store, self.ID); err != nil {
		r.log.Warn("Record the channels' positions", zap.Error(err))
	}
	sess := &Session{Account: r.opts.Account, API: client.API(), Self: self, Peers: r.peers, Store: r.store, Log: r.log}

	// intake: the updates manager; work: services. Both end on stop, the
	// manager first so no new events arrive while services drain.
	intakeCtx, stopIntake := context.WithCancel(cctx)
	defer stopIntake()
	workCtx, stopWork := context.WithCancel(cctx)
	defer stopWork()

	g, gctx := errgroup.WithContext(cctx)
	ready := make(chan struct{})
	g.Go(func() error {
		err := mgr.Run(intakeCtx, client.API(), self.ID, updates.AuthOptions{
			OnStart: func(context.Context) {
				r.intake.SetManaged(true)
				close(ready)
			},
		})
		r.intake.SetManaged(false)
		if intakeCtx.Err() != nil {
			return nil
		}
		return fmt.Errorf("updates: %w", Explain(err))
	})
	for _, svc := range r.opts.Services {
		g.Go(func() error {
			select {
			case <-ready:
			case <-gctx.Done():
				return nil
			}
			if err := svc.Run(workCtx, sess); err != nil && workCtx.Err() == nil {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		select {
		case <-ready:
		case <-gctx.Done():
			return nil
		}
		r.mu.Lock()
		r.live = sess
		r.mu.Unlock()
		r.log.Info("Ready", zap.Int64("self_id", self.ID))
		if r.opts.OnReady != nil {
			r.opts.OnReady(sess)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-stop.Done():
			r.log.Info("Stopping: finishing in-flight work")
			stopIntake()
			stopWork()
			// Services drain their in-flight actions over the still-open
			// client; past the timeout the client goes down under them.
			time.AfterFunc(r.opts.ShutdownTimeout, cancelClient)
			return errStopped
		case err := <-fatal:
			return err
		case <-gctx.Done():
			return nil
		}
	})
	err = g.Wait()
	r.mu.Lock()
	r.live = nil
	r.mu.Unlock()
	return err
}
