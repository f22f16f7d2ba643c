// Package schedule is the first-party scheduler: it sends messages, or
// forwards chosen messages or whatever is new in a chat since its last run
// (a digest), on cron schedules with time zones. Jobs are rebuilt on every
// config reload; a digest's position is kept in the runner's KV store.
package schedule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tgrunner/tgrunner/plugins/internal/kit"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Config is the plugin's config section.
type Config struct {
	// TimeZone of jobs that name none (IANA; default UTC).
	TimeZone string `json:"time_zone"`
	Jobs     []Job  `json:"jobs"`
}

// Job is one scheduled job.
type Job struct {
	// Name identifies the job in logs and its digest position; unique.
	Name string `json:"name"`
	// Cron: five fields (or six with seconds), or @daily, @every 90s, ...
	Cron string `json:"cron"`
	// TimeZone overrides the config's.
	TimeZone string `json:"time_zone"`
	// To is where the job sends.
	To string `json:"to"`
	// Text is sent first, if set. Placeholders: {date}, {time},
	// {weekday}, {count} (messages forwarded by this run).
	Text string `json:"text"`
	// Forward forwards or copies messages after the text.
	Forward *Forward `json:"forward"`
	// Silent sends without a notification.
	Silent bool `json:"silent"`
	// SkipEmpty sends nothing when a digest has nothing new (default
	// true).
	SkipEmpty *bool `json:"skip_empty"`

	spec string
	loc  *time.Location
	to   kit.ChatRef
	from kit.ChatRef
}

// Forward says which messages a job forwards.
type Forward struct {
	From string `json:"from"`
	// MessageIDs forwards these messages each time.
	MessageIDs []int64 `json:"message_ids"`
	// New forwards what is new in From since the last run (at most Max,
	// the newest), needing the history permission.
	New bool `json:"new"`
	// Max bounds a digest (default 20).
	Max int `json:"max"`
	// Copy sends copies without the "forwarded from" header.
	Copy bool `json:"copy"`
}

// Validate checks the config and compiles it.
func (c *Config) Validate() error {
	zone, err := kit.ParseZone("time_zone", c.TimeZone)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		f := func(k string) string { return fmt.Sprintf("jobs[%d].%s", i, k) }
		if j.Name == "" {
			j.Name = fmt.Sprintf("job%d", i+1)
		}
		if seen[j.Name] {
			return &sdk.ConfigError{Field: f("name"), Reason: fmt.Sprintf("%q is used twice", j.Name)}
		}
		seen[j.Name] = true
		if j.Cron == "" {
			return &sdk.ConfigError{Field: f("cron"), Reason: `required, e.g. "0 9 * * *" or "@daily"`}
		}
		j.loc = zone
		if j.TimeZone != "" {
			if j.loc, err = kit.ParseZone(f("time_zone"), j.TimeZone); err != nil {
				return err
			}
		}
		j.spec = j.Cron
		if !strings.HasPrefix(j.Cron, "CRON_TZ=") && !strings.HasPrefix(j.Cron, "TZ=") {
			j.spec = "CRON_TZ=" + j.loc.String() + " " + j.Cron
		}
		if err := sdk.ParseCron(j.spec); err != nil {
			return &sdk.ConfigError{Field: f("cron"), Reason: err.Error()}
		}
		if j.to, err = kit.ParseTarget(f("to"), j.To); err != nil {
			return err
		}
		if j.Text == "" && j.Forward == nil {
			return &sdk.ConfigError{Field: f("text"), Reason: "set text, forward, or both"}
		}
		if fw := j.Forward; fw != nil {
			if j.from, err = kit.ParseTarget(f("forward.from"), fw.From); err != nil {
				return err
			}
			if fw.New == (len(fw.MessageIDs) > 0) {
				return &sdk.ConfigError{Field: f("forward"), Reason: "set either message_ids or new: true"}
			}
			if fw.Max == 0 {
				fw.Max = 20
			}
			if fw.Max < 0 || fw.Max > 100 {
				return &sdk.ConfigError{Field: f("forward.max"), Reason: "must be 1 to 100"}
			}
		}
	}
	return nil
}

type plugin struct {
	p   *sdk.Plugin
	cfg *sdk.Config[Config]
	res kit.Resolver

	now func() time.Time

	mu   sync.Mutex
	jobs []*sdk.Job
}

// New builds the plugin.
func New() *sdk.Plugin { return build(time.Now) }

func build(now func() time.Time) *sdk.Plugin {
	p := sdk.New("schedule", "1.0.0",
		sdk.WithDescription("Sends and forwards messages on cron schedules"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send", "forward", "history", "resolve", "edit"}}),
	)
	s := &plugin{p: p, cfg: sdk.NewConfig(p, Config{}), now: now}
	p.OnConfigure(s.configure)
	p.Command("jobs", s.list).Where(kit.ByOwner).Describe("List the scheduled jobs and when they run next")
	p.Command("runjob", s.runNow).Where(kit.ByOwner).Describe("Run a scheduled job now").Usage("NAME")
	return p
}

func (s *plugin) list(c *sdk.Context) error {
	cfg := s.cfg.Get()
	s.mu.Lock()
	jobs := append([]*sdk.Job(nil), s.jobs...)
	s.mu.Unlock()
	var b strings.Builder
	if len(cfg.Jobs) == 0 {
		b.WriteString("No scheduled jobs.")
	}
	for i, job := range cfg.Jobs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s: %s (%s)", job.Name, job.Cron, job.loc)
		if i < len(jobs) {
			if next := jobs[i].Next(); !next.IsZero() {
				b.WriteString(", next " + next.In(job.loc).Format("2006-01-02 15:04"))
			}
		}
	}
	return s.confirm(c, b.String())
}

func (s *plugin) runNow(c *sdk.Context) error {
	name := c.ArgText()
	for _, job := range s.cfg.Get().Jobs {
		if job.Name == name {
			if err := s.run(c, job); err != nil {
				return s.confirm(c, "⚠️ "+err.Error())
			}
			return s.confirm(c, "▶️ ran "+name)
		}
	}
	var names []string
	for _, job := range s.cfg.Get().Jobs {
		names = append(names, job.Name)
	}
	return s.confirm(c, fmt.Sprintf("no job %q; the jobs are: %s", name, strings.Join(names, ", ")))
}

// confirm turns the owner's command into the answer when edit is granted.
func (s *plugin) confirm(c *sdk.Context, text string) error {
	if !slices.Contains(c.Plugin().Settings().Granted.Actions, "edit") {
		return nil
	}
	_, err := c.Edit(c.ChatPeer(), c.Message().GetId(), text)
	return err
}

// configure replaces the jobs with the config's.
func (s *plugin) configure(sdk.Settings) error {
	cfg := s.cfg.Get()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		j.Stop()
	}
	s.jobs = nil
	for _, job := range cfg.Jobs {
		j, err := s.p.AddCron(job.spec, func(c *sdk.Context) error { return s.run(c, job) })
		if err != nil {
			return err
		}
		s.jobs = append(s.jobs, j.Named(job.Name))
	}
	return nil
}

func lastKey(job string) string { return "last/" + job }

func (s *plugin) run(c *sdk.Context, job Job) error {
	to, err := s.res.Peer(c, job.to)
	if err != nil {
		return fmt.Errorf("job %s: %w", job.Name, err)
	}
	var ids []int64
	var from *pb.Peer
	var newest int64
	if fw := job.Forward; fw != nil {
		if from, err = s.res.Peer(c, job.from); err != nil {
			return fmt.Errorf("job %s: %w", job.Name, err)
		}
		ids = fw.MessageIDs
		if fw.New {
			if ids, newest, err = s.fresh(c, job.Name, from, fw.Max); err != nil {
				return fmt.Errorf("job %s: %w", job.Name, err)
			}
			if len(ids) == 0 && (job.SkipEmpty == nil || *job.SkipEmpty) {
				return nil
			}
		}
	}
	var opts []sdk.SendOption
	if job.Silent {
		opts = append(opts, sdk.Silent())
	}
	if job.Text != "" {
		now := s.now().In(job.loc)
		text := kit.Expand(job.Text, map[string]string{
			"date": now.Format("2006-01-02"), "time": now.Format("15:04"),
			"weekday": now.Weekday().String(), "count": strconv.Itoa(len(ids)),
		})
		if _, err := c.Send(to, text, opts...); err != nil {
			return fmt.Errorf("job %s: send: %w", job.Name, err)
		}
	}
	if len(ids) > 0 {
		if job.Forward.Copy {
			_, err = c.Copy(from, ids, to, opts...)
		} else {
			_, err = c.Forward(from, ids, to, opts...)
		}
		if err != nil {
			return fmt.Errorf("job %s: forward: %w", job.Name, err)
		}
	}
	if newest > 0 {
		return c.KV().Set(lastKey(job.Name), []byte(strconv.FormatInt(newest, 10)))
	}
	return nil
}

// fresh finds the messages of from newer than the last run's, oldest
// first, at most max (the newest ones), and the newest id.
func (s *plugin) fresh(c *sdk.Context, job string, from *pb.Peer, max int) ([]int64, int64, error) {
	v, _, err := c.KV().Get(lastKey(job))
	if err != nil {
		return nil, 0, err
	}
	last, _ := strconv.ParseInt(string(v), 10, 64)
	msgs, err := c.History(from, max, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("history: %w", err)
	}
	var ids []int64
	var newest int64
	for _, m := range msgs {
		newest = max64(newest, m.GetId())
		if m.GetId() > last {
			ids = append(ids, m.GetId())
		}
	}
	slices.Sort(ids)
	return ids, newest, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
