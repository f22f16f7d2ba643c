package sdk_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func nop(*sdk.Context) error { return nil }

const (
	newMsg  = pluginv1.EventKind_EVENT_KIND_NEW_MESSAGE
	editMsg = pluginv1.EventKind_EVENT_KIND_EDITED_MESSAGE
)

func TestSubscriptionFromHandlers(t *testing.T) {
	cases := []struct {
		name     string
		register func(p *sdk.Plugin)
		want     *pluginv1.Subscription
	}{
		{"nothing registered receives nothing", func(p *sdk.Plugin) {},
			&pluginv1.Subscription{Events: []pluginv1.EventKind{pluginv1.EventKind_EVENT_KIND_UNSPECIFIED}}},
		{"commands become text prefixes", func(p *sdk.Plugin) {
			p.Command("ping", nop)
			p.Command("pong", nop)
		}, &pluginv1.Subscription{Events: []pluginv1.EventKind{newMsg}, TextPrefixes: []string{".ping", ".pong"}}},
		{"a catch-all handler opens everything", func(p *sdk.Plugin) {
			p.Command("ping", nop)
			p.Handle(sdk.Any, nop)
		}, &pluginv1.Subscription{}},
		{"chat types and direction", func(p *sdk.Plugin) {
			p.Handle(sdk.And(sdk.Private, sdk.Incoming), nop)
		}, &pluginv1.Subscription{
			Events:    []pluginv1.EventKind{newMsg, editMsg},
			ChatTypes: []pluginv1.ChatType{pluginv1.ChatType_CHAT_TYPE_PRIVATE},
			Direction: pluginv1.Direction_DIRECTION_INCOMING,
		}},
		{"or unions chat types, mixed directions become any", func(p *sdk.Plugin) {
			p.Handle(sdk.And(sdk.Private, sdk.Incoming), nop)
			p.Handle(sdk.And(sdk.Group, sdk.Outgoing, sdk.Command("x")), nop)
		}, &pluginv1.Subscription{
			Events:    []pluginv1.EventKind{newMsg, editMsg},
			ChatTypes: []pluginv1.ChatType{pluginv1.ChatType_CHAT_TYPE_PRIVATE, pluginv1.ChatType_CHAT_TYPE_GROUP},
		}},
		{"a reaction handler drops the prefixes (the runner applies them to every event)", func(p *sdk.Plugin) {
			p.Command("ping", nop)
			p.Handle(sdk.Kinds(pluginv1.EventKind_EVENT_KIND_REACTION), nop)
		}, &pluginv1.Subscription{
			Events: []pluginv1.EventKind{newMsg, pluginv1.EventKind_EVENT_KIND_REACTION},
		}},
		{"prefixes with nothing in common match nothing", func(p *sdk.Plugin) {
			p.Handle(sdk.And(sdk.TextPrefix("!a"), sdk.TextPrefix("?b")), nop)
		}, &pluginv1.Subscription{Events: []pluginv1.EventKind{pluginv1.EventKind_EVENT_KIND_UNSPECIFIED}}},
		{"a command in one chat", func(p *sdk.Plugin) {
			p.Command("ping", nop).Where(sdk.Chats(sdk.ChannelPeer(77)))
		}, &pluginv1.Subscription{Events: []pluginv1.EventKind{newMsg}, TextPrefixes: []string{".ping"}, Chats: []string{"channel:77"}}},
		{"and of prefixes keeps the longer", func(p *sdk.Plugin) {
			p.Handle(sdk.And(sdk.TextPrefix("!"), sdk.TextPrefix("!ban")), nop)
		}, &pluginv1.Subscription{Events: []pluginv1.EventKind{newMsg, editMsg}, TextPrefixes: []string{"!ban"}}},
		{"contradictions receive nothing", func(p *sdk.Plugin) {
			p.Handle(sdk.And(sdk.Incoming, sdk.Outgoing), nop)
			p.Handle(sdk.And(sdk.Private, sdk.Group), nop)
		}, &pluginv1.Subscription{Events: []pluginv1.EventKind{pluginv1.EventKind_EVENT_KIND_UNSPECIFIED}}},
		{"not and func stay open", func(p *sdk.Plugin) {
			p.Handle(sdk.Not(sdk.Private), nop)
		}, &pluginv1.Subscription{}},
		{"edits only", func(p *sdk.Plugin) {
			p.Handle(sdk.And(sdk.Edited, sdk.Media(pluginv1.MediaKind_MEDIA_KIND_PHOTO)), nop)
		}, &pluginv1.Subscription{Events: []pluginv1.EventKind{editMsg}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := sdk.New("sub", "0")
			tc.register(p)
			sdktest.New(t, p, sdktest.Quiet()) // configures the prefix
			got := p.Info().GetSubscription()
			if !proto.Equal(got, tc.want) {
				t.Fatalf("subscription\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(tc.want))
			}
		})
	}
}

func TestInfoListsCommandsAndPermissions(t *testing.T) {
	p := sdk.New("notes", "1.2.3",
		sdk.WithDescription("Keeps notes"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send", "edit"}, Chats: []string{"self"}}),
		sdk.WithRawTL(),
	)
	p.Command("note", nop).Describe("Saves a note").Usage("<name> <text>")
	p.Command("notes", nop).Describe("Lists notes")
	h := sdktest.New(t, p, sdktest.Quiet(), sdktest.WithPrefix("!"))
	want := &pluginv1.PluginInfo{
		Name: "notes", Version: "1.2.3", Description: "Keeps notes", Sdk: "go/" + sdk.Version,
		Permissions: &pluginv1.Permissions{Actions: []string{"send", "edit"}, Chats: []string{"self"}},
		Commands: []*pluginv1.Command{
			{Name: "note", Description: "Saves a note", Usage: "<name> <text>"},
			{Name: "notes", Description: "Lists notes"},
		},
		// Before Configure the prefix is unknown: every new message.
		Subscription: &pluginv1.Subscription{Events: []pluginv1.EventKind{newMsg}, RawTl: true},
	}
	if got := h.Info(); !proto.Equal(got, want) {
		t.Fatalf("info over the wire\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
	// Asked again after Configure, the commands narrow it.
	want.Subscription.TextPrefixes = []string{"!note", "!notes"}
	if got := p.Info(); !proto.Equal(got, want) {
		t.Fatalf("info after Configure\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
}
