package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// section decodes one top-level key. Later issues add metrics: and
// accounts: as further entries; until then they are unknown keys.
type section struct {
	key    string
	decode func(d *decoder, c *Config, f *fields)
}

var sections = []section{
	{"version", decodeVersion},
	{"account", decodeAccount},
	{"server", decodeServer},
	{"storage", decodeStorage},
	{"log", decodeLog},
	{"limits", decodeLimits},
	{"plugins", decodePlugins},
	{"ops", decodeOps},
	{"rules", decodeRules},
	// After rules: the files' rules follow the inline ones.
	{"rules_files", decodeRulesFiles},
	// After limits and plugins: an account inherits them.
	{"accounts", decodeAccounts},
}

// plannedSections are top-level keys later versions add; a config written
// for such a version gets a clearer message than a typo hint.
var plannedSections = map[string]string{
	"metrics": "metrics: is not supported by this version yet",
}

// decoder walks a yaml.Node tree, filling a Config and collecting problems.
type decoder struct {
	file    string
	baseDir string
	env     func(string) (string, bool)

	problems []Problem
	// broken is set when the document as a whole could not be read; the
	// validation pass would only add noise then.
	broken bool
	pos    map[string]position
	// failed holds key paths whose value was rejected while decoding, so that
	// Validate does not add a second, vaguer complaint about the same key.
	failed  map[string]bool
	envRefs map[string]string
}

func newDecoder(file string, opts LoadOptions) *decoder {
	env := opts.LookupEnv
	if env == nil {
		env = os.LookupEnv
	}
	base := opts.BaseDir
	if base == "" {
		base = "."
	}
	return &decoder{
		file:    file,
		baseDir: base,
		env:     env,
		pos:     map[string]position{},
		failed:  map[string]bool{},
		envRefs: map[string]string{},
	}
}

// errorf records a problem at node n (nil: no position) and marks path as
// failed.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
	if path != "" {
		d.failed[path] = true
	}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.ShortTag() == "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// decodeDocument parses data and decodes every section into c.
func (d *decoder) decodeDocument(data []byte, c *Config) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		d.broken = true
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "", "the file is empty; see configs/example.yaml")
			return
		}
		d.syntaxError(err)
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(&extra, "", "a second YAML document (---) is not supported; keep one document per file")
	} else if !errors.Is(err, io.EOF) {
		d.broken = true
		d.syntaxError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	keys := make([]string, len(sections))
	for i, s := range sections {
		keys[i] = s.key
	}
	top := d.mapping(nil, deref(root), "", keys)
	if top == nil || isNull(deref(root)) {
		d.broken = true
		if top != nil {
			d.errorf(nil, "", "the file has no settings; see configs/example.yaml")
		}
		return
	}
	for _, s := range sections {
		s.decode(d, c, top)
	}
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into positioned problems.
func (d *decoder) syntaxError(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "yaml: unmarshal errors:" {
			continue
		}
		line = strings.TrimPrefix(line, "line ")
		if m := yamlLineRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			d.problems = append(d.problems, Problem{File: d.file, Line: n, Msg: "invalid YAML: " + m[2]})
			continue
		}
		d.problems = append(d.problems, Problem{File: d.file, Msg: "invalid YAML: " + strings.TrimPrefix(line, "yaml: ")})
	}
}

// fields is a mapping being decoded: its values by key, with unknown and
// duplicate keys already reported.
type fields struct {
	d    *decoder
	path string
	at   *yaml.Node // where to report missing keys: the mapping's own key, or the mapping
	vals map[string]*yaml.Node
}

// mapping checks that n is a mapping with only known keys. A null n (the
// section is absent or empty) gives an empty fields; a non-mapping gives nil
// after reporting it. keyNode is the mapping's key in its parent, if any.
func (d *decoder) mapping(keyNode, n *yaml.Node, path string, known []string) *fields {
	at := keyNode
	if at == nil {
		at = n
	}
	f := &fields{d: d, path: path, at: at, vals: map[string]*yaml.Node{}}
	if isNull(n) {
		return f
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return nil
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain words, got %s", describe(k))
			continue
		}
		key := k.Value
		kp := joinPath(path, key)
		if key == "<<" {
			d.errorf(k, path, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		if prev, dup := seen[key]; dup {
			d.errorf(k, kp, "duplicate key (first set on line %d)", prev.Line)
			continue
		}
		seen[key] = k
		if !contains(known, key) {
			msg := "unknown key"
			if planned, ok := plannedSections[key]; ok && path == "" {
				msg += "; " + planned
			} else if s := suggest(key, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.errorf(k, kp, "%s", msg)
			continue
		}
		d.pos[kp] = position{k.Line, k.Column}
		f.vals[key] = v
	}
	return f
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to key, if it is close enough to be
// a typo.
func suggest(key string, known []string) string {
	best, bestDist := "", 1<<30
	for _, k := range known {
		dist := levenshtein(strings.ToLower(key), k)
		if dist < bestDist {
			best, bestDist = k, dist
		}
	}
	limit := 2
	if len(key) > 8 {
		limit = 3
	}
	if bestDist <= limit || (len(key) >= 3 && strings.HasPrefix(best, strings.ToLower(key))) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (f *fields) p(key string) string { return joinPath(f.path, key) }

// get returns the value of key, or nil when absent or null (unset).
func (f *fields) get(key string) *yaml.Node {
	v := f.vals[key]
	if isNull(v) {
		return nil
	}
	return v
}

func (f *fields) has(key string) bool { return f.get(key) != nil }

// sub decodes a nested mapping.
func (f *fields) sub(key string, known ...string) *fields {
	return f.d.mapping(f.keyNode(key), f.vals[key], f.p(key), known)
}

// keyNode returns a node positioned at key, for nested mappings' missing-key
// reports.
func (f *fields) keyNode(key string) *yaml.Node {
	pos, ok := f.d.pos[f.p(key)]
	if !ok {
		return f.at
	}
	return &yaml.Node{Line: pos.Line, Column: pos.Col}
}

func (f *fields) scalar(key, expected string) (*yaml.Node, bool) {
	v := f.get(key)
	if v == nil {
		return nil, false
	}
	if v.Kind != yaml.ScalarNode {
		f.d.errorf(v, f.p(key), "expected %s, got %s", expected, describe(v))
		return nil, false
	}
	return v, true
}

// str reads any scalar as text; YAML would otherwise turn a phone number
// or a hex hash into a number.
func (f *fields) str(key string, dst *string) bool {
	v, ok := f.scalar(key, "a string")
	if ok {
		*dst = v.Value
	}
	return ok
}

func (f *fields) integer(key string, dst *int, lo, hi int) bool {
	v, ok := f.scalar(key, "an integer")
	if !ok {
		return false
	}
	var n int64
	if v.ShortTag() != "!!int" || v.Decode(&n) != nil {
		f.d.errorf(v, f.p(key), "expected an integer, got %s", describe(v))
		return false
	}
	if n < int64(lo) || n > int64(hi) {
		f.d.errorf(v, f.p(key), "must be between %d and %d, got %d", lo, hi, n)
		return false
	}
	*dst = int(n)
	return true
}

func (f *fields) boolean(key string, dst *bool) bool {
	v, ok := f.scalar(key, "true or false")
	if !ok {
		return false
	}
	if v.ShortTag() != "!!bool" {
		f.d.errorf(v, f.p(key), "expected true or false, got %s", describe(v))
		return false
	}
	*dst = v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
	return true
}

func (f *fields) duration(key string, dst *time.Duration, lo, hi time.Duration) bool {
	v, ok := f.scalar(key, "a duration")
	if !ok {
		return false
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		if v.ShortTag() == "!!int" {
			f.d.errorf(v, f.p(key), "expected a duration such as \"%ss\", got %s (add a unit: ms, s, m or h)", v.Value, v.Value)
		} else {
			f.d.errorf(v, f.p(key), "expected a duration such as \"90s\", \"5m\" or \"24h\", got %s", describe(v))
		}
		return false
	}
	if d < lo || d > hi {
		f.d.errorf(v, f.p(key), "must be between %s and %s, got %s", lo, hi, d)
		return false
	}
	*dst = d
	return true
}

func (f *fields) rate(key string, dst *Rate) bool {
	v, ok := f.scalar(key, `a rate such as "20/min"`)
	if !ok {
		return false
	}
	r, err := ParseRate(v.Value)
	if err != nil {
		f.d.errorf(v, f.p(key), "%v", err)
		return false
	}
	*dst = r
	return true
}

func (f *fields) enum(key string, dst *string, allowed []string) bool {
	v, ok := f.scalar(key, "one of "+strings.Join(allowed, ", "))
	if !ok {
		return false
	}
	if !contains(allowed, v.Value) {
		msg := fmt.Sprintf("expected one of %s; got %s", strings.Join(allowed, ", "), describe(v))
		if s := suggest(v.Value, allowed); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		f.d.errorf(v, f.p(key), "%s", msg)
		return false
	}
	*dst = v.Value
	return true
}

// list returns the items of a sequence (nil and true when unset).
func (f *fields) list(key string) ([]*yaml.Node, bool) {
	v := f.get(key)
	if v == nil {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		f.d.errorf(v, f.p(key), "expected a list, got %s", describe(v))
		return nil, false
	}
	items := make([]*yaml.Node, len(v.Content))
	for i, it := range v.Content {
		items[i] = deref(it)
		f.d.pos[indexPath(f.p(key), i)] = position{items[i].Line, items[i].Column}
	}
	return items, true
}

// strs reads a list of scalars; check, if not nil, vets each item.
func (f *fields) strs(key string, dst *[]string, check func(n *yaml.Node, path, s string) bool) bool {
	items, ok := f.list(key)
	if !ok {
		return false
	}
	out := make([]string, 0, len(items))
	good := true
	for i, it := range items {
		ip := indexPath(f.p(key), i)
		if it.Kind != yaml.ScalarNode || isNull(it) {
			f.d.errorf(it, ip, "expected a string, got %s", describe(it))
			good = false
			continue
		}
		if check != nil && !check(it, ip, it.Value) {
			good = false
			continue
		}
		out = append(out, it.Value)
	}
	if good && len(out) > 0 {
		*dst = out
	}
	return good
}

var envRefRe = regexp.MustCompile(`\$\{([^}]*)\}`)
var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${NAME} references in s from the environment. "$$" stands
// for a literal "$".
func (d *decoder) expand(n *yaml.Node, path, s string) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	ok := true
	const dollar = "\x00dollar\x00"
	s = strings.ReplaceAll(s, "$$", dollar)
	out := envRefRe.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if !envNameRe.MatchString(name) {
			d.errorf(n, path, "%q is not a valid environment variable reference; use ${NAME} with letters, digits and _", ref)
			ok = false
			return ""
		}
		v, set := d.env(name)
		if !set {
			d.errorf(n, path, "environment variable %s is not set", name)
			ok = false
			return ""
		}
		return v
	})
	return strings.ReplaceAll(out, dollar, "$"), ok
}

// filePath reads a path field: ${NAME} references are expanded and a
// relative path is taken relative to the config file's directory.
func (f *fields) filePath(key string, dst *string) bool {
	var s string
	if !f.str(key, &s) {
		return false
	}
	v := f.get(key)
	s, ok := f.d.expand(v, f.p(key), s)
	if !ok {
		return false
	}
	if s == "" {
		f.d.errorf(v, f.p(key), "must not be empty")
		return false
	}
	*dst = f.d.abs(s)
	return true
}

func (d *decoder) abs(p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.baseDir, p)
	}
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return filepath.Clean(p)
}

// secret reads key (a literal or a whole-value ${NAME}) or key_file (a file
// whose trimmed contents are the value). Error messages never include the
// value.
func (f *fields) secret(key string, dst *Secret) {
	fileKey := key + "_file"
	path := f.p(key)
	if f.has(key) && f.has(fileKey) {
		f.d.errorf(f.get(fileKey), f.p(fileKey), "set either %s or %s, not both", key, fileKey)
		f.d.failed[path] = true
		return
	}
	switch {
	case f.has(key):
		v, ok := f.scalar(key, "a string")
		if !ok {
			return
		}
		s := v.Value
		if m := envRefRe.FindStringSubmatch(s); m != nil && m[0] == s && envNameRe.MatchString(m[1]) {
			val, set := f.d.env(m[1])
			switch {
			case !set:
				f.d.errorf(v, path, "environment variable %s is not set", m[1])
			case strings.TrimSpace(val) == "":
				f.d.errorf(v, path, "environment variable %s is empty", m[1])
			default:
				*dst = Secret{value: strings.TrimSpace(val), source: SourceEnv, ref: m[1]}
				f.d.envRefs[m[1]] = path
			}
			return
		}
		if strings.Contains(s, "${") {
			f.d.errorf(v, path, "a secret may only be a whole ${NAME} reference, not text around one")
			return
		}
		*dst = Secret{value: s, source: SourceLiteral}
	case f.has(fileKey):
		var file string
		if !f.filePath(fileKey, &file) {
			f.d.failed[path] = true
			return
		}
		v := f.get(fileKey)
		val, err := readSecretFile(file)
		if err != nil {
			f.d.errorf(v, f.p(fileKey), "%v", err)
			f.d.failed[path] = true
			return
		}
		*dst = Secret{value: val, source: SourceFile, ref: file}
	}
}

// readSecretFile refuses files that others can read: a secret there is
// already leaked to every local user.
func readSecretFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: no such file", path)
		}
		return "", fmt.Errorf("%s: %v", path, errors.Unwrap(err))
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s: is a directory, expected a file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("%s: readable by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, errors.Unwrap(err))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: file is empty", path)
	}
	return s, nil
}

func decodeVersion(d *decoder, c *Config, top *fields) {
	var v int
	if top.integer("version", &v, 0, 1<<30) {
		if v != CurrentVersion {
			d.errorf(top.get("version"), "version", "this runner reads version %d; got %d", CurrentVersion, v)
			return
		}
		c.Version = v
	}
}
