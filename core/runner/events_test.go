package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Every event kind of the model reaches the journal from real pushes.
func TestRunnerJournalsEveryEventKind(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bob, err := e.sb.CreateUser(ctx, sandbox.UserSpec{Phone: "9996623333", FirstName: "Bob", Username: "bob"})
	require.NoError(t, err)
	group, err := e.sb.CreateGroup(ctx, e.alice.ID, "Friends", e.owner.ID)
	require.NoError(t, err)
	channel, err := e.sb.CreateChannel(ctx, e.alice.ID, sandbox.ChannelSpec{Title: "Talk", Megagroup: true})
	require.NoError(t, err)
	require.NoError(t, e.sb.As(e.owner.ID).Join(ctx, sandbox.ChannelPeer(channel)))

	sessions := make(chan *runner.Session, 1)
	e.run(t, runner.Options{Services: []runner.Service{runner.ServiceFunc(func(ctx context.Context, s *runner.Session) error {
		sessions <- s
		<-ctx.Done()
		return nil
	})}})
	sess := <-sessions
	c, err := sess.Store.Journal().Consumer(ctx, "kinds", store.ConsumerOptions{FromEnd: true})
	require.NoError(t, err)

	alice := e.sb.As(e.alice.ID)
	toOwner := sandbox.UserPeer(e.owner.ID)
	id, err := alice.SendText(ctx, toOwner, "first")
	require.NoError(t, err)
	require.NoError(t, alice.Edit(ctx, toOwner, id, "first, edited"))
	require.NoError(t, alice.React(ctx, toOwner, id, "👍"))
	require.NoError(t, alice.Typing(ctx, toOwner))
	require.NoError(t, alice.SetOnline(ctx, true))
	require.NoError(t, alice.Delete(ctx, toOwner, true, id))
	// The owner's messages being read by Alice: an outbox read.
	require.NoError(t, e.sb.As(e.owner.ID).AddContact(ctx, e.alice.ID))
	_, err = alice.SendText(ctx, sandbox.ChannelPeer(channel), "in the supergroup")
	require.NoError(t, err)
	require.NoError(t, e.sb.As(bob.ID).Join(ctx, sandbox.ChannelPeer(channel)))
	require.NoError(t, e.sb.As(bob.ID).Leave(ctx, sandbox.ChannelPeer(channel)))
	_, err = alice.SendText(ctx, sandbox.ChatPeer(group), "in the group")
	require.NoError(t, err)

	want := map[pb.EventKind]bool{
		pb.EventKind_EVENT_KIND_NEW_MESSAGE:      true,
		pb.EventKind_EVENT_KIND_EDITED_MESSAGE:   true,
		pb.EventKind_EVENT_KIND_DELETED_MESSAGES: true,
		pb.EventKind_EVENT_KIND_CHAT_ACTION:      true,
		pb.EventKind_EVENT_KIND_REACTION:         true,
		pb.EventKind_EVENT_KIND_TYPING:           true,
		pb.EventKind_EVENT_KIND_USER_STATUS:      true,
	}
	seen := map[pb.EventKind]*pb.Event{}
	defer func() {
		if t.Failed() {
			for k := range want {
				if seen[k] == nil {
					t.Logf("never journaled: %v", k)
				}
			}
		}
	}()
	readEvents(t, c, func(evs []*pb.Event) bool {
		for _, ev := range evs {
			if _, ok := seen[ev.Kind]; !ok {
				seen[ev.Kind] = ev
			}
		}
		for k := range want {
			if seen[k] == nil {
				return false
			}
		}
		return true
	})
	require.Equal(t, "first, edited", seen[pb.EventKind_EVENT_KIND_EDITED_MESSAGE].GetEditedMessage().GetText())
	require.Equal(t, "👍", seen[pb.EventKind_EVENT_KIND_REACTION].GetReaction().GetReactions()[0].GetReaction())
	require.Equal(t, "typing", seen[pb.EventKind_EVENT_KIND_TYPING].GetTyping().GetAction())
	require.True(t, seen[pb.EventKind_EVENT_KIND_USER_STATUS].GetUserStatus().GetOnline())
	require.Contains(t, seen[pb.EventKind_EVENT_KIND_DELETED_MESSAGES].GetDeletedMessages().GetMessageIds(), int64(id))
	act := seen[pb.EventKind_EVENT_KIND_CHAT_ACTION].GetChatAction()
	require.Equal(t, pb.ChatActionKind_CHAT_ACTION_KIND_JOINED, act.GetAction())
	require.Equal(t, bob.ID, act.GetActor().GetId())
}

// The owner reading on another device is a read event; the other side
// reading the owner's messages is an outbox read.
func TestRunnerJournalsReads(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sessions := make(chan *runner.Session, 1)
	e.run(t, runner.Options{Services: []runner.Service{runner.ServiceFunc(func(ctx context.Context, s *runner.Session) error {
		sessions <- s
		<-ctx.Done()
		return nil
	})}})
	sess := <-sessions
	c, err := sess.Store.Journal().Consumer(ctx, "reads", store.ConsumerOptions{FromEnd: true})
	require.NoError(t, err)
	id, err := e.sb.As(e.owner.ID).SendText(ctx, sandbox.UserPeer(e.alice.ID), "did you read this?")
	require.NoError(t, err)
	require.NoError(t, e.sb.As(e.alice.ID).ReadHistory(ctx, sandbox.UserPeer(e.owner.ID), 0))
	evs := readEvents(t, c, func(evs []*pb.Event) bool {
		for _, ev := range evs {
			if ev.Kind == pb.EventKind_EVENT_KIND_READ {
				return true
			}
		}
		return false
	})
	var read *pb.ReadHistory
	for _, ev := range evs {
		if r := ev.GetRead(); r != nil {
			read = r
		}
	}
	require.True(t, read.GetOutbox())
	require.GreaterOrEqual(t, read.GetMaxId(), int64(id))
	require.Equal(t, e.alice.ID, read.GetChat().GetPeer().GetId())
}
