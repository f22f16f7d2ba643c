package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tgrunner/tgrunner/configs"
	"github.com/tgrunner/tgrunner/core/config"
	"github.com/tgrunner/tgrunner/core/guard"
	"github.com/tgrunner/tgrunner/core/runner"
	"github.com/tgrunner/tgrunner/core/store"
	"github.com/tgrunner/tgrunner/sandbox"
)

// The sandbox demo: an embedded sandbox seeded with an owner, people and
// chats, the runner logged in as the owner with every configured plugin,
// and a view of every message in that world, each owner message labelled
// with the plugin or rule that sent it (from the guard's audit log).

const defaultDemoConfig = "configs/sandbox.yaml"

// demoOptions configure a demo world.
type demoOptions struct {
	// ConfigPath is the config; "" means configs/sandbox.yaml when it
	// exists here, else the copy built into the binary.
	ConfigPath string
	// Env resolves ${NAME} in the config before the process environment.
	Env map[string]string
	// SelfPath is the binary that serves builtin plugins ("" is this one).
	SelfPath string
	// Out receives the conversation.
	Out   io.Writer
	Color bool
	// Prompt shows the chat's prompt (on a terminal).
	Prompt bool
}

// demo is a running world.
type demo struct {
	opts    demoOptions
	cfg     *config.Config
	sb      *sandbox.Server
	st      *store.Store
	stack   *runner.Stack
	owner   int64
	people  []demoPerson
	chats   []demoChat
	tmp     string
	logPath string
	started time.Time
	cancel  context.CancelFunc
	done    chan error
	out     *demoPrinter

	mu      sync.Mutex
	events  []observed
	changed chan struct{}     // closed and replaced when events grow
	typed   map[msgKey]string // what the demo itself sent, as typed
	journal []journaled
	used    map[string]bool // audit records already matched to a message
}

type demoPerson struct {
	id              int64
	first, username string
}

type demoChat struct {
	peer            sandbox.Peer
	title, username string
}

type msgKey struct {
	from int64
	peer sandbox.Peer
	id   int
}

func keyOf(m sandbox.Message) msgKey { return msgKey{from: m.From, peer: m.Peer, id: m.ID} }

// observed is a message, or an edit, seen in the world.
type observed struct {
	At     time.Time
	Msg    sandbox.Message
	Edited bool
	// Source is who made the owner's account say it: "plugin:NAME",
	// "rule:NAME", "you" (typed in the demo) or "owner" (unknown).
	Source string
}

type journaled struct {
	seq  uint64
	text string
}

// startDemo builds the world and returns once the runner and its plugins
// are up.
func startDemo(ctx context.Context, opts demoOptions) (_ *demo, err error) {
	d := &demo{opts: opts, changed: make(chan struct{}), typed: map[msgKey]string{}, used: map[string]bool{}, started: time.Now()}
	if d.tmp, err = os.MkdirTemp("", "tgrunner-sandbox-"); err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	defer func() {
		if err != nil {
			_ = d.close()
		}
	}()
	if d.cfg, err = loadDemoConfig(ctx, opts, d.tmp); err != nil {
		return nil, err
	}
	if d.cfg.Server.Type != config.ServerSandbox {
		return nil, fmt.Errorf("%s: runner sandbox runs configs with server: sandbox (this one has server: %s)", d.cfg.File, d.cfg.Server.Type)
	}
	// A fresh world each time: the sandbox lives in memory.
	d.cfg.Storage.Dir = filepath.Join(d.tmp, "data")
	d.logPath = filepath.Join(d.tmp, "runner.log")
	d.cfg.Log.File = d.logPath
	lg, err := newLogger(d.cfg)
	if err != nil {
		return nil, err
	}
	log := lg.Logger

	if d.sb, err = sandbox.Start(ctx, sandbox.Options{Logger: log.Named("sandbox")}); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	seed, err := demoSeed(d.cfg)
	if err != nil {
		return nil, err
	}
	res, err := d.sb.ApplySeedResult(ctx, seed)
	if err != nil {
		return nil, fmt.Errorf("seed the sandbox: %w", err)
	}
	phone := d.cfg.Account.Phone.Reveal()
	if phone == "" {
		phone = "9996620000"
	}
	ownerUser, ok := d.sb.UserByPhone(phone)
	if !ok {
		if ownerUser, err = d.sb.CreateUser(ctx, sandbox.UserSpec{Phone: phone, FirstName: "Owner", Username: "owner"}); err != nil {
			return nil, fmt.Errorf("create the owner %s: %w", phone, err)
		}
		d.people = append(d.people, demoPerson{id: ownerUser.ID, first: ownerUser.FirstName, username: ownerUser.Username})
	}
	d.owner = ownerUser.ID
	for _, u := range seed.Users {
		if user, ok := d.sb.UserByPhone(u.Phone); ok {
			d.people = append(d.people, demoPerson{id: user.ID, first: user.FirstName, username: user.Username})
		}
	}
	for _, g := range seed.Groups {
		d.chats = append(d.chats, demoChat{peer: sandbox.ChatPeer(res.Groups[g.Title]), title: g.Title})
	}
	for _, c := range seed.Channels {
		d.chats = append(d.chats, demoChat{peer: sandbox.ChannelPeer(res.Channels[c.Title]), title: c.Title, username: c.Username})
	}
	d.out = &demoPrinter{w: opts.Out, color: opts.Color, d: d}

	if d.st, err = openStore(ctx, d.cfg); err != nil {
		return nil, err
	}
	if d.stack, err = buildStack(d.cfg, d.st, log); err != nil {
		return nil, err
	}
	d.stack.SelfPath = opts.SelfPath
	ready := make(chan struct{}, 1)
	r := runner.New(d.cfg, store.Bolt(d.st), runner.Options{
		Logger:   log,
		Sandbox:  d.sb,
		Login:    runner.SandboxLogin(d.sb, phone, d.cfg.Account.Password.Reveal()),
		Services: []runner.Service{d.stack},
		OnReady:  func(*runner.Session) { ready <- struct{}{} },
		Observe:  d.observeJournal,
	})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel, d.done = cancel, make(chan error, 1)
	go func() { d.done <- r.Run(runCtx) }()
	for _, ch := range []<-chan struct{}{ready, d.stack.Ready()} {
		select {
		case <-ch:
		case err := <-d.done:
			d.done <- err
			return nil, fmt.Errorf("the runner stopped (log: %s): %w", d.logPath, err)
		case <-time.After(90 * time.Second):
			return nil, fmt.Errorf("the runner and its plugins are not up after 90s (log: %s)", d.logPath)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := d.waitPlugins(ctx); err != nil {
		return nil, err
	}
	go d.watch(runCtx)
	return d, nil
}

// waitPlugins waits until every enabled plugin is running, so the first
// message typed is answered as promptly as the later ones.
func (d *demo) waitPlugins(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var waiting []string
		for _, p := range d.stack.Status(ctx).GetPlugins() {
			if p.GetState() == "starting" {
				waiting = append(waiting, p.GetName())
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("plugins not running after 60s: %s (log: %s)", strings.Join(waiting, ", "), d.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loadDemoConfig loads the demo's config: the named file, else
// configs/sandbox.yaml here, else the built-in copy (written out with its
// seed, so relative paths work as in the repository).
func loadDemoConfig(ctx context.Context, opts demoOptions, tmp string) (*config.Config, error) {
	lookup := func(name string) (string, bool) {
		if v, ok := opts.Env[name]; ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
	path := opts.ConfigPath
	if path == "" {
		if _, err := os.Stat(defaultDemoConfig); err == nil {
			path = defaultDemoConfig
		} else {
			dir := filepath.Join(tmp, "configs")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			for _, name := range []string{"sandbox.yaml", "sandbox-seed.yaml"} {
				data, err := fs.ReadFile(configs.FS, name)
				if err != nil {
					return nil, err
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					return nil, err
				}
			}
			path = filepath.Join(dir, "sandbox.yaml")
		}
	}
	return config.Load(ctx, path, config.LoadOptions{LookupEnv: lookup})
}

// demoSeed is the config's seed, else the built-in one.
func demoSeed(cfg *config.Config) (*sandbox.Seed, error) {
	if cfg.Server.SeedFile != "" {
		return sandbox.LoadSeed(cfg.Server.SeedFile)
	}
	data, err := fs.ReadFile(configs.FS, "sandbox-seed.yaml")
	if err != nil {
		return nil, err
	}
	return sandbox.ParseSeed(data)
}

// close stops the runner and the sandbox and removes the world.
func (d *demo) close() error {
	var errs []error
	if d.cancel != nil {
		d.cancel()
		if err := <-d.done; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if d.st != nil {
		errs = append(errs, d.st.Close())
	}
	if d.sb != nil {
		_ = d.sb.Close()
	}
	if d.tmp != "" {
		errs = append(errs, os.RemoveAll(d.tmp))
	}
	return errors.Join(errs...)
}

func (d *demo) observeJournal(entries []store.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		ev, err := runner.DecodeEntry(e)
		if err != nil {
			continue
		}
		d.journal = append(d.journal, journaled{seq: e.Seq, text: ev.GetNewMessage().GetText()})
	}
}

// watch publishes every new message and every edit in the world, in the
// order the sandbox logged them.
func (d *demo) watch(ctx context.Context) {
	seen := map[msgKey]string{}
	for {
		var got sandbox.Message
		var edited bool
		_, err := d.sb.WaitMessage(ctx, func(m sandbox.Message) bool {
			k := keyOf(m)
			prev, ok := seen[k]
			switch {
			case m.Deleted:
				return false
			case !ok:
				got, edited = m, false
			case prev != m.Text:
				got, edited = m, true
			default:
				return false
			}
			seen[k] = m.Text
			return true
		})
		if err != nil {
			return
		}
		if got.Text == "" && !got.HasMedia {
			continue // service messages: joins and the like
		}
		d.mu.Lock()
		if typed, ok := d.typed[keyOf(got)]; ok && typed != got.Text {
			edited = true // changed before the watcher saw it as typed
		}
		d.mu.Unlock()
		ev := observed{At: time.Now(), Msg: got, Edited: edited}
		if got.From == d.owner {
			ev.Source = d.attribute(ctx, got, edited)
		}
		d.mu.Lock()
		d.events = append(d.events, ev)
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
		d.out.event(ev)
	}
}

// attribute finds who made the owner's account send or edit m: the guard
// audits every action with its source and the message id.
func (d *demo) attribute(ctx context.Context, m sandbox.Message, edited bool) string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		d.mu.Lock()
		_, typed := d.typed[keyOf(m)]
		typed = typed && !edited
		d.mu.Unlock()
		if typed {
			return "you"
		}
		if g := d.stack.Guard(); g != nil {
			recs, err := g.Audit(ctx, guard.AuditFilter{Since: d.started, Chat: m.Peer.String(), Outcome: guard.OutcomeOK})
			if err == nil {
				if src := d.match(recs, m, edited); src != "" {
					return src
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "owner"
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *demo) match(recs []guard.AuditRecord, m sandbox.Message, edited bool) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	try := func(ok func(r guard.AuditRecord) bool) string {
		for _, r := range recs {
			id := fmt.Sprintf("%s|%s|%s|%d", r.Time.Format(time.RFC3339Nano), r.Source, r.Kind, r.MessageID)
			if !d.used[id] && ok(r) {
				d.used[id] = true
				return r.Source
			}
		}
		return ""
	}
	if edited {
		return try(func(r guard.AuditRecord) bool { return r.Kind == "edit" && r.MessageID == int64(m.ID) })
	}
	if src := try(func(r guard.AuditRecord) bool { return r.Kind != "edit" && r.MessageID == int64(m.ID) }); src != "" {
		return src
	}
	// Forwards answer with several messages and record no single id.
	return try(func(r guard.AuditRecord) bool { return r.Kind == "forward" && r.MessageID == 0 })
}

// say sends text as the user from to peer, remembering that the demo (not
// a plugin) wrote it.
func (d *demo) say(ctx context.Context, from int64, to sandbox.Peer, text string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock() // the watcher's attribution waits for this record
	id, err := d.sb.As(from).SendText(ctx, to, text)
	if err == nil {
		d.typed[msgKey{from: from, peer: to, id: id}] = text
	}
	return id, err
}

// person finds a user by first name or username, case-insensitively;
// "me" and "owner" are the owner.
func (d *demo) person(name string) (demoPerson, bool) {
	n := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "@"))
	if n == "me" || n == "owner" {
		n = ""
	}
	for _, p := range d.people {
		if (n == "" && p.id == d.owner) || (n != "" && (strings.ToLower(p.first) == n || strings.ToLower(p.username) == n)) {
			return p, true
		}
	}
	return demoPerson{}, false
}

// findChat finds where to write as speaker: a person (their private chat),
// "saved" (the speaker's Saved Messages), or a group or channel by title,
// a word of it, or username.
func (d *demo) findChat(speaker int64, name string) (sandbox.Peer, bool) {
	n := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "@"))
	if n == "saved" || n == "saved messages" {
		return sandbox.UserPeer(speaker), true
	}
	if p, ok := d.person(n); ok {
		return sandbox.UserPeer(p.id), true
	}
	for _, c := range d.chats {
		if strings.ToLower(c.title) == n || strings.ToLower(c.username) == n {
			return c.peer, true
		}
	}
	for _, c := range d.chats {
		for _, w := range strings.Fields(strings.ToLower(c.title)) {
			if w == n {
				return c.peer, true
			}
		}
	}
	return sandbox.Peer{}, false
}

func (d *demo) userName(id int64) string {
	for _, p := range d.people {
		if p.id == id {
			return p.first
		}
	}
	return fmt.Sprintf("user:%d", id)
}

// chatName names peer as seen by from.
func (d *demo) chatName(from int64, peer sandbox.Peer) string {
	if peer.Kind == sandbox.PeerUser {
		if peer.ID == from {
			return "Saved Messages"
		}
		return d.userName(peer.ID)
	}
	for _, c := range d.chats {
		if c.peer == peer {
			return c.title
		}
	}
	return peer.String()
}

// describe lists the people and chats.
func (d *demo) describe() string {
	var b strings.Builder
	b.WriteString("people:")
	people := append([]demoPerson(nil), d.people...)
	sort.Slice(people, func(i, j int) bool { return people[i].id < people[j].id })
	for _, p := range people {
		role := ""
		if p.id == d.owner {
			role = " (the owner: tgrunner runs as this account)"
		}
		fmt.Fprintf(&b, "\n  %-8s @%s%s", p.first, p.username, role)
	}
	b.WriteString("\nchats:")
	for _, c := range d.chats {
		kind := "group"
		if c.peer.Kind == sandbox.PeerChannel {
			kind = "channel"
		}
		line := fmt.Sprintf("\n  %-14s %s", c.title, kind)
		if c.username != "" {
			line += " @" + c.username
		}
		b.WriteString(line)
	}
	b.WriteString("\nplugins:")
	for _, p := range d.cfg.Plugins {
		if !p.Disabled {
			b.WriteString(" " + p.Name)
		}
	}
	return b.String()
}

// journalLen is a mark for settle.
func (d *demo) journalLen() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.journal)
}

// settle waits until the journal has the message text after mark and
// every plugin has handled it: whatever the automations did about it is
// done.
func (d *demo) settle(ctx context.Context, mark int, text string) error {
	var seq uint64
	for seq == 0 {
		d.mu.Lock()
		for _, j := range d.journal[mark:] {
			if j.text == text {
				seq = j.seq
				break
			}
		}
		d.mu.Unlock()
		if seq != 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the owner's account never received %q", text)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, p := range d.cfg.Plugins {
		if p.Disabled {
			continue
		}
		c, err := d.st.Journal().Consumer(ctx, "plugin:"+p.Name, store.ConsumerOptions{})
		if err != nil {
			return err
		}
		for {
			pos, err := c.Position(ctx)
			if err != nil {
				return err
			}
			if pos.Low >= seq {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("plugin %s did not finish handling %q", p.Name, text)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// demoPrinter writes the conversation, in colour on a terminal.
type demoPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	color  bool
	d      *demo
	prompt string // redrawn after each line in the interactive chat
}

const (
	ansiReset  = "\033[0m"
	ansiDim    = "\033[2m"
	ansiBold   = "\033[1m"
	ansiCyan   = "\033[36m"
	ansiGreen  = "\033[32m"
	ansiYellow = "\033[33m"
	ansiRed    = "\033[31m"
)

func (p *demoPrinter) paint(code, s string) string { return paint(p.color, code, s) }

func paint(color bool, code, s string) string {
	if !color {
		return s
	}
	return code + s + ansiReset
}

// line formats an observed message.
func (p *demoPrinter) line(ev observed) string { return p.format(ev, p.color) }

func (p *demoPrinter) format(ev observed, color bool) string {
	paint := func(code, s string) string { return paint(color, code, s) }
	m := ev.Msg
	from := p.d.userName(m.From)
	nameColor := ansiCyan
	if m.From == p.d.owner {
		nameColor = ansiGreen
	}
	head := paint(ansiDim, ev.At.Format("15:04:05")) + "  " + paint(ansiBold+nameColor, from) +
		" → " + p.d.chatName(m.From, m.Peer)
	if ev.Edited {
		head += paint(ansiDim, " (edited)")
	}
	if m.Forwarded {
		head += paint(ansiDim, " (forwarded)")
	}
	text := strings.ReplaceAll(m.Text, "\n", "\n          ")
	if text == "" && m.HasMedia {
		text = paint(ansiDim, "[media]")
	}
	out := head + ": " + text
	if ev.Source != "" && ev.Source != "you" {
		out += "  " + paint(ansiYellow, "["+sourceLabel(ev.Source)+"]")
	}
	return out
}

// sourceLabel turns an audit source into what the demo shows.
func sourceLabel(src string) string {
	switch {
	case strings.HasPrefix(src, "plugin:"):
		return strings.TrimPrefix(src, "plugin:")
	case strings.HasPrefix(src, "rule:"):
		return "rule " + strings.TrimPrefix(src, "rule:")
	case src == "owner":
		return "the owner, elsewhere"
	}
	return src
}

func (p *demoPrinter) event(ev observed) { p.println(p.line(ev)) }

func (p *demoPrinter) println(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prompt != "" {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, s)
	if p.prompt != "" {
		fmt.Fprint(p.w, p.prompt)
	}
}

// setPrompt shows the prompt on a terminal; elsewhere there is none.
func (p *demoPrinter) setPrompt(s string) {
	if !p.d.opts.Prompt {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prompt = s
	fmt.Fprint(p.w, s)
}
