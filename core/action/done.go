package action

import (
	"context"
	"errors"

	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// ErrDoneEarlier marks an answer such as MESSAGE_NOT_MODIFIED that a
// repeated call got only because an earlier attempt, whose answer was
// lost, had already done the work. The transport's retry wraps the answer
// with it; the executor then reports the action as done.
var ErrDoneEarlier = errors.New("already done by an earlier attempt whose answer was lost")

// doneAnswers lists, per method, the error Telegram gives when the call
// repeats one that went through.
var doneAnswers = map[uint32]string{
	tg.MessagesEditMessageRequestTypeID:      "MESSAGE_NOT_MODIFIED",
	tg.ChannelsJoinChannelRequestTypeID:      "USER_ALREADY_PARTICIPANT",
	tg.MessagesImportChatInviteRequestTypeID: "USER_ALREADY_PARTICIPANT",
	tg.ChannelsLeaveChannelRequestTypeID:     "USER_NOT_PARTICIPANT",
	tg.MessagesDeleteChatUserRequestTypeID:   "USER_NOT_PARTICIPANT",
}

// DoneAnswer reports whether err is what a repeat of the method with type
// id method gets when the first call was carried out. Callers must only
// ask after an earlier attempt may have been carried out.
func DoneAnswer(method uint32, err error) bool {
	want, ok := doneAnswers[method]
	return ok && tgerr.Is(err, want)
}

// knownChat describes a chat the account is in after an earlier join
// attempt went through, or names just its peer if Telegram will not say.
func (x *Executor) knownChat(ctx context.Context, ref *pb.Peer) *pb.Chat {
	if res, err := x.getChat(ctx, &pb.GetChat{Chat: ref}); err == nil && res.GetChat() != nil {
		return res.GetChat()
	}
	return &pb.Chat{Peer: ref}
}

// invitedChat asks which chat an invite link leads to, once an earlier
// attempt to join by it went through; nil if Telegram will not say.
func (x *Executor) invitedChat(ctx context.Context, hash string) *pb.Chat {
	inv, err := x.api.MessagesCheckChatInvite(ctx, hash)
	if err != nil {
		return nil
	}
	already, isIn := inv.(*tg.ChatInviteAlready)
	if !isIn {
		return nil
	}
	chats := []tg.ChatClass{already.Chat}
	x.remember(ctx, nil, chats)
	switch c := already.Chat.(type) {
	case *tg.Chat:
		return x.chatOfPeer(&tg.PeerChat{ChatID: c.ID}, nil, chats)
	case *tg.Channel:
		return x.chatOfPeer(&tg.PeerChannel{ChannelID: c.ID}, nil, chats)
	}
	return nil
}
