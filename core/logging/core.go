package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewRedactingCore wraps core so that the message, the stack and every
// field are masked by r before they are encoded. Fields attached with
// With are masked when attached, with the secrets registered at that time.
func NewRedactingCore(core zapcore.Core, r *Redactor) zapcore.Core {
	return &redactingCore{Core: core, r: r}
}

type redactingCore struct {
	zapcore.Core
	r *Redactor
}

func (c *redactingCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactingCore{Core: c.Core.With(c.r.fields(fields)), r: c.r}
}

func (c *redactingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *redactingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = c.r.Redact(e.Message)
	e.Stack = c.r.Redact(e.Stack)
	return c.Core.Write(e, c.r.fields(fields))
}

// fields returns masked copies; the caller's slice is not modified.
func (r *Redactor) fields(in []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, 0, len(in))
	for _, f := range in {
		out = append(out, r.field(f)...)
	}
	return out
}

func (r *Redactor) field(f zapcore.Field) []zapcore.Field {
	switch f.Type {
	case zapcore.StringType:
		f.String = r.Redact(f.String)
		return []zapcore.Field{f}
	case zapcore.ByteStringType:
		return []zapcore.Field{zap.String(f.Key, r.Redact(string(f.Interface.([]byte))))}
	case zapcore.StringerType:
		return []zapcore.Field{zap.String(f.Key, r.Redact(safeString(f.Interface)))}
	case zapcore.ErrorType:
		err, _ := f.Interface.(error)
		msg := "<nil>"
		if err != nil {
			msg = safeError(err)
		}
		return []zapcore.Field{zap.String(f.Key, r.Redact(msg))}
	case zapcore.ReflectType:
		return []zapcore.Field{zap.Any(f.Key, r.redactValue(f.Interface))}
	case zapcore.ObjectMarshalerType, zapcore.ArrayMarshalerType:
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		return []zapcore.Field{zap.Any(f.Key, r.redactValue(enc.Fields[f.Key]))}
	case zapcore.InlineMarshalerType:
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		out := make([]zapcore.Field, 0, len(enc.Fields))
		for _, k := range sortedKeys(enc.Fields) {
			out = append(out, zap.Any(k, r.redactValue(enc.Fields[k])))
		}
		return out
	}
	// Numbers, bools, times, durations, namespaces, binary: nothing textual.
	return []zapcore.Field{f}
}

// safeString calls String, turning a panic into text as zap would.
func safeString(v any) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("PANIC=%v", p)
		}
	}()
	if v == nil {
		return "<nil>"
	}
	return v.(fmt.Stringer).String()
}

func safeError(err error) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("PANIC=%v", p)
		}
	}()
	return err.Error()
}
