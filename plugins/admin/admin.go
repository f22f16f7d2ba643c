// Package admin is the owner's console: commands the owner types in their
// own messages (any chat, or only Saved Messages) to see and steer the
// runner: .help, .ping, .status, .plugins, .pause, .resume and .purge N.
// Runner control goes through the contract's runner_control actions; .purge
// deletes through the guard like any other action.
package admin

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tgrunner/tgrunner/plugins/internal/kit"
	"github.com/tgrunner/tgrunner/sdk"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// Config is the plugin's config section.
type Config struct {
	// Where commands are taken from: anywhere (the owner's messages in any
	// chat) or saved (Saved Messages only).
	Where string `json:"where"`
	// Output: edit (the command message becomes the answer) or reply.
	Output string `json:"output"`
	// PurgeMax bounds .purge N.
	PurgeMax int `json:"purge_max"`
}

// Defaults are the values of keys the config leaves out.
func Defaults() Config { return Config{Where: "anywhere", Output: "edit", PurgeMax: 100} }

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Where != "anywhere" && c.Where != "saved" {
		return &sdk.ConfigError{Field: "where", Reason: fmt.Sprintf("%q: want anywhere or saved", c.Where)}
	}
	if c.Output != "edit" && c.Output != "reply" {
		return &sdk.ConfigError{Field: "output", Reason: fmt.Sprintf("%q: want edit or reply", c.Output)}
	}
	if c.PurgeMax < 1 || c.PurgeMax > 1000 {
		return &sdk.ConfigError{Field: "purge_max", Reason: "must be 1 to 1000"}
	}
	return nil
}

type plugin struct {
	cfg *sdk.Config[Config]
	now func() time.Time
}

// New builds the plugin.
func New() *sdk.Plugin { return build(time.Now) }

func build(now func() time.Time) *sdk.Plugin {
	p := sdk.New("admin", "1.0.0",
		sdk.WithDescription("The owner's commands: help, ping, status, pause, resume, purge"),
		sdk.WithPermissions(sdk.Permissions{Actions: []string{"send", "edit", "delete", "history", "runner_control"}}),
	)
	a := &plugin{cfg: sdk.NewConfig(p, Defaults()), now: now}
	cmd := func(name string, fn sdk.HandlerFunc, desc, usage string) {
		p.Command(name, a.owner(fn)).Where(kit.ByOwner).Describe(desc).Usage(usage)
	}
	cmd("help", a.help, "Every command of every plugin", "")
	cmd("ping", a.ping, "Round trip through the runner, in ms", "")
	cmd("status", a.status, "Uptime, pause state, plugins and their queues", "")
	cmd("plugins", a.plugins, "The plugins and their state", "")
	cmd("pause", a.pause, "Hold every outgoing action until .resume", "[reason]")
	cmd("resume", a.resume, "Let outgoing actions go again", "")
	cmd("purge", a.purge, "Delete your own last N messages in this chat", "N")
	return p
}

// owner keeps commands to where the config takes them from.
func (a *plugin) owner(fn sdk.HandlerFunc) sdk.HandlerFunc {
	return func(c *sdk.Context) error {
		if a.cfg.Get().Where == "saved" && c.Chat().GetType() != pb.ChatType_CHAT_TYPE_SELF {
			return sdk.Continue
		}
		return fn(c)
	}
}

// answer shows text as the command's answer: the command message edited,
// or a reply.
func (a *plugin) answer(c *sdk.Context, text string) (*pb.Message, error) {
	if a.cfg.Get().Output == "edit" {
		return c.Edit(c.ChatPeer(), c.Message().GetId(), text)
	}
	return c.Reply(text)
}

func (a *plugin) help(c *sdk.Context) error {
	infos, err := c.ListPlugins()
	if err != nil {
		return err
	}
	prefix := c.Plugin().Settings().CommandPrefix
	var b strings.Builder
	b.WriteString("Commands:")
	for _, info := range infos {
		if len(info.GetCommands()) == 0 {
			continue
		}
		b.WriteString("\n\n" + info.GetName())
		if d := info.GetDescription(); d != "" {
			b.WriteString(" — " + d)
		}
		for _, cmd := range info.GetCommands() {
			line := "\n  " + prefix + cmd.GetName()
			if u := cmd.GetUsage(); u != "" {
				line += " " + u
			}
			if d := cmd.GetDescription(); d != "" {
				line += ": " + d
			}
			b.WriteString(line)
		}
	}
	_, err = a.answer(c, b.String())
	return err
}

func (a *plugin) ping(c *sdk.Context) error {
	start := a.now()
	m, err := a.answer(c, "pong")
	if err != nil {
		return err
	}
	ms := a.now().Sub(start).Milliseconds()
	text := fmt.Sprintf("pong: %d ms round trip", ms)
	if d := c.Message().GetDate(); d > 0 {
		text += fmt.Sprintf(", event %s old", a.now().Sub(time.Unix(d, 0)).Round(time.Second))
	}
	if !slices.Contains(c.Plugin().Settings().Granted.Actions, "edit") || m == nil {
		return nil
	}
	_, err = c.Edit(c.ChatPeer(), m.GetId(), text)
	return err
}

func (a *plugin) status(c *sdk.Context) error {
	st, err := c.RunnerStatus()
	if err != nil {
		return err
	}
	_, err = a.answer(c, FormatStatus(st))
	return err
}

// FormatStatus renders the runner's status for a chat message.
func FormatStatus(st *pb.RunnerStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tgrunner %s · account %s · up %s", orDash(st.GetVersion()), orDash(st.GetAccount()),
		(time.Duration(st.GetUptimeSeconds()) * time.Second).String())
	switch {
	case st.GetPaused() && st.GetPauseReason() != "":
		b.WriteString("\n⏸ paused: " + st.GetPauseReason())
	case st.GetPaused():
		b.WriteString("\n⏸ paused")
	default:
		b.WriteString("\n▶️ running")
	}
	if st.GetDryRun() {
		b.WriteString(" (dry run: nothing is sent)")
	}
	fmt.Fprintf(&b, "\njournal lag: %d", st.GetJournalLag())
	b.WriteString("\nplugins:")
	for _, p := range st.GetPlugins() {
		fmt.Fprintf(&b, "\n  %s %s %s · queue %d · in flight %d · delivered %d · failed %d · restarts %d",
			p.GetName(), p.GetVersion(), p.GetState(), p.GetQueueDepth(), p.GetInFlight(), p.GetDelivered(), p.GetFailed(), p.GetRestarts())
		if e := p.GetLastError(); e != "" {
			b.WriteString(" · last error: " + e)
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *plugin) plugins(c *sdk.Context) error {
	infos, err := c.ListPlugins()
	if err != nil {
		return err
	}
	st, err := c.RunnerStatus()
	if err != nil {
		return err
	}
	state := map[string]string{}
	for _, p := range st.GetPlugins() {
		state[p.GetName()] = p.GetState()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d plugins:", len(infos))
	for _, info := range infos {
		fmt.Fprintf(&b, "\n  %s %s", info.GetName(), info.GetVersion())
		if s := state[info.GetName()]; s != "" {
			b.WriteString(" [" + s + "]")
		}
		if d := info.GetDescription(); d != "" {
			b.WriteString(" — " + d)
		}
	}
	_, err = a.answer(c, b.String())
	return err
}

func (a *plugin) pause(c *sdk.Context) error {
	reason := c.ArgText()
	if reason == "" {
		reason = "paused by the owner with " + c.Plugin().Settings().CommandPrefix + "pause"
	}
	// Answer first: once paused, the answer would wait for .resume too.
	if _, err := a.answer(c, "⏸ Paused: outgoing actions wait until "+c.Plugin().Settings().CommandPrefix+"resume"); err != nil {
		return err
	}
	return c.PauseRunner(reason)
}

func (a *plugin) resume(c *sdk.Context) error {
	if err := c.ResumeRunner(); err != nil {
		return err
	}
	_, err := a.answer(c, "▶️ Resumed")
	return err
}

func (a *plugin) purge(c *sdk.Context) error {
	limit := a.cfg.Get().PurgeMax
	n, err := strconv.Atoi(c.ArgText())
	if err != nil || n < 1 || n > limit {
		_, err := a.answer(c, fmt.Sprintf("usage: %spurge N, with N from 1 to %d", c.Plugin().Settings().CommandPrefix, limit))
		return err
	}
	chat := c.ChatPeer()
	cmdID := c.Message().GetId()
	ids := []int64{cmdID}
	offset := cmdID
	// The owner's messages may be sparse among others': page back, but not
	// forever.
	for page := 0; page < 20 && len(ids) < n+1; page++ {
		msgs, err := c.History(chat, 100, offset)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if m.GetOutgoing() && m.GetId() != cmdID && len(ids) < n+1 {
				ids = append(ids, m.GetId())
			}
			offset = m.GetId()
		}
	}
	return c.Delete(chat, true, ids...)
}
