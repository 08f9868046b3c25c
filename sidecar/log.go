package sidecar

import (
	"io"
	"log/slog"
)

// NewLogger returns the logger an agent process uses: text or JSON on w, at
// the configured level. Errors are logged by their message; at debug level
// they keep the stack traces cockroachdb/errors records.
func NewLogger(w io.Writer, lc LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if level > slog.LevelDebug {
		opts.ReplaceAttr = PlainErrors
	}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// PlainErrors is a slog ReplaceAttr that logs an error by its message. slog
// formats errors with %+v, which for cockroachdb/errors prints a stack trace
// per error: right for debugging, noise in an operator's log.
func PlainErrors(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindAny {
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, err.Error())
		}
	}
	return a
}
