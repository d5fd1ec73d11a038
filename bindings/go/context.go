package fasten

/*
#include <stdlib.h>
#include "fasten.h"
*/
import "C"

import (
	"context"
	"sync"
	"unsafe"
)

type scopeKey struct{}

// scope is what a context carries: the request id, and who acts for which
// tenant in it. Handlers below the middleware may still name the actor
// (SetActor), so that part is shared and locked.
type scope struct {
	requestID string
	method    string // how the request came in (mqtt …), for rows without one
	mu        sync.Mutex
	actor     string
	kind      string
	tenant    string
	target    string
}

func (s *scope) attribution() (actor, kind, tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actor, s.kind, s.tenant
}

func scopeOf(ctx context.Context) *scope {
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(scopeKey{}).(*scope)
	return s
}

// WithRequestID returns a context whose rows carry id. The engine checks the
// id (1-128 of [A-Za-z0-9._:-]) when a row uses it; CheckRequestID checks it
// now. The actor and tenant of an enclosing scope are kept.
func WithRequestID(ctx context.Context, id string) context.Context {
	s := &scope{requestID: id}
	if parent := scopeOf(ctx); parent != nil {
		s.method = parent.method
		s.actor, s.kind, s.tenant = parent.attribution()
	}
	return context.WithValue(ctx, scopeKey{}, s)
}

// RequestID is the context's request id, or "".
func RequestID(ctx context.Context) string {
	if s := scopeOf(ctx); s != nil {
		return s.requestID
	}
	return ""
}

// derive copies the context's scope so a change does not reach the parent.
func derive(ctx context.Context, f func(s *scope)) context.Context {
	s := &scope{}
	if parent := scopeOf(ctx); parent != nil {
		s.requestID, s.method = parent.requestID, parent.method
		s.actor, s.kind, s.tenant = parent.attribution()
	}
	f(s)
	return context.WithValue(ctx, scopeKey{}, s)
}

// WithActor returns a context whose rows name actor (of kind user,
// service, system …; "" for the engine's default) unless an event names
// its own.
func WithActor(ctx context.Context, actor, kind string) context.Context {
	return derive(ctx, func(s *scope) { s.actor, s.kind = actor, kind })
}

// WithTenant returns a context whose rows carry tenant.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return derive(ctx, func(s *scope) { s.tenant = tenant })
}

// Actor is the context's actor and its kind, or "".
func Actor(ctx context.Context) (actor, kind string) {
	if s := scopeOf(ctx); s != nil {
		actor, kind, _ = s.attribution()
	}
	return
}

// Tenant is the context's tenant, or "".
func Tenant(ctx context.Context) string {
	if s := scopeOf(ctx); s != nil {
		_, _, t := s.attribution()
		return t
	}
	return ""
}

// SetActor names who acts in the request ctx belongs to, for the rest of
// it: later rows, and the request's api row written by Middleware. It
// returns false, recording nothing, when ctx carries no request scope.
func SetActor(ctx context.Context, actor, kind string) bool {
	s := scopeOf(ctx)
	if s == nil {
		return false
	}
	s.mu.Lock()
	s.actor, s.kind = actor, kind
	s.mu.Unlock()
	return true
}

// SetTenant names the tenant of the request ctx belongs to, like SetActor.
func SetTenant(ctx context.Context, tenant string) bool {
	s := scopeOf(ctx)
	if s == nil {
		return false
	}
	s.mu.Lock()
	s.tenant = tenant
	s.mu.Unlock()
	return true
}

// SetTarget names whom or what the request is about, for its api row.
func SetTarget(ctx context.Context, target string) bool {
	s := scopeOf(ctx)
	if s == nil {
		return false
	}
	s.mu.Lock()
	s.target = target
	s.mu.Unlock()
	return true
}

// CheckRequestID checks id by the engine's rule: 1-128 characters of
// [A-Za-z0-9._:-]. The error names the field request_id.
func CheckRequestID(id string) error {
	s, buf := cstr(id)
	defer buf.free()
	return call(func() C.int32_t { return C.fasten_request_id_check(s) })
}

// Where an inbound request's id came from.
const (
	FromHeader      = 0 // a safe X-Request-ID
	FromTraceparent = 1 // the trace-id of a well-formed traceparent
	Minted          = 2 // neither: a fresh id
)

// RequestIDFrom picks an inbound request's id by the engine's rules: an
// X-Request-ID that passes CheckRequestID, else the trace-id of a
// well-formed W3C traceparent, else a fresh id; and says which.
func RequestIDFrom(xRequestID, traceparent string) (string, int) {
	buf := cstrs(xRequestID, traceparent)
	defer buf.free()
	strs := unsafe.Slice((*C.fasten_str)(buf.base), 2)
	var id [C.FASTEN_REQUEST_ID_SIZE]C.char
	var n C.size_t
	var source C.int32_t
	err := call(func() C.int32_t {
		return C.fasten_request_id_from_headers(strs[0], strs[1], &id[0], &n, &source)
	})
	if err != nil {
		// Only a broken ABI contract fails here; a bad header is ignored.
		panic(err)
	}
	return C.GoStringN(&id[0], C.int(n)), int(source)
}

// NewRequestID mints a fresh request id (32 hex, a valid W3C trace-id).
func NewRequestID() string {
	id, _ := RequestIDFrom("", "")
	return id
}

// OutboundHeaders are the headers to put on a call made for ctx's request
// (X-Request-ID and a traceparent), so the next service joins it.
func OutboundHeaders(ctx context.Context) map[string]string {
	id := RequestID(ctx)
	if id == "" {
		return nil
	}
	s, buf := cstr(id)
	defer buf.free()
	var out *C.char
	var n C.size_t
	if err := call(func() C.int32_t { return C.fasten_outbound_headers(s, &out, &n) }); err != nil {
		return nil
	}
	return parseHeaderLines(take(out, n))
}
