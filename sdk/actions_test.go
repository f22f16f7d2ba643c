package sdk_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

// TestContextActions checks that each Context method sends the action the
// contract defines, and decodes the runner's answer.
func TestContextActions(t *testing.T) {
	group := sdk.ChatPeer(3001)
	cases := []struct {
		name string
		run  func(c *sdk.Context) error
		want *pluginv1.Action
	}{
		{"send", func(c *sdk.Context) error {
			m, err := c.Send(group, "*hi*", sdk.Markdown(), sdk.Silent(), sdk.NoWebpage())
			if err == nil && m.GetText() != "*hi*" {
				err = fmt.Errorf("sent message came back as %v", m)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_Send{Send: &pluginv1.SendMessage{
			Chat: group, Text: "*hi*", ParseMode: pluginv1.ParseMode_PARSE_MODE_MARKDOWN, Silent: true, NoWebpage: true}}}},
		{"edit", func(c *sdk.Context) error {
			_, err := c.Edit(c.ChatPeer(), c.Message().GetId(), "<b>x</b>", sdk.HTML())
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_Edit{Edit: &pluginv1.EditMessage{
			Chat: group, MessageId: 101, Text: "<b>x</b>", ParseMode: pluginv1.ParseMode_PARSE_MODE_HTML}}}},
		{"delete", func(c *sdk.Context) error { return c.Delete(group, true, 101) },
			&pluginv1.Action{Kind: &pluginv1.Action_Delete{Delete: &pluginv1.DeleteMessages{Chat: group, MessageIds: []int64{101}, Revoke: true}}}},
		{"forward", func(c *sdk.Context) error {
			ms, err := c.Forward(group, []int64{101}, sdk.UserPeer(1000))
			if err == nil && (len(ms) != 1 || ms[0].GetForward() == nil) {
				err = fmt.Errorf("forwarded %v", ms)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_Forward{Forward: &pluginv1.ForwardMessages{FromChat: group, MessageIds: []int64{101}, ToChat: sdk.UserPeer(1000)}}}},
		{"copy", func(c *sdk.Context) error {
			_, err := c.Copy(group, []int64{101}, sdk.UserPeer(1000), sdk.Silent())
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_Forward{Forward: &pluginv1.ForwardMessages{FromChat: group, MessageIds: []int64{101}, ToChat: sdk.UserPeer(1000), DropAuthor: true, Silent: true}}}},
		{"react", func(c *sdk.Context) error { return c.React(group, 101, "👍") },
			&pluginv1.Action{Kind: &pluginv1.Action_React{React: &pluginv1.SendReaction{Chat: group, MessageId: 101, Reaction: "👍"}}}},
		{"mark read", func(c *sdk.Context) error { return c.MarkRead(group, 0) },
			&pluginv1.Action{Kind: &pluginv1.Action_MarkRead{MarkRead: &pluginv1.MarkRead{Chat: group}}}},
		{"typing", func(c *sdk.Context) error { return c.Typing(group, "typing") },
			&pluginv1.Action{Kind: &pluginv1.Action_Typing{Typing: &pluginv1.SetTyping{Chat: group, Action: "typing"}}}},
		{"history", func(c *sdk.Context) error {
			ms, err := c.History(group, 10, 0)
			if err == nil && (len(ms) != 1 || ms[0].GetText() != "x") {
				err = fmt.Errorf("history %v", ms)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_History{History: &pluginv1.GetHistory{Chat: group, Limit: 10}}}},
		{"get messages", func(c *sdk.Context) error {
			ms, err := c.GetMessages(group, 101, 999)
			if err == nil && len(ms) != 1 {
				err = fmt.Errorf("got %v", ms)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_GetMessages{GetMessages: &pluginv1.GetMessages{Chat: group, MessageIds: []int64{101, 999}}}}},
		{"resolve username", func(c *sdk.Context) error {
			ch, err := c.Resolve("@TestSuper")
			if err == nil && sdk.PeerString(ch.GetPeer()) != "channel:4001" {
				err = fmt.Errorf("resolved to %v", ch)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_Resolve{Resolve: &pluginv1.Resolve{Query: &pluginv1.Resolve_Username{Username: "TestSuper"}}}}},
		{"resolve link", func(c *sdk.Context) error { _, err := c.Resolve("https://t.me/testsuper"); return err },
			&pluginv1.Action{Kind: &pluginv1.Action_Resolve{Resolve: &pluginv1.Resolve{Query: &pluginv1.Resolve_Link{Link: "https://t.me/testsuper"}}}}},
		{"get chat", func(c *sdk.Context) error {
			ch, err := c.GetChat(group)
			if err == nil && ch.GetTitle() != "Test group" {
				err = fmt.Errorf("chat %v", ch)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_GetChat{GetChat: &pluginv1.GetChat{Chat: group}}}},
		{"send media", func(c *sdk.Context) error {
			m, err := c.SendMedia(group, sdk.Upload{Data: []byte("png"), FileName: "a.png", MimeType: "image/png", AsPhoto: true, Caption: "look"})
			if err == nil && m.GetMedia().GetKind() != pluginv1.MediaKind_MEDIA_KIND_PHOTO {
				err = fmt.Errorf("sent %v", m)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_SendMedia{SendMedia: &pluginv1.SendMedia{
			Chat: group, Data: []byte("png"), FileName: "a.png", MimeType: "image/png", AsPhoto: true, Caption: "look"}}}},
		{"download", func(c *sdk.Context) error {
			_, err := c.Download(group, 101, 1<<20)
			if !errors.Is(err, sdk.ErrNotFound) {
				return fmt.Errorf("download without a fake file: %v, want not found", err)
			}
			return nil
		}, &pluginv1.Action{Kind: &pluginv1.Action_Download{Download: &pluginv1.Download{Chat: group, MessageId: 101, MaxBytes: 1 << 20}}}},
		{"join", func(c *sdk.Context) error { return c.Join(sdk.ChannelPeer(4001)) },
			&pluginv1.Action{Kind: &pluginv1.Action_Join{Join: &pluginv1.JoinChat{Target: &pluginv1.JoinChat_Chat{Chat: sdk.ChannelPeer(4001)}}}}},
		{"join invite", func(c *sdk.Context) error { return c.JoinInvite("https://t.me/+abc") },
			&pluginv1.Action{Kind: &pluginv1.Action_Join{Join: &pluginv1.JoinChat{Target: &pluginv1.JoinChat_InviteLink{InviteLink: "https://t.me/+abc"}}}}},
		{"leave", func(c *sdk.Context) error { return c.Leave(group) },
			&pluginv1.Action{Kind: &pluginv1.Action_Leave{Leave: &pluginv1.LeaveChat{Chat: group}}}},
		{"runner status", func(c *sdk.Context) error {
			st, err := c.RunnerStatus()
			if err == nil && (len(st.GetPlugins()) != 1 || st.GetPlugins()[0].GetName() != "actions") {
				err = fmt.Errorf("status %v", st)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_RunnerStatus{RunnerStatus: &pluginv1.GetRunnerStatus{}}}},
		{"pause", func(c *sdk.Context) error { return c.PauseRunner("maintenance") },
			&pluginv1.Action{Kind: &pluginv1.Action_Pause{Pause: &pluginv1.PauseRunner{Reason: "maintenance"}}}},
		{"resume", func(c *sdk.Context) error { return c.ResumeRunner() },
			&pluginv1.Action{Kind: &pluginv1.Action_Resume{Resume: &pluginv1.ResumeRunner{}}}},
		{"list plugins", func(c *sdk.Context) error {
			ps, err := c.ListPlugins()
			if err == nil && (len(ps) != 1 || ps[0].GetName() != "actions") {
				err = fmt.Errorf("plugins %v", ps)
			}
			return err
		}, &pluginv1.Action{Kind: &pluginv1.Action_ListPlugins{ListPlugins: &pluginv1.ListPlugins{}}}},
		{"raw invoke", func(c *sdk.Context) error {
			_, err := c.RawInvoke([]byte{1, 2, 3})
			if !errors.Is(err, sdk.ErrForbidden) {
				return fmt.Errorf("raw invoke: %v, want forbidden", err)
			}
			return nil
		}, &pluginv1.Action{Kind: &pluginv1.Action_RawInvoke{RawInvoke: &pluginv1.RawInvoke{RequestTl: []byte{1, 2, 3}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := sdk.New("actions", "0")
			p.Handle(sdk.Any, tc.run)
			h := sdktest.New(t, p, sdktest.Quiet())
			h.AddChat(sdktest.SupergroupChat())
			out := h.Handle(sdktest.GroupText("x", sdktest.WithID(101)))
			if out.Err != "" {
				t.Fatalf("handler failed: %s", out.Err)
			}
			if len(out.Calls) != 1 {
				t.Fatalf("calls = %v, want one", out.Calls)
			}
			if got := out.Calls[0].Action; !proto.Equal(got, tc.want) {
				t.Fatalf("action\n got: %v\nwant: %v", got, tc.want)
			}
			if out.Calls[0].CauseSeq != out.Seq {
				t.Fatalf("cause_seq %d, want the event's seq %d", out.Calls[0].CauseSeq, out.Seq)
			}
		})
	}
}

func TestTypedErrors(t *testing.T) {
	cases := []struct {
		inject error
		check  func(err error) bool
	}{
		{&sdk.FloodWaitError{Seconds: 30}, func(err error) bool {
			var fw *sdk.FloodWaitError
			return errors.As(err, &fw) && fw.Seconds == 30 && errors.Is(err, sdk.ErrFloodWait)
		}},
		{&sdk.ThrottledError{Seconds: 2, Message: "10 sends a minute"}, func(err error) bool {
			var th *sdk.ThrottledError
			return errors.As(err, &th) && th.Seconds == 2 && errors.Is(err, sdk.ErrThrottled)
		}},
		{sdk.ErrForbidden, func(err error) bool { return errors.Is(err, sdk.ErrForbidden) && !errors.Is(err, sdk.ErrNotFound) }},
		{sdk.ErrNotFound, func(err error) bool { return errors.Is(err, sdk.ErrNotFound) }},
		{fmt.Errorf("bad chat: %w", sdk.ErrInvalidArgument), func(err error) bool {
			var ae *sdk.ActionError
			return errors.Is(err, sdk.ErrInvalidArgument) && errors.As(err, &ae) && ae.Message == "bad chat: invalid argument"
		}},
		{sdk.ErrUnavailable, func(err error) bool { return errors.Is(err, sdk.ErrUnavailable) }},
		{errors.New("whatever"), func(err error) bool { return errors.Is(err, sdk.ErrInternal) }},
	}
	for _, tc := range cases {
		t.Run(tc.inject.Error(), func(t *testing.T) {
			p := sdk.New("errs", "0")
			var got error
			p.Command("ping", func(c *sdk.Context) error {
				_, got = c.Reply("pong")
				return nil
			})
			h := sdktest.New(t, p, sdktest.Quiet())
			h.FailNext("send", tc.inject)
			h.Handle(sdktest.PrivateText(".ping"))
			if !tc.check(got) {
				t.Fatalf("the handler got %T %v", got, got)
			}
			// One-shot: the next send succeeds.
			h.Handle(sdktest.PrivateText(".ping"))
			if got != nil {
				t.Fatalf("second send failed too: %v", got)
			}
		})
	}
}

func TestKV(t *testing.T) {
	p := sdk.New("counter", "0")
	p.Command("count", func(c *sdk.Context) error {
		kv := c.KV()
		v, found, err := kv.Get("n")
		if err != nil {
			return err
		}
		n := 0
		if found {
			n = int(v[0])
		}
		if err := kv.Set("n", []byte{byte(n + 1)}); err != nil {
			return err
		}
		if err := kv.Set("seen/"+fmt.Sprint(c.Seq()), nil); err != nil {
			return err
		}
		keys, err := kv.List("seen/")
		if err != nil {
			return err
		}
		if n == 2 {
			if err := kv.Delete("seen/1"); err != nil {
				return err
			}
		}
		_, err = c.Reply(fmt.Sprintf("%d %d", n+1, len(keys)))
		return err
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	h.SetKV("n", []byte{10})
	var replies []string
	for range 3 {
		out := h.Handle(sdktest.SavedText(".count"))
		replies = append(replies, out.Calls[len(out.Calls)-1].Text())
	}
	if !slices.Equal(replies, []string{"11 1", "12 2", "13 3"}) {
		t.Fatalf("replies %q", replies)
	}
	kv := h.KV()
	if kv["n"][0] != 13 || len(kv) != 4 {
		t.Fatalf("store %v", kv)
	}
}

func TestReplyWithoutMessageIsAnError(t *testing.T) {
	p := sdk.New("r", "0")
	var got error
	p.Handle(sdk.Any, func(c *sdk.Context) error { _, got = c.Reply("x"); return nil })
	h := sdktest.New(t, p, sdktest.Quiet())
	h.Handle(sdktest.Joined(sdktest.GroupChat(), sdktest.Bob()))
	if !errors.Is(got, sdk.ErrInvalidArgument) {
		t.Fatalf("Reply to a join: %v", got)
	}
	if n := len(h.Calls("")); n != 0 {
		t.Fatalf("%d actions reached the runner", n)
	}
}

// TestActionLabel checks that a label set on the Context, or on a context
// derived from it, rides on every action called with it, and on nothing
// else.
func TestActionLabel(t *testing.T) {
	group := sdk.ChatPeer(3001)
	p := sdk.New("labels", "0")
	p.Handle(sdk.Any, func(c *sdk.Context) error {
		if _, err := c.Send(group, "plain"); err != nil {
			return err
		}
		greet := c.WithLabel("greet")
		if greet.Label() != "greet" || c.Label() != "" {
			return fmt.Errorf("labels: copy %q, original %q", greet.Label(), c.Label())
		}
		if _, err := greet.Send(group, "labelled"); err != nil {
			return err
		}
		if err := greet.React(group, 101, "👍"); err != nil {
			return err
		}
		// A context derived from the labelled one keeps the label; an
		// explicit "" takes it off again.
		if greet.WithLabel("").Label() != "" {
			return errors.New("WithLabel(\"\") kept the label")
		}
		if got := sdk.LabelOf(sdk.WithLabel(greet, "inner")); got != "inner" {
			return fmt.Errorf("nested label %q", got)
		}
		_, err := c.Send(group, "plain again")
		return err
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	h.AddChat(sdktest.SupergroupChat())
	out := h.Handle(sdktest.GroupText("x", sdktest.WithID(101)))
	if out.Err != "" {
		t.Fatalf("handler failed: %s", out.Err)
	}
	var got []string
	for _, c := range out.Calls {
		got = append(got, c.Name+"/"+c.Label)
	}
	want := []string{"send/", "send/greet", "react/greet", "send/"}
	if !slices.Equal(got, want) {
		t.Fatalf("calls and labels = %v, want %v", got, want)
	}
}
