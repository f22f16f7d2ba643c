package main

import (
	"testing"
	"time"

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func TestHi(t *testing.T) {
	h := sdktest.New(t, newPlugin(), sdktest.WithConfig(`{"greeting":"Hey"}`))

	out := h.Handle(sdktest.GroupCommand("hi", "Bob")) // ".hi Bob" from Alice in a group
	if out.Err != "" || out.Calls[len(out.Calls)-1].Text() != "Hey, Bob! (greeting #1)" {
		t.Fatalf("%+v", out)
	}

	// Inject the runner's answers: here a flood wait on the next send.
	h.FailNext("send", &sdk.FloodWaitError{Seconds: 30})
	if out := h.Handle(sdktest.PrivateText(".hi")); out.Err == "" {
		t.Fatal("the flood wait should fail the event")
	}

	// Jobs run on a fake clock, which starts on Monday 2025-01-06 09:00 UTC.
	h.Tick(23 * time.Hour) // 09:00 in Berlin the next day
	if len(h.Calls("send")) != 3 {
		t.Fatal("no good morning")
	}
}

func TestBadConfig(t *testing.T) {
	_, err := sdktest.Start(t, newPlugin(), sdktest.WithConfig(`{"greting":"x"}`))
	if err == nil { // INVALID_ARGUMENT: config: greting: unknown key
		t.Fatal("accepted a typo")
	}
}
