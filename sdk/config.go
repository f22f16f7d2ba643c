package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
)

// ConfigError is a plugin config the plugin refuses. The runner gets it as
// gRPC INVALID_ARGUMENT with Error() as the message, so it names the key.
type ConfigError struct {
	// Field is the dotted path of the offending key ("" when it is the
	// whole document).
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "config: " + e.Reason
	}
	return fmt.Sprintf("config: %s: %s", e.Field, e.Reason)
}

// Validator is implemented by config types that check themselves after
// decoding. Return a *ConfigError to name the key.
type Validator interface {
	Validate() error
}

// Config is a typed plugin config, decoded from the plugin's section of the
// runner's config at every Configure (start and reload). Unknown keys are
// refused, naming the key.
type Config[T any] struct {
	defaults []byte
	v        atomic.Pointer[T]
}

type configDecoder interface {
	decode(raw []byte) (commit func() (rollback func()), err error)
}

// NewConfig registers a typed config with its defaults: keys absent from
// the runner's config keep their default values. If *T (or T) has a
// Validate() error method, it runs after decoding.
func NewConfig[T any](p *Plugin, defaults T) *Config[T] {
	b, err := json.Marshal(defaults)
	if err != nil {
		panic(fmt.Sprintf("sdk: NewConfig: defaults of %T do not encode as JSON: %v", defaults, err))
	}
	c := &Config[T]{defaults: b}
	v := defaults
	c.v.Store(&v)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.configs = append(p.configs, c)
	return c
}

// Get returns the config in force.
func (c *Config[T]) Get() T { return *c.v.Load() }

func (c *Config[T]) decode(raw []byte) (func() func(), error) {
	v := new(T)
	// Start from a deep copy of the defaults, so a decoded map or slice
	// never writes into them.
	if err := json.Unmarshal(c.defaults, v); err != nil {
		return nil, fmt.Errorf("config defaults: %w", err)
	}
	if err := decodeStrict(raw, v); err != nil {
		return nil, err
	}
	if err := validate(v); err != nil {
		return nil, err
	}
	return func() func() {
		old := c.v.Swap(v)
		return func() { c.v.Store(old) }
	}, nil
}

func validate(v any) error {
	val, ok := v.(Validator)
	if !ok {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
			val, ok = rv.Elem().Interface().(Validator)
		}
	}
	if !ok {
		return nil
	}
	err := val.Validate()
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce
	}
	return &ConfigError{Reason: err.Error()}
}

// DecodeConfig decodes the current config section into v (a pointer), with
// unknown keys refused. Use it from OnConfigure hooks or handlers when a
// typed Config does not fit.
func (p *Plugin) DecodeConfig(v any) error {
	if err := decodeStrict(p.settings.Load().ConfigJSON, v); err != nil {
		return err
	}
	return validate(v)
}

// decodeStrict decodes a JSON object into v, refusing unknown keys and
// naming the offending key in the error.
func decodeStrict(raw []byte, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return &ConfigError{Reason: "trailing data after the config object"}
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &ConfigError{Reason: fmt.Sprintf("got a JSON %s, want %s", typeErr.Value, typeName(typeErr.Type))}
		}
		return &ConfigError{Field: field, Reason: fmt.Sprintf("got a JSON %s, want %s", typeErr.Value, typeName(typeErr.Type))}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &ConfigError{Reason: "invalid JSON: it ends too early"}
	case errors.As(err, &syntaxErr):
		return &ConfigError{Reason: fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		// encoding/json names only the key; find where it is.
		var tree any
		if json.Unmarshal(raw, &tree) == nil {
			if path := unknownPath(reflect.TypeOf(v), tree, ""); path != "" {
				return &ConfigError{Field: path, Reason: "unknown key"}
			}
		}
		return &ConfigError{Field: key, Reason: "unknown key"}
	}
	return &ConfigError{Reason: err.Error()}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// unknownPath finds the first key of tree that t has no field for, as a
// dotted path (list indexes in brackets).
func unknownPath(t reflect.Type, tree any, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := tree.(map[string]any)
		if !ok {
			return ""
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				// encoding/json matches keys case-insensitively.
				for name, f := range fields {
					if strings.EqualFold(name, k) {
						ft, ok = f, true
						break
					}
				}
			}
			if !ok {
				return join(k)
			}
			if p := unknownPath(ft, obj[k], join(k)); p != "" {
				return p
			}
		}
	case reflect.Map:
		obj, ok := tree.(map[string]any)
		if !ok {
			return ""
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p := unknownPath(t.Elem(), obj[k], join(k)); p != "" {
				return p
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := tree.([]any)
		if !ok {
			return ""
		}
		for i, item := range list {
			if p := unknownPath(t.Elem(), item, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// jsonFields maps the JSON names of a struct's fields (embedded structs
// flattened) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, dup := out[k]; !dup {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
