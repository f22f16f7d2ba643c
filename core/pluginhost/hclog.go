package pluginhost

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHCLog adapts the runner's zap logger to the hclog.Logger go-plugin
// wants. go-plugin logs its own lifecycle messages through it and re-logs
// every hclog JSON line the plugin writes on stderr through a Named child;
// the child keeps the plugin's levels, while go-plugin's own chatter below
// warnings is demoted to debug.
type zapHCLog struct {
	z          *zap.Logger
	name       string
	fromPlugin bool
	implied    []any
}

var _ hclog.Logger = (*zapHCLog)(nil)

func newZapHCLog(z *zap.Logger) *zapHCLog { return &zapHCLog{z: z} }

func (l *zapHCLog) Log(level hclog.Level, msg string, args ...any) {
	lvl := zapLevel(level)
	if !l.fromPlugin && lvl < zapcore.WarnLevel {
		lvl = zapcore.DebugLevel
	}
	ce := l.z.Check(lvl, msg)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, (len(args)+len(l.implied))/2+1)
	if l.fromPlugin {
		fields = append(fields, zap.String("source", "plugin"))
	}
	fields = appendKV(fields, l.implied)
	fields = appendKV(fields, args)
	ce.Write(fields...)
}

func appendKV(fields []zap.Field, args []any) []zap.Field {
	for i := 0; i+1 < len(args); i += 2 {
		key := fmt.Sprint(args[i])
		if key == "timestamp" {
			// zap stamps its own time; the plugin's copy adds nothing.
			continue
		}
		fields = append(fields, zap.Any(key, args[i+1]))
	}
	if len(args)%2 == 1 {
		fields = append(fields, zap.Any("extra", args[len(args)-1]))
	}
	return fields
}

func zapLevel(l hclog.Level) zapcore.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	}
	return zapcore.InfoLevel
}

func (l *zapHCLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHCLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHCLog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *zapHCLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHCLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *zapHCLog) IsTrace() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHCLog) IsDebug() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHCLog) IsInfo() bool  { return l.z.Core().Enabled(zapcore.InfoLevel) }
func (l *zapHCLog) IsWarn() bool  { return l.z.Core().Enabled(zapcore.WarnLevel) }
func (l *zapHCLog) IsError() bool { return l.z.Core().Enabled(zapcore.ErrorLevel) }

func (l *zapHCLog) ImpliedArgs() []any { return l.implied }

func (l *zapHCLog) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(append([]any(nil), l.implied...), args...)
	return &c
}

func (l *zapHCLog) Name() string { return l.name }

// Named is how go-plugin marks the logger it re-logs plugin stderr with.
func (l *zapHCLog) Named(name string) hclog.Logger {
	c := *l
	c.fromPlugin = true
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (l *zapHCLog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	c.fromPlugin = true
	return &c
}

// SetLevel is a no-op: the runner's zap config owns the level.
func (l *zapHCLog) SetLevel(hclog.Level) {}

// GetLevel reports the most verbose level zap lets through, so go-plugin
// does not parse lines that would be dropped anyway.
func (l *zapHCLog) GetLevel() hclog.Level {
	switch {
	case l.IsDebug():
		return hclog.Trace
	case l.IsInfo():
		return hclog.Info
	case l.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}

func (l *zapHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zapHCLog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &lineWriter{log: func(line string) { l.Info(line) }}
}

// lineWriter calls log once per complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	log func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(w.buf[:i]), "\r"); line != "" {
			w.log(line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
