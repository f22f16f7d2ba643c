package sdk

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Clock is the time source of scheduled jobs. The default is the system
// clock; tests inject sdktest.Clock with Plugin.SetClock.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of time.Timer that jobs use.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time                 { return time.Now() }
func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

// Job is a scheduled job. Jobs run while the plugin has a session with the
// runner (they act through it), one run at a time: a run that overlaps the
// next tick delays it rather than running twice. A job's handler gets a
// Context without an event.
type Job struct {
	p  *Plugin
	fn HandlerFunc

	mu       sync.Mutex
	name     string
	interval time.Duration  // for Every
	spec     cron.Schedule  // for Cron
	loc      *time.Location // for Cron without CRON_TZ
	hasTZ    bool           // the spec named its own zone
	next     time.Time      // the next run, when armed
	stop     chan struct{}  // closes to stop the loop
	done     chan struct{}  // closed when the loop ended
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron checks a cron spec as Cron takes it: five fields (minute hour
// day-of-month month day-of-week), an optional leading seconds field,
// descriptors such as "@daily" or "@every 90s", and an optional
// "CRON_TZ=Area/City " prefix.
func ParseCron(spec string) error {
	_, err := cronParser.Parse(spec)
	if err != nil {
		return fmt.Errorf("cron spec %q: %w", spec, err)
	}
	return nil
}

// Every runs fn every d, the first time d after the session opens.
func (p *Plugin) Every(d time.Duration, fn HandlerFunc) *Job {
	if d <= 0 {
		panic(fmt.Sprintf("sdk: Every(%v): the interval must be positive", d))
	}
	return p.addJob(&Job{p: p, fn: fn, interval: d, name: "every " + d.String()})
}

// Cron runs fn on a cron schedule (see ParseCron), in the time zone of a
// CRON_TZ prefix, else of In, else the local one. It panics on an invalid
// spec; use AddCron for specs that come from config.
func (p *Plugin) Cron(spec string, fn HandlerFunc) *Job {
	j, err := p.AddCron(spec, fn)
	if err != nil {
		panic("sdk: " + err.Error())
	}
	return j
}

// AddCron is Cron returning the spec's error instead of panicking.
func (p *Plugin) AddCron(spec string, fn HandlerFunc) (*Job, error) {
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	trimmed := strings.TrimSpace(spec)
	hasTZ := strings.HasPrefix(trimmed, "CRON_TZ=") || strings.HasPrefix(trimmed, "TZ=")
	return p.addJob(&Job{p: p, fn: fn, spec: s, hasTZ: hasTZ, name: "cron " + spec}), nil
}

// In sets the time zone of a cron job whose spec has no CRON_TZ prefix.
func (j *Job) In(loc *time.Location) *Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.loc = loc
	return j
}

// Named names the job in logs.
func (j *Job) Named(name string) *Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.name = name
	return j
}

// Name is the job's name in logs.
func (j *Job) Name() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.name
}

// Next is when the job runs next; zero when it is not armed (no session,
// or it is running).
func (j *Job) Next() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next
}

// Stop removes the job and waits for a run in progress to end.
func (j *Job) Stop() {
	p := j.p
	p.mu.Lock()
	p.jobs = slices.DeleteFunc(p.jobs, func(x *Job) bool { return x == j })
	p.mu.Unlock()
	j.halt()
}

// Jobs returns the registered jobs.
func (p *Plugin) Jobs() []*Job {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.jobs)
}

func (p *Plugin) addJob(j *Job) *Job {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jobs = append(p.jobs, j)
	if p.jobsRunning {
		j.start(p.clock)
	}
	return j
}

// startJobs arms every job; called when a session opens.
func (p *Plugin) startJobs() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jobsRunning = true
	for _, j := range p.jobs {
		j.start(p.clock)
	}
}

// stopJobs disarms every job and waits for runs in progress.
func (p *Plugin) stopJobs() {
	p.mu.Lock()
	p.jobsRunning = false
	jobs := slices.Clone(p.jobs)
	p.mu.Unlock()
	for _, j := range jobs {
		j.halt()
	}
}

func (j *Job) start(clock Clock) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stop != nil {
		return
	}
	j.stop, j.done = make(chan struct{}), make(chan struct{})
	go j.loop(clock, j.stop, j.done)
}

func (j *Job) halt() {
	j.mu.Lock()
	stop, done := j.stop, j.done
	j.stop, j.done = nil, nil
	j.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
}

// nextAfter computes the run after now; prev is the last planned run.
func (j *Job) nextAfter(now, prev time.Time) time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.spec == nil {
		next := prev.Add(j.interval)
		if prev.IsZero() || !next.After(now) {
			// First run, or runs were missed: skip them rather than
			// bursting to catch up.
			next = now.Add(j.interval)
		}
		return next
	}
	if spec, ok := j.spec.(*cron.SpecSchedule); ok && !j.hasTZ {
		loc := j.loc
		if loc == nil {
			loc = time.Local
		}
		copied := *spec
		copied.Location = loc
		return copied.Next(now)
	}
	return j.spec.Next(now)
}

func (j *Job) loop(clock Clock, stop, done chan struct{}) {
	defer close(done)
	var planned time.Time
	for {
		now := clock.Now()
		planned = j.nextAfter(now, planned)
		if planned.IsZero() {
			return // a cron spec that never fires again
		}
		t := clock.NewTimer(planned.Sub(now))
		j.mu.Lock()
		j.next = planned
		j.mu.Unlock()
		select {
		case <-stop:
			t.Stop()
			j.mu.Lock()
			j.next = time.Time{}
			j.mu.Unlock()
			return
		case <-t.C():
		}
		j.mu.Lock()
		j.next = time.Time{}
		j.mu.Unlock()
		j.runOnce()
	}
}

func (j *Job) runOnce() {
	p := j.p
	name := j.Name()
	c := &Context{Context: p.sessionContext(), plugin: p, log: p.logger.With("job", name)}
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("job panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	if err := j.fn(c); err != nil && err != Stop && err != Continue {
		c.log.Warn("job failed", "error", err.Error())
	}
}
