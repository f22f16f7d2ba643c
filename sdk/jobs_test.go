package sdk_test

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the cron tests need zones wherever they run

	"github.com/tgrunner/tgrunner/sdk"
	"github.com/tgrunner/tgrunner/sdk/sdktest"
)

func TestEveryRunsOnTheClock(t *testing.T) {
	p := sdk.New("ticker", "0")
	n := 0
	p.Every(10*time.Minute, func(c *sdk.Context) error {
		n++
		if n == 2 {
			panic("a job bug") // recovered; the job keeps its schedule
		}
		_, err := c.Send(sdk.UserPeer(1000), "tick")
		return err
	}).Named("ticker")
	h := sdktest.New(t, p, sdktest.Quiet())
	start := h.Clock().Now()

	h.Tick(9 * time.Minute)
	if len(h.Calls("send")) != 0 {
		t.Fatal("the job ran early")
	}
	h.Tick(time.Minute)
	sends := h.Calls("send")
	if len(sends) != 1 || sends[0].CauseSeq != 0 {
		t.Fatalf("sends after 10m: %v", sends)
	}
	h.Tick(10 * time.Minute) // the panicking run
	h.Tick(10 * time.Minute)
	if n != 3 || len(h.Calls("send")) != 2 {
		t.Fatalf("runs %d, sends %d", n, len(h.Calls("send")))
	}
	if next := p.Jobs()[0].Next(); !next.Equal(start.Add(40 * time.Minute)) {
		t.Fatalf("next run at %v, want %v", next, start.Add(40*time.Minute))
	}
}

func TestCronInTimeZones(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p := sdk.New("cron", "0")
	var ran []string
	p.Cron("0 9 * * *", func(c *sdk.Context) error { ran = append(ran, "berlin"); return nil }).In(berlin)
	p.Cron("CRON_TZ=America/New_York 30 8 * * 1-5", func(c *sdk.Context) error { ran = append(ran, "ny"); return nil })
	// The harness clock starts on Monday 2025-01-06 09:00 UTC (10:00 in
	// Berlin, 04:00 in New York).
	h := sdktest.New(t, p, sdktest.Quiet())
	jobs := p.Jobs()
	h.Tick(0)
	wantBerlin := time.Date(2025, 1, 7, 8, 0, 0, 0, time.UTC) // 09:00 CET
	wantNY := time.Date(2025, 1, 6, 13, 30, 0, 0, time.UTC)   // 08:30 EST
	if !jobs[0].Next().Equal(wantBerlin) || !jobs[1].Next().Equal(wantNY) {
		t.Fatalf("next runs %v and %v, want %v and %v", jobs[0].Next().UTC(), jobs[1].Next().UTC(), wantBerlin, wantNY)
	}
	h.Tick(4*time.Hour + 30*time.Minute)
	h.Tick(19 * time.Hour)
	if strings.Join(ran, ",") != "ny,berlin" {
		t.Fatalf("ran %v", ran)
	}
}

func TestBadCronSpec(t *testing.T) {
	p := sdk.New("cron", "0")
	if _, err := p.AddCron("61 * * * *", func(*sdk.Context) error { return nil }); err == nil || !strings.Contains(err.Error(), `"61 * * * *"`) {
		t.Fatalf("AddCron: %v", err)
	}
	if err := sdk.ParseCron("@daily"); err != nil {
		t.Fatal(err)
	}
}

func TestJobsStopOnShutdown(t *testing.T) {
	p := sdk.New("stopper", "0")
	runs := 0
	p.Every(time.Minute, func(c *sdk.Context) error { runs++; return nil })
	h := sdktest.New(t, p, sdktest.Quiet())
	h.Tick(time.Minute)
	if err := h.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if !p.Jobs()[0].Next().IsZero() {
		t.Fatal("the job is still armed after shutdown")
	}
	h.Clock().Advance(time.Hour)
	if runs != 1 {
		t.Fatalf("%d runs", runs)
	}
}

func TestJobAddedAndStoppedWhileRunning(t *testing.T) {
	p := sdk.New("dynamic", "0")
	type conf struct {
		Spec string `json:"spec"`
	}
	var job *sdk.Job
	runs := 0
	p.OnConfigure(func(s sdk.Settings) error {
		var c conf
		if err := p.DecodeConfig(&c); err != nil {
			return err
		}
		if c.Spec == "" {
			return nil
		}
		j, err := p.AddCron(c.Spec, func(*sdk.Context) error { runs++; return nil })
		if err != nil {
			return &sdk.ConfigError{Field: "spec", Reason: err.Error()}
		}
		if job != nil {
			job.Stop()
		}
		job = j.In(time.UTC)
		return nil
	})
	h := sdktest.New(t, p, sdktest.Quiet())
	if err := h.Reconfigure(`{"spec":"not a spec"}`); err == nil || !strings.Contains(err.Error(), "config: spec:") {
		t.Fatalf("bad spec: %v", err)
	}
	if err := h.Reconfigure(`{"spec":"@every 1h"}`); err != nil {
		t.Fatal(err)
	}
	h.Tick(time.Hour)
	if err := h.Reconfigure(`{"spec":"0 0 1 1 *"}`); err != nil {
		t.Fatal(err)
	}
	if len(p.Jobs()) != 1 {
		t.Fatalf("%d jobs after replacing one", len(p.Jobs()))
	}
	h.Tick(time.Hour)
	if runs != 1 {
		t.Fatalf("%d runs", runs)
	}
}
