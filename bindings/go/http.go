package fasten

/*
#include <stdlib.h>
#include "fasten.h"
*/
import "C"

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
	"unsafe"
)

// APIRecord is one served HTTP request for the api stream.
type APIRecord struct {
	RequestID string // "": the context's (required one way or the other)
	Method    string
	Route     string // the route template, if known
	Path      string // a query string is cut off by the engine
	Status    int
	Duration  time.Duration
	BytesIn   int64 // -1: unknown
	BytesOut  int64 // -1: unknown
	Actor     string
	Target    string
	Tenant    string
}

// RecordAPI writes one api row. It never blocks.
func (f *Fasten) RecordAPI(r APIRecord) error {
	engine, err := f.handle()
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	buf := cstrs(r.RequestID, r.Method, r.Route, r.Path, r.Actor, r.Target, r.Tenant)
	defer buf.free()
	s := unsafe.Slice((*C.fasten_str)(buf.base), 7)
	status := r.Status
	if status < 0 || status > 0xffff {
		status = 0xffff // the engine refuses it with a message naming status
	}
	rec := C.fasten_api_record{
		request_id: s[0], method: s[1], route: s[2], path: s[3],
		status:      C.uint16_t(status),
		duration_us: C.uint64_t(r.Duration.Microseconds()),
		bytes_in:    C.int64_t(r.BytesIn), bytes_out: C.int64_t(r.BytesOut),
		actor: s[4], target: s[5], tenant: s[6],
	}
	return call(func() C.int32_t { return C.fasten_record_api(engine, &rec) })
}

// Middleware is Default().Middleware, resolved per request.
func Middleware(next http.Handler) http.Handler {
	return (*Fasten)(nil).Middleware(next)
}

// Middleware gives each request its id (a safe X-Request-ID, else the
// trace-id of a well-formed traceparent, else a fresh one: the engine's
// rules), puts it in the request's context, echoes it as X-Request-ID, and
// writes the request's api row when the handler returns. Handlers name the
// actor and target with SetActor and SetTarget. It fits any router that
// takes func(http.Handler) http.Handler (the standard mux, chi).
// A nil *Fasten uses the Default engine at each request.
func (f *Fasten) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id, _ := RequestIDFrom(r.Header.Get("X-Request-ID"), r.Header.Get("traceparent"))
		ctx := WithRequestID(r.Context(), id)
		s := scopeOf(ctx)
		r = r.WithContext(ctx)
		r.Header.Set("X-Request-ID", id) // the handler sees the checked id
		w.Header().Set("X-Request-ID", id)
		rw := &recorder{ResponseWriter: w}
		defer func() {
			engine := f
			if engine == nil {
				engine = Default()
			}
			if engine == nil {
				return
			}
			status := rw.status
			if status == 0 {
				status = http.StatusOK
			}
			if r.Context().Err() != nil && !rw.wrote {
				status = 499 // the client went away first
			}
			actor, _, tenant := s.attribution()
			s.mu.Lock()
			target := s.target
			s.mu.Unlock()
			_ = engine.RecordAPI(APIRecord{
				RequestID: id, Method: r.Method, Route: pattern(r), Path: r.URL.Path,
				Status: status, Duration: time.Since(start),
				BytesIn: r.ContentLength, BytesOut: rw.bytes,
				Actor: actor, Target: target, Tenant: tenant,
			})
		}()
		next.ServeHTTP(rw, r)
	})
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (r *recorder) Flush() {
	if fl, ok := r.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// Hijack lets websocket upgrades through the recorder.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := r.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("fasten: the ResponseWriter does not support hijacking")
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func parseHeaderLines(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}
