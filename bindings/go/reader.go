package fasten

/*
#include <stdlib.h>
#include "fasten.h"
*/
import "C"

import (
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// ReaderOptions configure NewReader.
type ReaderOptions struct {
	// Tokens are the bearer tokens the reader accepts (each at least 32
	// printable characters). Empty: FASTEN_READER_TOKENS from the
	// environment. Auth is never implicit.
	Tokens []string
	// Delegated says your own auth middleware has already decided: the
	// reader checks no token.
	Delegated bool
	// AuditReads writes a READER_QUERY audit row per read.
	AuditReads bool
}

// ReaderHandler is fasten's HTTP reader as an http.Handler: the same routes
// (/audit, /sys, /api, /correlate, /audit/summary, /audit/verify, /audit/doctor,
// /audit/proof, /openapi.json), auth rules and queries as the Rust reader,
// served by the engine.
type ReaderHandler struct {
	mu     sync.RWMutex
	reader *C.fasten_reader
}

// NewReader makes a reader over f's stores.
func NewReader(f *Fasten, opts ReaderOptions) (*ReaderHandler, error) {
	engine, err := f.handle()
	if err != nil {
		return nil, err
	}
	defer f.mu.RUnlock()
	var flags C.uint32_t
	if opts.Delegated {
		flags |= C.FASTEN_READER_DELEGATED
	}
	if opts.AuditReads {
		flags |= C.FASTEN_READER_AUDIT_READS
	}
	s, buf := cstr(strings.Join(opts.Tokens, ","))
	defer buf.free()
	var reader *C.fasten_reader
	if err := call(func() C.int32_t { return C.fasten_reader_new(engine, s, flags, &reader) }); err != nil {
		return nil, err
	}
	h := &ReaderHandler{reader: reader}
	runtime.SetFinalizer(h, func(h *ReaderHandler) { h.Close() })
	return h, nil
}

// Reader is the Default engine's reader with the tokens in
// FASTEN_READER_TOKENS, to mount at startup:
//
//	r.Mount("/api/v1/logs", fasten.Reader())                              // chi
//	mux.Handle("/api/v1/logs/", http.StripPrefix("/api/v1/logs", fasten.Reader())) // net/http
//
// It panics (like regexp.MustCompile) when there is no engine or no valid
// token: a reader without an auth decision must not start.
func Reader() http.Handler {
	h, err := NewReader(Default(), ReaderOptions{})
	if err != nil {
		panic(err)
	}
	return h
}

// Close releases the reader.
func (h *ReaderHandler) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reader != nil {
		C.fasten_reader_free(h.reader)
		h.reader = nil
	}
}

// The reader's routes, longest first: a handler mounted under a prefix
// without stripping it (chi's Mount) still finds its route.
var readerRoutes = []string{"/audit/summary", "/audit/verify", "/audit/doctor", "/audit/proof", "/openapi.json",
	"/correlate", "/audit", "/sys", "/api"}

func routePath(p string) string {
	for _, r := range readerRoutes {
		if p == r || strings.HasSuffix(p, r) {
			return r
		}
	}
	return p
}

// ServeHTTP implements http.Handler.
func (h *ReaderHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := routePath(r.URL.Path)
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	var head strings.Builder
	for _, k := range names {
		for _, v := range r.Header[k] {
			head.WriteString(k + ": " + v + "\n")
		}
	}
	buf := cstrs(r.Method, path, head.String())
	defer buf.free()
	s := unsafe.Slice((*C.fasten_str)(buf.base), 3)
	var status C.uint16_t
	var hp, bp *C.char
	var hn, bn C.size_t
	h.mu.RLock()
	reader := h.reader
	var err error
	if reader == nil {
		err = &Error{Kind: KindClosed, Message: "the reader is closed"}
	} else {
		err = call(func() C.int32_t {
			return C.fasten_reader_handle(reader, s[0], s[1], s[2], &status, &hp, &hn, &bp, &bn)
		})
	}
	h.mu.RUnlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range parseHeaderLines(take(hp, hn)) {
		if !strings.EqualFold(k, "content-length") {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(int(status))
	_, _ = w.Write([]byte(take(bp, bn)))
}
