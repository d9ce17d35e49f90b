// Package logging writes the gateway's logs as one JSON object per line, with
// the key names of the original gateway's structlog setup (timestamp, level,
// logger, event), so that existing log queries keep working.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"
)

// LevelWarning and LevelCritical complete slog's levels with the names the
// original accepted in LOG_LEVEL.
const (
	LevelWarning  = slog.LevelWarn
	LevelCritical = slog.LevelError + 4
)

// ParseLevel maps a LOG_LEVEL name (DEBUG, INFO, WARNING, ERROR, CRITICAL,
// any case) to a slog level; an unknown name means INFO.
func ParseLevel(name string) slog.Level {
	switch strings.ToUpper(name) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING":
		return LevelWarning
	case "ERROR":
		return slog.LevelError
	case "CRITICAL":
		return LevelCritical
	}
	return slog.LevelInfo
}

// New returns a logger that writes JSON lines at or above level to w:
// "timestamp" (ISO 8601, UTC, microseconds), "level" (lower case),
// "event" (the message), then the attributes. Each record is written with
// a single Write call, so w may be a Buffer.
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(newHandler(w, level))
}

func levelName(l slog.Level) string {
	switch {
	case l >= LevelCritical:
		return "critical"
	case l >= slog.LevelError:
		return "error"
	case l >= LevelWarning:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// Named returns a child logger whose lines carry logger=name, the role
// structlog's logger names played in the original.
func Named(l *slog.Logger, name string) *slog.Logger {
	return l.With(slog.String("logger", name))
}

// LogAttrs writes a record of attrs at level, stamped t, to l, if l is
// enabled for level: what l.LogAttrs does, without looking up the caller
// and, when l writes through this package's handler, without building a
// slog.Record, whose attributes past the fifth cost an allocation and two
// copies. It is for the one log call made on every request, the access
// line.
func LogAttrs(l *slog.Logger, t time.Time, level slog.Level, msg string, attrs ...slog.Attr) error {
	ctx := context.Background()
	h := l.Handler()
	if !h.Enabled(ctx, level) {
		return nil
	}
	if ours, ok := h.(*handler); ok {
		return ours.handleAttrs(t, level, msg, attrs)
	}
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return h.Handle(ctx, r)
}
