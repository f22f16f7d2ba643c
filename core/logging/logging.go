package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tgrunner/tgrunner/core/config"
)

// Options are what the config's log section does not say.
type Options struct {
	// Output receives the log when the config names no file. Nil means
	// os.Stderr.
	Output io.Writer
	// Secrets are masked from the start, typically cfg.SecretValues().
	Secrets []string
}

// Logger is the runner's logger with its redactor, which login code uses
// to register codes and keys as they appear.
type Logger struct {
	*zap.Logger
	Redactor *Redactor
	file     *os.File
}

// New builds the logger described by cfg.
func New(cfg config.Log, opts Options) (*Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", cfg.Level, err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "time"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	switch cfg.Format {
	case config.FormatJSON:
		enc = zapcore.NewJSONEncoder(encCfg)
	case config.FormatText, "":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log format %q: expected text or json", cfg.Format)
	}

	l := &Logger{Redactor: NewRedactor(cfg.Redact)}
	l.Redactor.Register(opts.Secrets...)

	var out zapcore.WriteSyncer
	switch {
	case cfg.File != "":
		if err := os.MkdirAll(filepath.Dir(cfg.File), 0o700); err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		l.file = f
		out = zapcore.Lock(f)
	case opts.Output != nil:
		out = zapcore.AddSync(opts.Output)
	default:
		out = zapcore.Lock(os.Stderr)
	}
	core := NewRedactingCore(zapcore.NewCore(enc, out, level), l.Redactor)
	l.Logger = zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr)))
	return l, nil
}

// Close flushes the log and closes its file, if any.
func (l *Logger) Close() error {
	_ = l.Sync() // stderr cannot always be synced; that is not an error
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
