package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tgrunner/tgrunner/plugins/rules/spec"
)

// RulesPluginName is the name and builtin of the plugin instance that
// runs the config's rules.
const RulesPluginName = "rules"

// ruleSource is where a rule was written, for positions in problems.
type ruleSource struct {
	file string
	path string // "rules[2]" in that file
	pos  map[string]position
	// failed holds the paths already reported while decoding.
	failed map[string]bool
}

var ruleKeys = []string{
	"id", "alias", "description", "mode", "max", "catch_up", "time_zone", "disabled",
	"triggers", "conditions", "actions",
}

// decodeRules reads the top-level rules: list.
func decodeRules(d *decoder, c *Config, top *fields) {
	items, ok := top.list("rules")
	if !ok {
		return
	}
	for i, it := range items {
		d.rule(c, it, indexPath("rules", i))
	}
}

// decodeRulesFiles reads rules_files: (paths or globs, relative to the
// config's directory), each a YAML list of rules. It runs after rules:.
func decodeRulesFiles(d *decoder, c *Config, top *fields) {
	var patterns []string
	if !top.strs("rules_files", &patterns, nil) {
		return
	}
	for i, pat := range patterns {
		ip := indexPath("rules_files", i)
		at := &yaml.Node{Line: d.pos[ip].Line, Column: d.pos[ip].Col}
		matches, err := filepath.Glob(d.abs(pat))
		if err != nil {
			d.errorf(at, ip, "bad pattern %q: %v", pat, err)
			continue
		}
		if len(matches) == 0 {
			d.errorf(at, ip, "%s: no such file", pat)
			continue
		}
		slices.Sort(matches)
		for _, m := range matches {
			// Name the file as written relative to the config, like the
			// config itself is named.
			name := m
			if rel, err := filepath.Rel(d.abs("."), m); err == nil && !strings.HasPrefix(rel, "..") {
				name = filepath.Join(filepath.Dir(d.file), rel)
			}
			c.RulesFiles = append(c.RulesFiles, name)
			d.rulesFile(c, m, name)
		}
	}
}

func (d *decoder) rulesFile(c *Config, path, name string) {
	sub := &decoder{file: name, baseDir: d.baseDir, env: d.env, pos: map[string]position{}, failed: map[string]bool{}, envRefs: d.envRefs}
	defer func() { d.problems = append(d.problems, sub.problems...) }()
	data, err := os.ReadFile(path)
	if err != nil {
		sub.errorf(nil, "", "read rules file: %v", errors.Unwrap(err))
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		sub.syntaxError(err)
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = deref(root.Content[0])
	}
	if isNull(root) || root.Kind == yaml.DocumentNode {
		return // an empty file: no rules
	}
	if root.Kind != yaml.SequenceNode {
		sub.errorf(root, "", "a rules file is a list of rules (- id: ...), got %s", describe(root))
		return
	}
	for i, it := range root.Content {
		it = deref(it)
		p := indexPath("rules", i)
		sub.pos[p] = position{it.Line, it.Column}
		sub.rule(c, it, p)
	}
}

// rule decodes one rule: keys are checked per trigger, condition and
// action kind (with "did you mean" hints), then the values are decoded
// into spec.Rule. The checks that need the whole rule set run in
// Validate.
func (d *decoder) rule(c *Config, n *yaml.Node, path string) {
	if isNull(n) {
		d.errorf(n, path, "empty rule; it needs at least an id, triggers and actions")
		return
	}
	f := d.mapping(nil, n, path, ruleKeys)
	if f == nil {
		return
	}
	before := len(d.problems)
	good := true
	good = d.kindList(f, "triggers", "trigger", spec.TriggerKeys, spec.TriggerKinds, nil) && good
	good = d.kindList(f, "conditions", "condition", spec.ConditionKeys, spec.ConditionKinds, []string{"and", "or", "not"}) && good
	good = d.kindList(f, "actions", "action", spec.ActionKeys, spec.ActionKinds, nil) && good
	var r spec.Rule
	if err := n.Decode(&r); err != nil {
		d.yamlTypeErrors(err, path)
	}
	if !good {
		d.failed[path] = true
	}
	if len(d.problems) > before {
		// Keys of the rule itself were wrong: its checks would only repeat
		// them (a misspelt key reads as a missing one).
		for _, p := range d.problems[before:] {
			if parentPath(p.Path) == path {
				d.failed[path] = true
			}
		}
	}
	c.Rules = append(c.Rules, r)
	c.rulesSrc = append(c.rulesSrc, ruleSource{file: d.file, path: path, pos: d.pos, failed: d.failed})
}

// kindList checks a list of mappings whose kind key (trigger:, condition:,
// action:) decides which other keys are allowed. nested names kinds that
// hold a conditions: list of their own.
func (d *decoder) kindList(f *fields, key, kindKey string, keys map[string][]string, kinds, nested []string) bool {
	items, ok := f.list(key)
	if !ok {
		return false
	}
	good := true
	for i, it := range items {
		ip := indexPath(f.p(key), i)
		if it.Kind != yaml.MappingNode {
			d.errorf(it, ip, "expected a mapping with %s: (one of %s), got %s", kindKey, strings.Join(kinds, ", "), describe(it))
			good = false
			continue
		}
		kind := ""
		for j := 0; j+1 < len(it.Content); j += 2 {
			if it.Content[j].Value == kindKey {
				kind = deref(it.Content[j+1]).Value
			}
		}
		allowed, known := keys[kind]
		if !known {
			// The kind itself is reported by the rule checks; allow every
			// key so that the one mistake is reported once.
			allowed = nil
			for _, ks := range keys {
				allowed = append(allowed, ks...)
			}
		}
		before := len(d.problems)
		sub := d.mapping(nil, it, ip, allowed)
		if sub == nil {
			good = false
			continue
		}
		if len(d.problems) > before {
			d.failed[ip] = true
		}
		if slices.Contains(nested, kind) {
			good = d.kindList(sub, "conditions", kindKey, keys, kinds, nested) && good
		}
	}
	return good
}

var yamlTypeLineRe = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlTypeErrors reports yaml.v3's decode errors at their lines.
func (d *decoder) yamlTypeErrors(err error, path string) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		d.errorf(nil, path, "%v", err)
		return
	}
	for _, e := range te.Errors {
		if m := yamlTypeLineRe.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			msg := strings.Replace(m[2], "cannot unmarshal", "cannot read", 1)
			// The key written on that line names the problem.
			at, col := path, 0
			for p, pos := range d.pos {
				if pos.Line == line && strings.HasPrefix(p, path) && len(p) > len(at) {
					at, col = p, pos.Col
				}
			}
			if d.failed[at] {
				continue // already said, better, while checking the shape
			}
			d.problems = append(d.problems, Problem{File: d.file, Line: line, Col: col, Path: at, Msg: msg})
			d.failed[at] = true
			continue
		}
		d.errorf(nil, path, "%s", e)
		d.failed[path] = true
	}
}

// rules checks the rule set as a whole: templates, regular expressions,
// cron specs, chats, ids and calls. Problems point at the file and line
// each rule was written in.
func (v *validator) rules() {
	c := v.c
	if len(c.Rules) == 0 {
		return
	}
	_, problems := spec.Compile("rules", c.Rules)
	for _, p := range problems {
		file, local, pos := v.ruleLocation(p.Path)
		if v.ruleFailed(p.Path, local) {
			continue
		}
		pr := Problem{File: file, Line: pos.Line, Col: pos.Col, Path: local, Msg: p.Msg}
		if p.Warning {
			c.Warnings = append(c.Warnings, pr)
		} else {
			v.problems = append(v.problems, pr)
		}
	}
	for i, p := range c.Plugins {
		if p.Name == RulesPluginName && p.Builtin != RulesPluginName {
			v.errorf(indexPath("plugins", i)+".name", "%q is the plugin that runs the rules: section; name this plugin differently", RulesPluginName)
		}
	}
	set, _ := spec.Compile("rules", c.Rules)
	if names := spec.NeedsOf(set).Usernames; len(names) > 0 {
		file, local, pos := v.ruleLocation("rules")
		c.Warnings = append(c.Warnings, Problem{File: file, Line: pos.Line, Col: pos.Col, Path: local,
			Msg: fmt.Sprintf("%s resolved when the runner connects (validate works offline); a rule whose chat does not resolve is logged at start and its action fails",
				plural(names, "is", "are"))})
	}
}

// ruleFailed reports whether decoding already complained about path or an
// ancestor.
func (v *validator) ruleFailed(path, local string) bool {
	var i int
	if _, err := fmt.Sscanf(path, "rules[%d]", &i); err != nil || i < 0 || i >= len(v.c.rulesSrc) {
		return false
	}
	failed := v.c.rulesSrc[i].failed
	for q := local; q != ""; q = parentPath(q) {
		if failed[q] {
			return true
		}
	}
	return false
}

func plural(names []string, one, many string) string {
	if len(names) == 1 {
		return names[0] + " is"
	}
	return strings.Join(names, ", ") + " " + many
}

// ruleLocation maps a path of the combined rule list ("rules[7].x") to the
// file, the path in that file and the position.
func (v *validator) ruleLocation(path string) (string, string, position) {
	c := v.c
	var i int
	rest := ""
	if _, err := fmt.Sscanf(path, "rules[%d]", &i); err != nil || i < 0 || i >= len(c.rulesSrc) {
		if len(c.rulesSrc) == 0 {
			return c.File, path, v.at(path)
		}
		src := c.rulesSrc[0]
		return src.file, path, lookup(src.pos, src.path)
	}
	rest = strings.TrimPrefix(path, fmt.Sprintf("rules[%d]", i))
	src := c.rulesSrc[i]
	local := src.path + rest
	return src.file, local, lookup(src.pos, local)
}

func lookup(pos map[string]position, path string) position {
	for p := path; p != ""; p = parentPath(p) {
		if at, ok := pos[p]; ok {
			return at
		}
	}
	return position{}
}

// RulesPlugin returns the plugin entry that runs the config's rules: the
// builtin "rules" plugin, its config the rules as JSON (spec.Config), its
// permissions exactly the actions and chats the rules use, and its events
// the kinds their triggers listen to. ok is false when the config has no
// enabled rules. The runner appends it to the configured plugins.
func RulesPlugin(cfg *Config) (p Plugin, ok bool) {
	if !slices.ContainsFunc(cfg.Rules, func(r spec.Rule) bool { return !r.Disabled }) {
		return Plugin{}, false
	}
	set, _ := spec.Compile("rules", cfg.Rules)
	needs := spec.NeedsOf(set)
	p = defaultPlugin(cfg.Limits.Send.Plugin)
	p.Name, p.Builtin = RulesPluginName, RulesPluginName
	data, err := json.Marshal(spec.Config{Rules: cfg.Rules})
	if err == nil {
		var n yaml.Node
		if yaml.Unmarshal(data, &n) == nil && len(n.Content) == 1 {
			p.Config = n.Content[0]
		}
	}
	for _, a := range needs.Actions {
		p.Permissions.Actions = append(p.Permissions.Actions, Action(a))
	}
	for _, s := range needs.Chats {
		p.Permissions.Chats = append(p.Permissions.Chats, chatRefOf(s))
	}
	p.Events = needs.Events
	return p, true
}

// chatRefOf converts a spec chat reference (already checked) to the
// config's.
func chatRefOf(s string) ChatRef {
	switch {
	case strings.HasPrefix(s, "@"):
		return ChatRef{Username: strings.ToLower(s[1:])}
	case contains(chatKinds, s):
		return ChatRef{Kind: s}
	}
	id, _ := strconv.ParseInt(s, 10, 64)
	return ChatRef{ID: id}
}
