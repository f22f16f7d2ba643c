package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tgrunner/tgrunner/sandbox"
)

// A sandbox script is a conversation with expectations, run without a
// terminal by `runner sandbox --script FILE`:
//
//	config: away-message.yaml      # relative to the script; default the demo's
//	env: {TG_API_HASH: "0123..."}  # for ${NAME} in the config
//	timeout: 10s                   # default wait of each expectation
//	steps:
//	  - as: alice                  # who speaks (default alice)
//	    to: owner                  # where (default owner: the private chat)
//	    say: hi
//	    expect:                    # each must arrive, in any order
//	      - from: owner            # default owner
//	        in: alice              # default: the step's conversation
//	        match: "(?i)away"      # or text: exact, or contains:
//	        source: autoreply      # the plugin or rule that sent it
//	        edit: false            # true: the step's own message, edited
//	        within: 5s
//	    expect_none:               # after every plugin handled the step
//	      - {from: owner, in: alice}
type sandboxScript struct {
	Config  string            `yaml:"config"`
	Env     map[string]string `yaml:"env"`
	Timeout string            `yaml:"timeout"`
	Steps   []scriptStep      `yaml:"steps"`

	path    string
	timeout time.Duration
}

type scriptStep struct {
	As         string         `yaml:"as"`
	To         string         `yaml:"to"`
	Say        string         `yaml:"say"`
	Expect     []scriptExpect `yaml:"expect"`
	ExpectNone []scriptExpect `yaml:"expect_none"`
	line       int
}

type scriptExpect struct {
	From     string  `yaml:"from"`
	In       string  `yaml:"in"`
	Text     *string `yaml:"text"`
	Contains string  `yaml:"contains"`
	Match    string  `yaml:"match"`
	Source   string  `yaml:"source"`
	Edit     bool    `yaml:"edit"`
	Within   string  `yaml:"within"`

	re     *regexp.Regexp
	within time.Duration
	line   int
}

// scriptError is a failed expectation; the command exits non-zero.
type scriptError struct{ msg string }

func (e *scriptError) Error() string { return e.msg }

// loadScript reads and checks a script; problems name file:line.
func loadScript(path string) (*sandboxScript, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load script: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	s := &sandboxScript{path: path}
	if err := dec.Decode(s); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...))
	}
	s.timeout = 10 * time.Second
	if s.Timeout != "" {
		if s.timeout, err = time.ParseDuration(s.Timeout); err != nil || s.timeout <= 0 {
			return nil, bad(1, "timeout: %q is not a duration such as 10s", s.Timeout)
		}
	}
	if len(s.Steps) == 0 {
		return nil, bad(1, "steps: the script has none")
	}
	stepNodes := findKey(&root, "steps")
	for i := range s.Steps {
		st := &s.Steps[i]
		if stepNodes != nil && i < len(stepNodes.Content) {
			st.line = stepNodes.Content[i].Line
		}
		if st.Say == "" && len(st.Expect) == 0 && len(st.ExpectNone) == 0 {
			return nil, bad(st.line, "steps[%d]: say something or expect something", i)
		}
		if len(st.ExpectNone) > 0 && st.Say == "" {
			return nil, bad(st.line, "steps[%d].expect_none: needs say (it is checked once every plugin handled that message)", i)
		}
		for _, list := range []struct {
			name string
			es   []scriptExpect
		}{{"expect", st.Expect}, {"expect_none", st.ExpectNone}} {
			var nodes *yaml.Node
			if stepNodes != nil && i < len(stepNodes.Content) {
				nodes = findKey(stepNodes.Content[i], list.name)
			}
			for j := range list.es {
				e := &list.es[j]
				e.line = st.line
				if nodes != nil && j < len(nodes.Content) {
					e.line = nodes.Content[j].Line
				}
				if e.Match != "" {
					if e.re, err = regexp.Compile(e.Match); err != nil {
						return nil, bad(e.line, "steps[%d].%s[%d].match: %v", i, list.name, j, err)
					}
				}
				e.within = s.timeout
				if e.Within != "" {
					if e.within, err = time.ParseDuration(e.Within); err != nil || e.within <= 0 {
						return nil, bad(e.line, "steps[%d].%s[%d].within: %q is not a duration such as 5s", i, list.name, j, e.Within)
					}
				}
				if e.Edit && st.Say == "" {
					return nil, bad(e.line, "steps[%d].%s[%d].edit: needs the step to say something", i, list.name, j)
				}
			}
		}
	}
	return s, nil
}

// findKey returns the value node of key in a mapping (or a document).
func findKey(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// runScript plays a script against a fresh demo world.
func runScript(ctx context.Context, path string, opts demoOptions) error {
	s, err := loadScript(path)
	if err != nil {
		return usageError{err}
	}
	if s.Config != "" {
		opts.ConfigPath = s.Config
		if !filepath.IsAbs(s.Config) {
			opts.ConfigPath = filepath.Join(filepath.Dir(path), s.Config)
		}
	}
	opts.Env = s.Env
	d, err := startDemo(ctx, opts)
	if err != nil {
		return err
	}
	defer d.close()
	p := d.out
	p.println(fmt.Sprintf("script %s: %s with %s", path, plural(len(s.Steps), "step"), d.cfg.File))
	for i := range s.Steps {
		if err := d.step(ctx, s, i); err != nil {
			p.println(p.paint(ansiRed, "✗ "+err.Error()))
			return err
		}
	}
	p.println(p.paint(ansiGreen, fmt.Sprintf("✓ %s: %s passed", path, plural(len(s.Steps), "step"))))
	return nil
}

func (d *demo) step(ctx context.Context, s *sandboxScript, i int) error {
	st := s.Steps[i]
	where := fmt.Sprintf("%s:%d: step %d", s.path, st.line, i+1)
	asName := st.As
	if asName == "" {
		asName = "alice"
	}
	speaker, ok := d.person(asName)
	if !ok {
		return &scriptError{fmt.Sprintf("%s: as: no one called %q (%s)", where, asName, d.peopleNames())}
	}
	toName := st.To
	if toName == "" {
		toName = "owner"
	}
	target, ok := d.findChat(speaker.id, toName)
	if !ok {
		return &scriptError{fmt.Sprintf("%s: to: no chat called %q", where, toName)}
	}
	d.mu.Lock()
	mark := len(d.events)
	d.mu.Unlock()
	journalMark := d.journalLen()
	said := msgKey{}
	if st.Say != "" {
		id, err := d.say(ctx, speaker.id, target, st.Say)
		if err != nil {
			return &scriptError{fmt.Sprintf("%s: %s could not say %q: %v", where, speaker.first, st.Say, err)}
		}
		said = msgKey{from: speaker.id, peer: target, id: id}
		where += fmt.Sprintf(" (%s → %s: %q)", speaker.first, d.chatName(speaker.id, target), st.Say)
	}
	claimed := map[int]bool{}
	for _, e := range st.Expect {
		m, err := d.compile(e, speaker.id, target, said)
		if err != nil {
			return &scriptError{fmt.Sprintf("%s:%d: %v", s.path, e.line, err)}
		}
		if err := d.await(ctx, mark, claimed, m, e.within); err != nil {
			return &scriptError{fmt.Sprintf("%s: expected within %s\n  %s\n%s", where, e.within, m.describe(), d.gotSince(mark))}
		}
	}
	// Every step ends once the automations are done with it, so the next
	// step (and expect_none) sees a settled world.
	ownerSees := speaker.id == d.owner || target.Kind != sandbox.PeerUser || target.ID == d.owner
	if st.Say != "" && ownerSees {
		sctx, cancel := context.WithTimeout(ctx, s.timeout)
		err := d.settle(sctx, journalMark, st.Say)
		cancel()
		if err != nil {
			return &scriptError{fmt.Sprintf("%s: %v", where, err)}
		}
	}
	if len(st.ExpectNone) > 0 {
		if st.Say != "" && !ownerSees {
			return &scriptError{fmt.Sprintf("%s: expect_none: the owner does not see this conversation, so there is nothing to wait for", where)}
		}
		for _, e := range st.ExpectNone {
			m, err := d.compile(e, speaker.id, target, said)
			if err != nil {
				return &scriptError{fmt.Sprintf("%s:%d: %v", s.path, e.line, err)}
			}
			d.mu.Lock()
			events := append([]observed(nil), d.events[mark:]...)
			d.mu.Unlock()
			for _, ev := range events {
				if m.ok(ev) {
					return &scriptError{fmt.Sprintf("%s: expected no\n  %s\ngot:\n  %s", where, m.describe(), d.out.plain(ev))}
				}
			}
		}
	}
	return nil
}

// matcher is a compiled expectation.
type matcher struct {
	from   int64
	peer   sandbox.Peer
	text   *string
	sub    string
	re     *regexp.Regexp
	source string
	edit   *msgKey
	d      *demo
}

func (d *demo) compile(e scriptExpect, speaker int64, target sandbox.Peer, said msgKey) (*matcher, error) {
	m := &matcher{text: e.Text, sub: e.Contains, re: e.re, source: e.Source, d: d, from: d.owner}
	if e.From != "" {
		p, ok := d.person(e.From)
		if !ok {
			return nil, fmt.Errorf("from: no one called %q (%s)", e.From, d.peopleNames())
		}
		m.from = p.id
	}
	switch {
	case e.In != "":
		peer, ok := d.findChat(m.from, e.In)
		if !ok {
			return nil, fmt.Errorf("in: no chat called %q", e.In)
		}
		m.peer = peer
	case target.Kind != sandbox.PeerUser:
		m.peer = target
	case m.from == speaker:
		m.peer = target
	case m.from == target.ID:
		m.peer = sandbox.UserPeer(speaker)
	default:
		return nil, fmt.Errorf("in: say where %s is expected to write", d.userName(m.from))
	}
	if e.Edit {
		k := said
		m.edit = &k
	}
	return m, nil
}

func (m *matcher) ok(ev observed) bool {
	msg := ev.Msg
	// Expectations are about answers, not about what the script typed.
	if ev.Source == "you" || msg.From != m.from || msg.Peer != m.peer {
		return false
	}
	if m.edit != nil && (!ev.Edited || keyOf(msg) != *m.edit) {
		return false
	}
	if m.text != nil && msg.Text != *m.text {
		return false
	}
	if m.sub != "" && !strings.Contains(msg.Text, m.sub) {
		return false
	}
	if m.re != nil && !m.re.MatchString(msg.Text) {
		return false
	}
	if m.source != "" && sourceLabel(ev.Source) != m.source && ev.Source != m.source {
		return false
	}
	return true
}

func (m *matcher) describe() string {
	s := "a message from " + m.d.userName(m.from) + " in " + m.d.chatName(m.from, m.peer)
	if m.edit != nil {
		s = "the step's message edited, in " + m.d.chatName(m.from, m.peer)
	}
	if m.text != nil {
		s += fmt.Sprintf(", text %q", *m.text)
	}
	if m.sub != "" {
		s += fmt.Sprintf(", containing %q", m.sub)
	}
	if m.re != nil {
		s += fmt.Sprintf(", matching /%s/", m.re)
	}
	if m.source != "" {
		s += ", sent by " + m.source
	}
	return s
}

// await waits for an event after mark that m accepts and no earlier
// expectation of the step claimed.
func (d *demo) await(ctx context.Context, mark int, claimed map[int]bool, m *matcher, within time.Duration) error {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		d.mu.Lock()
		for i := mark; i < len(d.events); i++ {
			if !claimed[i] && m.ok(d.events[i]) {
				claimed[i] = true
				d.mu.Unlock()
				return nil
			}
		}
		changed := d.changed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return errors.New("timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// gotSince lists what happened after mark, for the report.
func (d *demo) gotSince(mark int) string {
	d.mu.Lock()
	events := append([]observed(nil), d.events[mark:]...)
	d.mu.Unlock()
	if len(events) == 0 {
		return "got: nothing at all"
	}
	lines := []string{"got instead:"}
	for _, ev := range events {
		lines = append(lines, "  "+d.out.plain(ev))
	}
	return strings.Join(lines, "\n")
}

func (d *demo) peopleNames() string {
	var names []string
	for _, p := range d.people {
		names = append(names, strings.ToLower(p.first))
	}
	return "people: " + strings.Join(names, ", ")
}

// plain formats an event without colour or time, for reports.
func (p *demoPrinter) plain(ev observed) string {
	line := p.format(ev, false)
	if i := strings.Index(line, "  "); i >= 0 {
		line = line[i+2:]
	}
	return line
}
