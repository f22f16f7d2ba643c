package runner

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gotd/td/telegram"
	"github.com/gotd/td/tg"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/core/event"
	"github.com/tgrunner/tgrunner/core/peers"
	"github.com/tgrunner/tgrunner/core/store"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Intake is the updates manager's handler. It turns each batch of updates
// into events and appends them to the journal durably before returning,
// because the manager advances pts as soon as the handler returns, even on
// error. It never sends anything: sending from the handler can deadlock the
// manager.
type Intake struct {
	account string
	journal store.UpdatesJournal
	peers   *peers.Cache
	selfID  atomic.Int64
	// managed is set while the updates manager runs; see Gate.
	managed atomic.Bool
	log     *zap.Logger
	now     func() time.Time
	// onFail stops the runner: once the journal cannot take an update, any
	// further pts advance would lose it.
	onFail func(error)
	// Observe, when set, sees every appended entry (metrics, tests).
	Observe func(entries []store.Entry)
}

// NewIntake creates the handler; SetSelf must be called once the account is
// known, before the manager runs.
func NewIntake(account string, j store.UpdatesJournal, peers *peers.Cache, log *zap.Logger, onFail func(error)) *Intake {
	return &Intake{account: account, journal: j, peers: peers, log: log, now: time.Now, onFail: onFail}
}

// SetSelf sets the account's own user id.
func (in *Intake) SetSelf(id int64) { in.selfID.Store(id) }

// SetManaged opens (true) or closes the gate: call it from the manager's
// OnStart and when the manager stops.
func (in *Intake) SetManaged(on bool) { in.managed.Store(on) }

// Gate wraps the updates manager for the client and for RPC results. Until
// the manager runs, gotd's manager passes pushes straight to its handler,
// unordered and without gap checks. The gate drops them before they reach
// the manager; they come back, in order, from getDifference. Checking here
// rather than in Handle matters: a push that found the manager not started
// could otherwise reach Handle after OnStart and be journaled ahead of the
// startup difference, out of order.
func (in *Intake) Gate(mgr telegram.UpdateHandler) telegram.UpdateHandler {
	return telegram.UpdateHandlerFunc(func(ctx context.Context, u tg.UpdatesClass) error {
		if !in.managed.Load() {
			return nil
		}
		return mgr.Handle(ctx, u)
	})
}

// Handle implements telegram.UpdateHandler for the updates manager, which
// calls it in pts order once it runs (Gate keeps everything else out).
func (in *Intake) Handle(ctx context.Context, u tg.UpdatesClass) error {
	if err := in.journal.Failed(); err != nil {
		return err
	}
	updates, users, chats, date := event.UpdatesOf(u)
	if len(updates) == 0 {
		return nil
	}
	if err := in.peers.Remember(ctx, users, chats); err != nil {
		// Peers can be re-learned; a lost update cannot. Log and go on.
		in.log.Warn("Remember peers", zap.Error(err))
	}
	self := in.selfID.Load()
	ents := event.NewEntities(self, users, chats, in.peers)
	entries := make([]store.Entry, 0, len(updates))
	now := in.now()
	for _, up := range updates {
		c, ok := event.Convert(up, ents, date)
		if !ok {
			continue
		}
		c.Event.Account = in.account
		c.Event.RawTl = event.Raw(up)
		if c.Event.Date == 0 {
			c.Event.Date = now.Unix()
		}
		data, err := proto.Marshal(c.Event)
		if err != nil {
			return in.fail(fmt.Errorf("encode event: %w", err))
		}
		entries = append(entries, store.Entry{
			DedupKey: c.DedupKey,
			ChatKey:  c.ChatKey,
			Kind:     c.Event.Kind.String(),
			Data:     data,
			Time:     now,
		})
		in.noteFirstContact(ctx, c.Event)
	}
	if len(entries) == 0 {
		return nil
	}
	appended, err := in.journal.Append(ctx, entries)
	if err != nil {
		return in.fail(fmt.Errorf("journal %d updates: %w", len(entries), err))
	}
	if in.Observe != nil && len(appended) > 0 {
		in.Observe(appended)
	}
	return nil
}

func (in *Intake) fail(err error) error {
	in.journal.Fail(err)
	if in.onFail != nil {
		in.onFail(err)
	}
	return err
}

// noteFirstContact remembers who wrote to the account first, so the guard
// can tell a reply from a cold message.
func (in *Intake) noteFirstContact(ctx context.Context, ev *pb.Event) {
	m := ev.GetNewMessage()
	if m == nil || m.Outgoing || m.Chat.GetType() != pb.ChatType_CHAT_TYPE_PRIVATE || m.Sender == nil {
		return
	}
	if err := in.peers.MarkWroteFirst(ctx, m.Sender.Id); err != nil {
		in.log.Debug("Mark first contact", zap.Error(err))
	}
}

// DecodeEntry decodes a journal entry back into its event, with the journal
// sequence number filled in.
func DecodeEntry(e store.Entry) (*pb.Event, error) {
	ev := &pb.Event{}
	if err := proto.Unmarshal(e.Data, ev); err != nil {
		return nil, fmt.Errorf("decode journal entry %d: %w", e.Seq, err)
	}
	ev.Seq = e.Seq
	return ev, nil
}
