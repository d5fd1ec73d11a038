package fasten

/*
#include <stdlib.h>
#include "fasten.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// Handler is a slog.Handler that writes the sys stream: each record becomes
// a log line with the context's request id and tenant, its attributes as
// fields (redacted by the engine like audit detail). Lines below the
// engine's FASTEN_SYS_LEVEL are dropped by the engine.
type Handler struct {
	f      *Fasten // nil: the Default engine at each call
	target string
	level  slog.Leveler
	attrs  []slog.Attr
	groups []string
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Target is the logger's name in the sys row (default "go").
	Target string
	// Level is the lowest level handed to the engine (default debug: the
	// engine's FASTEN_SYS_LEVEL decides).
	Level slog.Leveler
}

// NewHandler returns a Handler writing to f (nil: the Default engine).
func NewHandler(f *Fasten, opts *HandlerOptions) *Handler {
	h := &Handler{f: f, target: "go", level: slog.LevelDebug}
	if opts != nil {
		if opts.Target != "" {
			h.target = opts.Target
		}
		if opts.Level != nil {
			h.level = opts.Level
		}
	}
	return h
}

// Log is a slog.Logger on the Default engine's sys stream:
//
//	fasten.Log.Info("user_created", "user_id", "u-42")
//	fasten.Log.InfoContext(ctx, "user_created", "user_id", "u-42") // with ctx's request id
var Log = slog.New(NewHandler(nil, nil))

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), wrap(h.groups, attrs)...)
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.groups = append(append([]string{}, h.groups...), name)
	return &c
}

func wrap(groups []string, attrs []slog.Attr) []slog.Attr {
	for i := len(groups) - 1; i >= 0; i-- {
		args := make([]any, len(attrs))
		for j, a := range attrs {
			args[j] = a
		}
		attrs = []slog.Attr{slog.Group(groups[i], args...)}
	}
	return attrs
}

func attrValue(v slog.Value) any {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		m := map[string]any{}
		for _, a := range v.Group() {
			m[a.Key] = attrValue(a.Value)
		}
		return m
	case slog.KindTime:
		return v.Time().UTC().Format(time.RFC3339Nano)
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
		return v.Any()
	default:
		return v.Any()
	}
}

func level(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	default:
		return "debug"
	}
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	f := h.f
	if f == nil {
		if f = Default(); f == nil {
			return nil // no engine yet: nothing to write to
		}
	}
	fields := map[string]any{}
	for _, a := range h.attrs {
		fields[a.Key] = attrValue(a.Value)
	}
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		own = append(own, a)
		return true
	})
	for _, a := range wrap(h.groups, own) {
		fields[a.Key] = attrValue(a.Value)
	}
	text := ""
	if len(fields) > 0 {
		b, err := json.Marshal(fields)
		if err != nil {
			return err
		}
		text = string(b)
	}
	_, err := f.Log(ctx, LogLine{Level: level(r.Level), Target: h.target, Message: r.Message, FieldsJSON: text})
	return err
}

// LogLine is one line for the sys stream.
type LogLine struct {
	Level      string // trace, debug, info, warn, error
	Target     string // the logger's name
	Message    string
	FieldsJSON string // a JSON object, or ""
	RequestID  string // "": the context's
	Tenant     string // "": the context's
}

// Log writes a line to the sys stream; it returns whether the line passed
// FASTEN_SYS_LEVEL. It never blocks: under overload the stream sheds rows
// and counts them.
func (f *Fasten) Log(ctx context.Context, l LogLine) (bool, error) {
	if l.RequestID == "" {
		l.RequestID = RequestID(ctx)
	}
	if l.Tenant == "" {
		l.Tenant = Tenant(ctx)
	}
	engine, err := f.handle()
	if err != nil {
		return false, err
	}
	defer f.mu.RUnlock()
	buf := cstrs(l.Level, l.Target, l.Message, l.FieldsJSON, l.RequestID, l.Tenant)
	defer buf.free()
	var recorded C.bool
	err = call(func() C.int32_t { return C.fasten_log(engine, (*C.fasten_log_line)(buf.base), &recorded) })
	return bool(recorded), err
}
