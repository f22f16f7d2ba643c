package sdk_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

type greeterConfig struct {
	Greeting string            `json:"greeting"`
	Chats    []int64           `json:"chats"`
	Limits   limits            `json:"limits"`
	Aliases  map[string]string `json:"aliases"`
	Rules    []rule            `json:"rules"`
}

type limits struct {
	PerMinute int `json:"per_minute"`
}

type rule struct {
	Match string `json:"match"`
}

func (c greeterConfig) Validate() error {
	if c.Limits.PerMinute < 0 {
		return &sdk.ConfigError{Field: "limits.per_minute", Reason: "must not be negative"}
	}
	return nil
}

func newGreeter() (*sdk.Plugin, *sdk.Config[greeterConfig]) {
	p := sdk.New("greeter", "0")
	cfg := sdk.NewConfig(p, greeterConfig{Greeting: "hello", Limits: limits{PerMinute: 5}, Aliases: map[string]string{"hi": "hello"}})
	p.Command("greet", func(c *sdk.Context) error {
		_, err := c.Reply(cfg.Get().Greeting)
		return err
	})
	return p, cfg
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	p, cfg := newGreeter()
	h := sdktest.New(t, p, sdktest.Quiet(), sdktest.WithConfig(`{"chats":[1,2],"aliases":{"yo":"hey"}}`))
	got := cfg.Get()
	if got.Greeting != "hello" || got.Limits.PerMinute != 5 || len(got.Chats) != 2 {
		t.Fatalf("config %+v", got)
	}
	if len(got.Aliases) != 2 {
		t.Fatalf("aliases %v: the config's map should merge into the defaults' copy", got.Aliases)
	}
	if out := h.Handle(sdktest.PrivateText(".greet")); out.Calls[0].Text() != "hello" {
		t.Fatalf("reply %q", out.Calls[0].Text())
	}
	// A reload takes effect for the next event, and never touches the
	// defaults of the previous decode.
	if err := h.Reconfigure(`{"greeting":"hi there"}`); err != nil {
		t.Fatal(err)
	}
	if out := h.Handle(sdktest.PrivateText(".greet")); out.Calls[0].Text() != "hi there" {
		t.Fatalf("reply after reload %q", out.Calls[0].Text())
	}
	if a := cfg.Get().Aliases; len(a) != 1 {
		t.Fatalf("aliases after reload %v: defaults were mutated", a)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		config string
		want   string
	}{
		{`{"greting":"x"}`, `config: greting: unknown key`},
		{`{"limits":{"per_minute":1,"burst":3}}`, `config: limits.burst: unknown key`},
		{`{"rules":[{"match":"a"},{"match":"b","mtach":"c"}]}`, `config: rules[1].mtach: unknown key`},
		{`{"limits":{"per_minute":"five"}}`, `config: limits.per_minute: got a JSON string, want an integer`},
		{`{"chats":"all"}`, `config: chats: got a JSON string, want a list`},
		{`{"limits":{"per_minute":-1}}`, `config: limits.per_minute: must not be negative`},
		{`{"greeting":`, `config: invalid JSON`},
		{`[1]`, `config: got a JSON array, want an object`},
	}
	for _, tc := range cases {
		t.Run(tc.config, func(t *testing.T) {
			p, _ := newGreeter()
			_, err := sdktest.Start(t, p, sdktest.Quiet(), sdktest.WithConfig(tc.config))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Configure: %v, want INVALID_ARGUMENT", err)
			}
			if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, tc.want) {
				t.Fatalf("message %q, want it to start with %q", msg, tc.want)
			}
		})
	}
}

func TestRefusedReloadKeepsTheOldConfig(t *testing.T) {
	p, cfg := newGreeter()
	var hookSaw []string
	p.OnConfigure(func(s sdk.Settings) error {
		hookSaw = append(hookSaw, s.Instance+" "+s.CommandPrefix)
		if strings.Contains(string(s.ConfigJSON), "forbidden") {
			return errors.New("greeting must not say forbidden")
		}
		return nil
	})
	h := sdktest.New(t, p, sdktest.Quiet(), sdktest.WithConfig(`{"greeting":"a"}`), sdktest.WithInstance("greeter-1"))
	err := h.Reconfigure(`{"greeting":"forbidden"}`)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "must not say forbidden") {
		t.Fatalf("reload: %v", err)
	}
	if g := cfg.Get().Greeting; g != "a" {
		t.Fatalf("greeting %q after a refused reload", g)
	}
	if s := p.Settings(); string(s.ConfigJSON) != `{"greeting":"a"}` || s.Instance != "greeter-1" {
		t.Fatalf("settings after a refused reload: %+v", s)
	}
	if len(hookSaw) != 2 || hookSaw[0] != "greeter-1 ." {
		t.Fatalf("hook saw %q", hookSaw)
	}
}

func TestDecodeConfig(t *testing.T) {
	p := sdk.New("raw", "0")
	var decoded struct {
		Words []string `json:"words"`
	}
	var decodeErr error
	p.OnConfigure(func(sdk.Settings) error {
		decodeErr = p.DecodeConfig(&decoded)
		return decodeErr
	})
	sdktest.New(t, p, sdktest.Quiet(), sdktest.WithConfig(map[string]any{"words": []string{"a", "b"}}))
	if decodeErr != nil || len(decoded.Words) != 2 {
		t.Fatalf("decoded %+v, %v", decoded, decodeErr)
	}
	_, err := sdktest.Start(t, sdk.New("raw2", "0"), sdktest.Quiet(), sdktest.WithConfig(`{"x":1}`))
	if err != nil {
		t.Fatalf("a plugin without typed config must accept any section: %v", err)
	}
}
