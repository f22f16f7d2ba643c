package logging

import (
	"context"

	"github.com/gotd/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Gotd adapts a zap logger to gotd's logging port, so the MTProto client
// and the updates manager log through the runner's redacting logger.
func Gotd(l *zap.Logger) log.Logger {
	if l == nil {
		return log.Nop
	}
	return gotdLog{l: l}
}

type gotdLog struct{ l *zap.Logger }

func gotdLevel(level log.Level) zapcore.Level {
	switch {
	case level < log.LevelInfo:
		return zapcore.DebugLevel
	case level < log.LevelWarn:
		return zapcore.InfoLevel
	case level < log.LevelError:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

func (g gotdLog) Enabled(_ context.Context, level log.Level) bool {
	return g.l.Core().Enabled(gotdLevel(level))
}

func (g gotdLog) Log(_ context.Context, level log.Level, msg string, attrs ...log.Attr) {
	ce := g.l.Check(gotdLevel(level), msg)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, len(attrs))
	for _, a := range attrs {
		fields = append(fields, gotdField(a))
	}
	ce.Write(fields...)
}

func gotdField(a log.Attr) zap.Field {
	v := a.Value
	switch v.Kind() {
	case log.KindString:
		return zap.String(a.Key, v.String())
	case log.KindInt64:
		return zap.Int64(a.Key, v.Int64())
	case log.KindUint64:
		return zap.Uint64(a.Key, v.Uint64())
	case log.KindFloat64:
		return zap.Float64(a.Key, v.Float64())
	case log.KindBool:
		return zap.Bool(a.Key, v.Bool())
	case log.KindDuration:
		return zap.Duration(a.Key, v.Duration())
	case log.KindTime:
		return zap.Time(a.Key, v.Time())
	case log.KindError:
		return zap.NamedError(a.Key, v.Error())
	default:
		return zap.Any(a.Key, v.Any())
	}
}
