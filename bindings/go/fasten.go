// Package fasten is the Go SDK of fasten: typed, hash-chained,
// tamper-evident audit rows, plus the sys (log) and api (HTTP access)
// streams, all sharing one request id.
//
// It drives the Rust engine through its C ABI (crates/fasten-ffi): every
// rule (validation, redaction, hashing, the chain, the reader) runs there,
// so a row written from Go is the row Rust would write.
//
//	f, err := fasten.Init()                 // FASTEN_* from the environment
//	if err != nil { ... }
//	defer f.Close()                          // flushes
//	ctx = fasten.WithRequestID(ctx, "req-1")
//	id, err := fasten.Emit(ctx, fasten.Event{Code: "USER_CREATED", Target: "u-42",
//		Actor: "admin", Detail: map[string]any{"plan": "pro"}})
//
// The request id, actor and tenant travel in context.Context and are passed
// to the engine with each call, so goroutines never see each other's.
package fasten

/*
#include <stdlib.h>
#include <string.h>
#include "fasten.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"runtime"
	"sort"
	"sync"
	"time"
	"unsafe"
)

// ErrorKind says what kind of failure an Error is; the values are the C
// ABI's status codes.
type ErrorKind int

// The kinds of Error.
const (
	KindArgument     ErrorKind = C.FASTEN_ERR_ARGUMENT
	KindConfig       ErrorKind = C.FASTEN_ERR_CONFIG
	KindCodes        ErrorKind = C.FASTEN_ERR_CODES
	KindUnknownCode  ErrorKind = C.FASTEN_ERR_UNKNOWN_CODE
	KindInvalidEvent ErrorKind = C.FASTEN_ERR_INVALID_EVENT
	KindQueueFull    ErrorKind = C.FASTEN_ERR_QUEUE_FULL
	KindTimeout      ErrorKind = C.FASTEN_ERR_TIMEOUT
	KindStore        ErrorKind = C.FASTEN_ERR_STORE
	KindClosed       ErrorKind = C.FASTEN_ERR_CLOSED
	KindCheckpoint   ErrorKind = C.FASTEN_ERR_CHECKPOINT
	KindPanic        ErrorKind = C.FASTEN_ERR_PANIC
	KindOther        ErrorKind = C.FASTEN_ERR_OTHER
)

var kindNames = map[ErrorKind]string{
	KindArgument: "argument", KindConfig: "config", KindCodes: "codes",
	KindUnknownCode: "unknown_code", KindInvalidEvent: "invalid_event",
	KindQueueFull: "queue_full", KindTimeout: "timeout", KindStore: "store",
	KindClosed: "closed", KindCheckpoint: "checkpoint",
	KindPanic: "panic", KindOther: "other",
}

func (k ErrorKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Error is every failure the engine reports. Match it with errors.As:
//
//	var fe *fasten.Error
//	if errors.As(err, &fe) && fe.Kind == fasten.KindInvalidEvent { ... fe.Field ... }
type Error struct {
	// Kind is what kind of failure this is.
	Kind ErrorKind
	// Field is the event field or FASTEN_* variable at fault ("detail",
	// "request_id", "FASTEN_AUDIT_DSN"), or empty.
	Field string
	// Message is the engine's message, naming the field and the rule.
	Message string
}

func (e *Error) Error() string { return "fasten: " + e.Message }

// call runs one ABI call and reads the thread's last error on the same OS
// thread: the engine keeps it per thread, and a goroutine may move between
// threads between two cgo calls.
func call(f func() C.int32_t) error {
	runtime.LockOSThread()
	rc := f()
	var err error
	if rc != C.FASTEN_OK {
		var n C.size_t
		msg := C.GoStringN(C.fasten_last_error(&n), C.int(n))
		field := C.GoStringN(C.fasten_last_error_field(&n), C.int(n))
		err = &Error{Kind: ErrorKind(rc), Field: field, Message: msg}
	}
	runtime.UnlockOSThread()
	return err
}

// take copies a buffer the engine returned and frees it.
func take(p *C.char, n C.size_t) string {
	if p == nil {
		return ""
	}
	s := C.GoStringN(p, C.int(n))
	C.fasten_free(p)
	return s
}

// cbuf is C memory for one call's strings: no Go pointer is ever handed to
// C. Small buffers are pooled, so the hot path makes no cgo call besides
// the engine's own (C.malloc and C.free are cgo calls too).
type cbuf struct {
	base unsafe.Pointer
	size uintptr
}

const pooledSize = 4096

var cbufs = sync.Pool{New: func() any {
	return &cbuf{base: C.malloc(pooledSize), size: pooledSize}
}}

func (b *cbuf) free() {
	if b.size == pooledSize {
		cbufs.Put(b)
	} else {
		C.free(b.base)
	}
}

// cstrs copies strings into C memory laid out as an array of fasten_str
// followed by the bytes; release it with free once the call returned.
func cstrs(strs ...string) *cbuf {
	head := uintptr(len(strs)) * unsafe.Sizeof(C.fasten_str{})
	total := head
	for _, s := range strs {
		total += uintptr(len(s))
	}
	var b *cbuf
	if total <= pooledSize {
		b = cbufs.Get().(*cbuf)
	} else {
		b = &cbuf{base: C.malloc(C.size_t(total)), size: total}
	}
	if b.base == nil {
		panic("fasten: out of memory")
	}
	arr := unsafe.Slice((*C.fasten_str)(b.base), len(strs))
	off := head
	for i, s := range strs {
		if len(s) == 0 {
			arr[i] = C.fasten_str{ptr: nil, len: 0}
			continue
		}
		dst := unsafe.Add(b.base, off)
		copy(unsafe.Slice((*byte)(dst), len(s)), s)
		arr[i] = C.fasten_str{ptr: (*C.char)(dst), len: C.size_t(len(s))}
		off += uintptr(len(s))
	}
	return b
}

// cstr is one string as a fasten_str in C memory; free the buffer.
func cstr(s string) (C.fasten_str, *cbuf) {
	b := cstrs(s)
	return *(*C.fasten_str)(b.base), b
}

// Config is the engine's configuration: the common settings by name and any
// other FASTEN_* variable in Settings (docs/environment.md lists them; an
// unknown name is an error naming the nearest known one). The process
// environment is not read.
type Config struct {
	ServiceID string // FASTEN_SERVICE_ID
	NodeID    string // FASTEN_NODE_ID
	AuditDSN  string // FASTEN_AUDIT_DSN, e.g. sqlite:///audit.db or postgres://…
	TenantID  string // FASTEN_TENANT_ID
	Settings  map[string]string
}

func (c Config) pairs() [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("FASTEN_SERVICE_ID", c.ServiceID)
	add("FASTEN_NODE_ID", c.NodeID)
	add("FASTEN_AUDIT_DSN", c.AuditDSN)
	add("FASTEN_TENANT_ID", c.TenantID)
	keys := make([]string, 0, len(c.Settings))
	for k := range c.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, [2]string{k, c.Settings[k]})
	}
	return out
}

// Fasten is an engine: one audit pipeline with its sys and api streams.
// Safe for concurrent use.
type Fasten struct {
	mu     sync.RWMutex // Close takes it exclusively; calls share it
	engine *C.fasten_engine
}

var (
	defaultMu sync.RWMutex
	defaultF  *Fasten
)

// Default is the engine the package-level functions use: the last one
// Init returned that is not closed, or nil.
func Default() *Fasten {
	defaultMu.RLock()
	defer defaultMu.RUnlock()
	return defaultF
}

// Init starts an engine from the FASTEN_* environment variables, or from
// the one Config given, and makes it the Default. Close it when done.
func Init(config ...Config) (*Fasten, error) {
	f, err := New(config...)
	if err != nil {
		return nil, err
	}
	defaultMu.Lock()
	defaultF = f
	defaultMu.Unlock()
	return f, nil
}

// New starts an engine like Init without making it the Default.
func New(config ...Config) (*Fasten, error) {
	if len(config) > 1 {
		return nil, &Error{Kind: KindArgument, Field: "config", Message: "invalid config: give at most one Config"}
	}
	var engine *C.fasten_engine
	if len(config) == 0 {
		if err := call(func() C.int32_t { return C.fasten_init_from_env(&engine) }); err != nil {
			return nil, err
		}
	} else {
		pairs := config[0].pairs()
		strs := make([]string, 0, 2*len(pairs))
		for _, p := range pairs {
			strs = append(strs, p[0])
		}
		for _, p := range pairs {
			strs = append(strs, p[1])
		}
		buf := cstrs(strs...)
		defer buf.free()
		keys := (*C.fasten_str)(buf.base)
		values := (*C.fasten_str)(unsafe.Add(buf.base, uintptr(len(pairs))*unsafe.Sizeof(C.fasten_str{})))
		if err := call(func() C.int32_t {
			return C.fasten_init(keys, values, C.size_t(len(pairs)), &engine)
		}); err != nil {
			return nil, err
		}
	}
	f := &Fasten{engine: engine}
	runtime.SetFinalizer(f, func(f *Fasten) { _ = f.Close() })
	return f, nil
}

// handle returns the engine under a read lock; release it with f.mu.RUnlock.
func (f *Fasten) handle() (*C.fasten_engine, error) {
	if f == nil {
		return nil, &Error{Kind: KindClosed, Message: "no engine: call fasten.Init first"}
	}
	f.mu.RLock()
	if f.engine == nil {
		f.mu.RUnlock()
		return nil, &Error{Kind: KindClosed, Message: "the engine is closed"}
	}
	return f.engine, nil
}

// Close flushes everything emitted (up to 10 s), stops the engine and
// releases it. Later calls fail with KindClosed. Closing twice is a no-op.
func (f *Fasten) Close() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.engine == nil {
		return nil
	}
	engine := f.engine
	err := call(func() C.int32_t { return C.fasten_shutdown(engine, 10_000, nil, nil) })
	C.fasten_engine_free(engine)
	f.engine = nil
	defaultMu.Lock()
	if defaultF == f {
		defaultF = nil
	}
	defaultMu.Unlock()
	return err
}

func timeoutMillis(ctx context.Context, fallback time.Duration) (C.uint64_t, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d := fallback
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline)
		if d < 0 {
			d = 0
		}
	}
	return C.uint64_t(d.Milliseconds()), nil
}

// Flush waits until everything emitted before is committed (and the
// streams written), up to the context's deadline (30 s without one).
func (f *Fasten) Flush(ctx context.Context) error {
	ms, err := timeoutMillis(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	engine, err := f.handle()
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	return call(func() C.int32_t { return C.fasten_flush(engine, ms) })
}

// RegisterYAML declares the codes in a *.codes.yaml text; origin names it
// in error messages (a file name whose stem must match the domain, or "").
func (f *Fasten) RegisterYAML(origin, yaml string) (int, error) {
	engine, err := f.handle()
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	buf := cstrs(origin, yaml)
	defer buf.free()
	strs := unsafe.Slice((*C.fasten_str)(buf.base), 2)
	var n C.size_t
	err = call(func() C.int32_t { return C.fasten_register_yaml(engine, strs[0], strs[1], &n) })
	return int(n), err
}

// RegisterFile declares the codes in a *.codes.yaml file.
func (f *Fasten) RegisterFile(path string) (int, error) {
	engine, err := f.handle()
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	s, buf := cstr(path)
	defer buf.free()
	var n C.size_t
	err = call(func() C.int32_t { return C.fasten_register_file(engine, s, &n) })
	return int(n), err
}

// QueueStats are the audit queue's counters.
type QueueStats struct {
	Depth       int    `json:"depth"`
	Capacity    int    `json:"capacity"`
	HighWater   int    `json:"high_water"`
	Enqueued    uint64 `json:"enqueued"`
	Written     uint64 `json:"written"`
	Batches     uint64 `json:"batches"`
	Retries     uint64 `json:"retries"`
	QueueFull   uint64 `json:"queue_full"`
	Failed      uint64 `json:"failed"`
	Redactions  uint64 `json:"redactions"`
	Truncated   uint64 `json:"truncated"`
	LastError   string `json:"last_error"`
	StoreHealth string `json:"store_health"`
	StoreKind   string `json:"store_kind"`
}

// QueueStats reads the audit queue's counters.
func (f *Fasten) QueueStats() (QueueStats, error) {
	var s QueueStats
	engine, err := f.handle()
	if err != nil {
		return s, err
	}
	defer f.mu.RUnlock()
	var out *C.char
	var n C.size_t
	if err := call(func() C.int32_t { return C.fasten_queue_stats(engine, &out, &n) }); err != nil {
		return s, err
	}
	err = json.Unmarshal([]byte(take(out, n)), &s)
	return s, err
}

// Event is one audit event. Only Code is required; empty fields take the
// context's values (request id, actor, tenant) and then the engine's
// defaults (actor "system", outcome "success", the code's severity).
type Event struct {
	Code      string
	Target    string
	Actor     string
	ActorKind string // user, service, system, … (default service)
	Outcome   string // success, failure, denied, unknown
	Method    string // http, sdk, …
	Severity  string // overrides the code's severity
	Tenant    string
	RequestID string
	// Detail is marshalled to JSON and must be an object: a map, a struct,
	// or a json.RawMessage. Secrets in it are redacted by the engine.
	Detail any
}

// withContext fills empty fields from the context.
func (e Event) withContext(ctx context.Context) Event {
	if s := scopeOf(ctx); s != nil {
		if e.RequestID == "" {
			e.RequestID = s.requestID
		}
		actor, kind, tenant := s.attribution()
		if e.Actor == "" && actor != "" {
			e.Actor, e.ActorKind = actor, kind
		}
		if e.Tenant == "" {
			e.Tenant = tenant
		}
		if e.Method == "" {
			e.Method = s.method
		}
	}
	return e
}

func detailJSON(detail any) (string, error) {
	switch d := detail.(type) {
	case nil:
		return "", nil
	case json.RawMessage:
		return string(d), nil
	case []byte:
		return string(d), nil
	case string:
		return d, nil
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return "", &Error{Kind: KindInvalidEvent, Field: "detail", Message: "invalid detail: " + err.Error()}
	}
	return string(b), nil
}

// cevent lays the event out as a fasten_event in C memory; free it.
func (e Event) cevent() (*C.fasten_event, *cbuf, error) {
	detail, err := detailJSON(e.Detail)
	if err != nil {
		return nil, nil, err
	}
	// The field order of struct fasten_event.
	buf := cstrs(e.Code, e.Target, e.Actor, e.ActorKind, e.Outcome, e.Method, e.Severity,
		e.Tenant, e.RequestID, detail)
	return (*C.fasten_event)(buf.base), buf, nil
}

// Emit checks the event, redacts its detail and queues it for the chain;
// it returns the event id (evt-…). The request id, actor and tenant come
// from ctx unless the event names them.
func (f *Fasten) Emit(ctx context.Context, e Event) (string, error) {
	engine, err := f.handle()
	if err != nil {
		return "", err
	}
	defer f.mu.RUnlock()
	ev, buf, err := e.withContext(ctx).cevent()
	if err != nil {
		return "", err
	}
	defer buf.free()
	var id [C.FASTEN_EVENT_ID_SIZE]C.char
	if err := call(func() C.int32_t { return C.fasten_emit(engine, ev, &id[0]) }); err != nil {
		return "", err
	}
	return C.GoString(&id[0]), nil
}

// Row is a sealed audit row, every column of the row contract.
type Row struct {
	ID               string          `json:"id"`
	OriginID         string          `json:"origin_id"`
	Timestamp        string          `json:"timestamp"`
	ServiceID        string          `json:"service_id"`
	SourceNodeID     string          `json:"source_node_id"`
	TenantID         *string         `json:"tenant_id"`
	RequestID        string          `json:"request_id"`
	Code             string          `json:"code"`
	Domain           string          `json:"domain"`
	Category         string          `json:"category"`
	Action           string          `json:"action"`
	Severity         string          `json:"severity"`
	Outcome          string          `json:"outcome"`
	Actor            string          `json:"actor"`
	ActorKind        string          `json:"actor_kind"`
	Target           string          `json:"target"`
	Method           string          `json:"method"`
	PIIInDetail      bool            `json:"pii_in_detail"`
	Detail           json.RawMessage `json:"detail"`
	DetailSalt       *string         `json:"detail_salt"`
	DetailCommitment string          `json:"detail_commitment"`
	MonotonicSeq     int64           `json:"monotonic_seq"`
	PrevHash         string          `json:"prev_hash"`
	Hash             string          `json:"hash"`
	WireVersion      string          `json:"wire_version"`
	CanonicalFormID  string          `json:"canonical_form_id"`
	// JSON is the row exactly as the engine returned it.
	JSON json.RawMessage `json:"-"`
}

// EmitDurable emits and waits until the row is committed; it returns the
// sealed row.
func (f *Fasten) EmitDurable(ctx context.Context, e Event) (Row, error) {
	var row Row
	engine, err := f.handle()
	if err != nil {
		return row, err
	}
	defer f.mu.RUnlock()
	ev, buf, err := e.withContext(ctx).cevent()
	if err != nil {
		return row, err
	}
	defer buf.free()
	var out *C.char
	var n C.size_t
	if err := call(func() C.int32_t { return C.fasten_emit_durable(engine, ev, &out, &n) }); err != nil {
		return row, err
	}
	text := take(out, n)
	err = json.Unmarshal([]byte(text), &row)
	row.JSON = json.RawMessage(text)
	return row, err
}

func defaultOrErr() (*Fasten, error) {
	if f := Default(); f != nil {
		return f, nil
	}
	return nil, &Error{Kind: KindClosed, Message: "no engine: call fasten.Init first"}
}

// Emit emits through the Default engine.
func Emit(ctx context.Context, e Event) (string, error) {
	f, err := defaultOrErr()
	if err != nil {
		return "", err
	}
	return f.Emit(ctx, e)
}

// EmitDurable emits through the Default engine and waits for the commit.
func EmitDurable(ctx context.Context, e Event) (Row, error) {
	f, err := defaultOrErr()
	if err != nil {
		return Row{}, err
	}
	return f.EmitDurable(ctx, e)
}

// Flush flushes the Default engine, up to the context's deadline.
func Flush(ctx context.Context) error {
	f, err := defaultOrErr()
	if err != nil {
		return err
	}
	return f.Flush(ctx)
}

// Report is the verdict of Verify, what `fasten verify --json` prints.
type Report struct {
	OK    bool `json:"ok"`
	Nodes []struct {
		SourceNodeID  string  `json:"source_node_id"`
		Rows          uint64  `json:"rows"`
		Erased        uint64  `json:"erased"`
		FirstBreakSeq *int64  `json:"first_break_seq"`
		Reason        *string `json:"reason"`
	} `json:"nodes"`
}

// Verify checks every chain in the audit store at dsn.
func Verify(dsn string) (Report, error) {
	var r Report
	s, buf := cstr(dsn)
	defer buf.free()
	var out *C.char
	var n C.size_t
	if err := call(func() C.int32_t { return C.fasten_verify(s, &out, &n) }); err != nil {
		return r, err
	}
	err := json.Unmarshal([]byte(take(out, n)), &r)
	return r, err
}

// CanonicalJSON is the RFC 8785 canonical form of a JSON text, the bytes
// fasten hashes, computed by the engine.
func CanonicalJSON(text string) (string, error) {
	s, buf := cstr(text)
	defer buf.free()
	var out *C.char
	var n C.size_t
	err := call(func() C.int32_t { return C.fasten_canonical_json(s, &out, &n) })
	return take(out, n), err
}

// DetailCommitment is a row's detail_commitment for a salt and a detail.
func DetailCommitment(salt, detailJSON string) (string, error) {
	buf := cstrs(salt, detailJSON)
	defer buf.free()
	strs := unsafe.Slice((*C.fasten_str)(buf.base), 2)
	var out *C.char
	var n C.size_t
	err := call(func() C.int32_t { return C.fasten_detail_commitment(strs[0], strs[1], &out, &n) })
	return take(out, n), err
}

// RowHash is the hash of a row given as JSON (all its columns).
func RowHash(rowJSON string) (string, error) {
	s, buf := cstr(rowJSON)
	defer buf.free()
	var out *C.char
	var n C.size_t
	err := call(func() C.int32_t { return C.fasten_row_hash(s, &out, &n) })
	return take(out, n), err
}
