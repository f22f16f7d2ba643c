package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// SHA256File returns the hex sha256 of the plugin binary at path, checking
// that it is an executable regular file.
func SHA256File(path string) (string, error) { return fileSHA256(path) }

// PinPluginSHA256 writes sum as the sha256 of the plugin called name into
// the config file at path, keeping its comments and layout. The file is
// replaced atomically with the same permissions.
func PinPluginSHA256(path, name, sum string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	out, err := SetPluginSHA256(data, name, sum)
	if err != nil {
		return fmt.Errorf("pin plugin %s in %s: %w", name, path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".pin-*")
	if err != nil {
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pin plugin %s: %w", name, err)
	}
	return nil
}

// SetPluginSHA256 returns data with the sha256 of the plugin called name
// set to sum. It patches lines rather than re-encoding, so comments, key
// order, quoting and blank lines stay as the user wrote them. Only
// block-style plugin entries can be patched.
func SetPluginSHA256(data []byte, name, sum string) ([]byte, error) {
	sum = strings.ToLower(sum)
	if !sha256Re.MatchString(sum) {
		return nil, fmt.Errorf("sha256 must be 64 hexadecimal characters, got %q", sum)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the config is not a YAML mapping")
	}
	plugins := mappingValue(doc.Content[0], "plugins")
	if plugins == nil || plugins.Kind != yaml.SequenceNode {
		return nil, errors.New("the config has no plugins list")
	}
	var item *yaml.Node
	for _, it := range plugins.Content {
		if n := mappingValue(it, "name"); n != nil && n.Value == name {
			item = it
			break
		}
	}
	if item == nil {
		return nil, fmt.Errorf("no plugin named %q", name)
	}
	if item.Style&yaml.FlowStyle != 0 || plugins.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("plugin %q is written in flow style ({...}); add sha256: %s to it by hand", name, sum)
	}
	if mappingValue(item, "path") == nil {
		return nil, fmt.Errorf("plugin %q has no path; only external plugins are pinned", name)
	}

	nl := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		nl = "\r\n"
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")

	if v := mappingValue(item, "sha256"); v != nil {
		k := keyOf(item, "sha256")
		line := []rune(lines[k.Line-1])
		switch {
		case v.Kind == yaml.ScalarNode && v.Value == "" && v.ShortTag() == "!!null":
			// "sha256:" with nothing after it.
			lines[k.Line-1] = string(line[:k.Column-1]) + "sha256: " + sum + commentSuffix(v.LineComment)
		case v.Kind == yaml.ScalarNode && v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && v.Line == k.Line:
			lines[k.Line-1] = string(line[:v.Column-1]) + sum + commentSuffix(v.LineComment)
		default:
			return nil, fmt.Errorf("plugin %q: sha256 is not a one-line value; fix it by hand", name)
		}
	} else {
		// Insert after the path line, aligned with the other keys.
		pk := keyOf(item, "path")
		pv := mappingValue(item, "path")
		if pv.Line != pk.Line {
			return nil, fmt.Errorf("plugin %q: path spans several lines; add sha256: %s by hand", name, sum)
		}
		indent := strings.Repeat(" ", keyOf(item, "name").Column-1)
		lines = append(lines[:pk.Line], append([]string{indent + "sha256: " + sum}, lines[pk.Line:]...)...)
	}
	out := []byte(strings.Join(lines, nl))

	// Check the patch did what it meant to, and nothing else.
	var check yaml.Node
	if err := yaml.Unmarshal(out, &check); err != nil {
		return nil, fmt.Errorf("patched config does not parse (%v); file left unchanged", err)
	}
	got := ""
	for _, it := range mappingValue(check.Content[0], "plugins").Content {
		if n := mappingValue(it, "name"); n != nil && n.Value == name {
			if v := mappingValue(it, "sha256"); v != nil {
				got = v.Value
			}
		}
	}
	if got != sum {
		return nil, errors.New("patching sha256 failed; file left unchanged")
	}
	return out, nil
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return " " + c
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if k := keyOf(m, key); k != nil {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i] == k {
				return deref(m.Content[i+1])
			}
		}
	}
	return nil
}

func keyOf(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}
