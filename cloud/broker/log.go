package broker

import (
	"context"
	"log/slog"
)

// quietHandler passes mochi's log records on, except that the per-connection
// errors it logs with an empty message at warning level (a client closing
// its connection, a failed login already reported by the access hook), and
// the storage hook's complaint about a fresh store having no system record
// yet, are lowered to debug.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	switch {
	case r.Message == "" && r.Level == slog.LevelWarn:
		r.Message = "client connection ended"
	case r.Message == "failed to get data":
		r.Message = "nothing stored yet"
	default:
		return h.Handler.Handle(ctx, r)
	}
	if !h.Handler.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	r.Level = slog.LevelDebug
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}

func mochiLogger(l *slog.Logger) *slog.Logger {
	return slog.New(quietHandler{l.Handler()})
}
