// fasten for C++14: one header over the C ABI (crates/fasten-ffi/include/fasten.h).
//
// Every rule (validation, redaction, hashing, the chain, the reader) runs in
// the Rust engine; this header only converts strings and errors.
//
//   fasten::Engine engine({{"FASTEN_SERVICE_ID", "shop"}, {"FASTEN_NODE_ID", "n1"},
//                          {"FASTEN_AUDIT_DSN", "sqlite:///audit.db"}});
//   engine.register_yaml(codes_yaml);
//   fasten::Scope scope("req-1");                  // ambient request id on this thread
//   scope.set_actor("alice", "user");
//   std::string id = engine.emit(fasten::Event("ORDER_PLACED").target("order/42")
//                                    .detail(R"({"qty":3})"));
//   engine.flush(std::chrono::seconds(5));
//
// Errors throw fasten::Error (kind(), field(), what()); every throwing call
// has a non-throwing overload taking a fasten::Status& last.
#ifndef FASTEN_HPP
#define FASTEN_HPP

#include <chrono>
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fasten.h"

namespace fasten {

// What kind of failure an Error is; the values are the C status codes.
enum class ErrorKind : int32_t {
  Argument = FASTEN_ERR_ARGUMENT,
  Config = FASTEN_ERR_CONFIG,
  Codes = FASTEN_ERR_CODES,
  UnknownCode = FASTEN_ERR_UNKNOWN_CODE,
  InvalidEvent = FASTEN_ERR_INVALID_EVENT,
  QueueFull = FASTEN_ERR_QUEUE_FULL,
  Timeout = FASTEN_ERR_TIMEOUT,
  Store = FASTEN_ERR_STORE,
  Closed = FASTEN_ERR_CLOSED,
  Checkpoint = FASTEN_ERR_CHECKPOINT,
  Panic = FASTEN_ERR_PANIC,
  Other = FASTEN_ERR_OTHER,
};

// The outcome of a non-throwing call.
struct Status {
  int32_t code = FASTEN_OK;
  std::string message;  // names the field and the rule
  std::string field;    // the field or FASTEN_* variable at fault, or empty
  bool ok() const { return code == FASTEN_OK; }
  ErrorKind kind() const { return static_cast<ErrorKind>(code); }
};

// A failed call: what() is the engine's message.
class Error : public std::runtime_error {
 public:
  explicit Error(const Status& s) : std::runtime_error(s.message), kind_(s.kind()), field_(s.field) {}
  ErrorKind kind() const { return kind_; }
  const std::string& field() const { return field_; }

 private:
  ErrorKind kind_;
  std::string field_;
};

namespace detail {

inline fasten_str str(const std::string& s) { return fasten_str{s.data(), s.size()}; }

inline Status status(int32_t code) {
  Status s;
  s.code = code;
  if (code != FASTEN_OK) {
    size_t len = 0;
    const char* m = fasten_last_error(&len);
    s.message.assign(m, len);
    const char* f = fasten_last_error_field(&len);
    s.field.assign(f, len);
  }
  return s;
}

inline void check(int32_t code) {
  if (code != FASTEN_OK) throw Error(status(code));
}

// Owns a buffer the engine returned and copies it into a std::string.
inline std::string take(char* ptr, size_t len) {
  std::string out = ptr ? std::string(ptr, len) : std::string();
  fasten_free(ptr);
  return out;
}

inline uint64_t millis(std::chrono::milliseconds d) {
  return d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
}

}  // namespace detail

// One audit event, built like the Rust Event: fasten::Event("CODE").target(...)...
class Event {
 public:
  explicit Event(std::string code) : code_(std::move(code)) {}
  Event& target(std::string v) { target_ = std::move(v); return *this; }
  Event& actor(std::string v, std::string kind = "") { actor_ = std::move(v); actor_kind_ = std::move(kind); return *this; }
  Event& outcome(std::string v) { outcome_ = std::move(v); return *this; }
  Event& method(std::string v) { method_ = std::move(v); return *this; }
  Event& severity(std::string v) { severity_ = std::move(v); return *this; }
  Event& tenant(std::string v) { tenant_ = std::move(v); return *this; }
  Event& request_id(std::string v) { request_id_ = std::move(v); return *this; }
  // The detail as JSON text; it must be an object.
  Event& detail(std::string json) { detail_ = std::move(json); return *this; }

  fasten_event c() const {
    using detail::str;
    return fasten_event{str(code_), str(target_), str(actor_), str(actor_kind_), str(outcome_),
                        str(method_), str(severity_), str(tenant_), str(request_id_), str(detail_)};
  }

 private:
  std::string code_, target_, actor_, actor_kind_, outcome_, method_, severity_, tenant_,
      request_id_, detail_;
};

// What an agent call reports about itself while it runs: cost, tokens, the
// model it used, or that it was denied. Setters chain.
class Usage {
 public:
  // Adds to the call's cost in US dollars (detail.cost_usd).
  Usage& cost_usd(double usd) {
    if (!std::isfinite(usd) || usd < 0) bad_cost_ = true;
    else { cost_ += usd; has_cost_ = true; }
    return *this;
  }
  // Adds input and output tokens (detail.input_tokens, detail.output_tokens).
  Usage& tokens(uint64_t input, uint64_t output) {
    input_ += input;
    output_ += output;
    has_tokens_ = true;
    return *this;
  }
  // The model the call used (detail.model).
  Usage& model(std::string name) { model_ = std::move(name); return *this; }
  // Marks the call denied by policy; reason (if not empty) is its error.
  Usage& deny(std::string reason = "") { denied_ = true; reason_ = std::move(reason); return *this; }

  bool denied() const { return denied_; }
  const std::string& reason() const { return reason_; }
  // The usage as the engine reads it (the engine checks the types).
  std::string json() const {
    std::string out;
    auto add = [&out](const std::string& kv) { out += (out.empty() ? "{" : ",") + kv; };
    char num[64];
    if (bad_cost_) add("\"cost_usd\":\"not a finite number of dollars, 0 or more\"");
    else if (has_cost_) { std::snprintf(num, sizeof num, "%.17g", cost_); add(std::string("\"cost_usd\":") + num); }
    if (has_tokens_) {
      add("\"input_tokens\":" + std::to_string(input_));
      add("\"output_tokens\":" + std::to_string(output_));
    }
    if (!model_.empty()) add("\"model\":" + quote(model_));
    if (denied_) add("\"denied\":true");
    return out.empty() ? out : out + "}";
  }

 private:
  static std::string quote(const std::string& s) {
    std::string q = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') { q += '\\'; q += static_cast<char>(c); }
      else if (c < 0x20) { char u[8]; std::snprintf(u, sizeof u, "\\u%04x", c); q += u; }
      else q += static_cast<char>(c);
    }
    return q + "\"";
  }
  double cost_ = 0;
  bool has_cost_ = false, bad_cost_ = false, has_tokens_ = false, denied_ = false;
  uint64_t input_ = 0, output_ = 0;
  std::string model_, reason_;
};

// The anchors of an agent call's row; empty ones come from the thread's
// scope (request id, actor, tenant).
struct CallOptions {
  std::string actor;       // the calling agent (kind "agent" unless actor_kind says otherwise)
  std::string actor_kind;
  std::string target;      // what the call acted on (a handoff's default: the receiving agent)
  std::string tenant;
};

// One log line for the sys stream.
struct LogLine {
  std::string level = "info";
  std::string message;
  std::string target;
  std::string fields_json;  // a JSON object, or empty
  std::string request_id;   // empty: the ambient one
  std::string tenant;
};

// One served HTTP request for the api stream.
struct ApiRecord {
  std::string request_id;  // empty: the ambient one
  std::string method = "GET";
  std::string route;
  std::string path = "/";
  uint16_t status = 200;
  std::chrono::microseconds duration{0};
  int64_t bytes_in = -1;  // -1: unknown
  int64_t bytes_out = -1;
  std::string actor, target, tenant;
};

// A response from the reader.
struct Response {
  uint16_t status = 0;
  std::string headers;  // "Name: value\n" lines
  std::string body;     // JSON
};

class Reader;

// The engine: one audit pipeline and its streams. Move-only; releasing it
// stops the pipeline when no Reader holds it (waiting up to 10 s for queued
// rows; call shutdown() to choose). Any number of threads may share one.
class Engine {
 public:
  using Settings = std::vector<std::pair<std::string, std::string>>;

  // Explicit FASTEN_* settings; the environment is not read.
  explicit Engine(const Settings& settings) {
    Status s;
    if (!start(settings, s)) throw Error(s);
  }
  // From the FASTEN_* environment variables.
  static Engine from_env() {
    fasten_engine* e = nullptr;
    detail::check(fasten_init_from_env(&e));
    return Engine(e);
  }
  // Non-throwing: check ok() afterwards.
  Engine(const Settings& settings, Status& status) { start(settings, status); }

  Engine(Engine&& o) noexcept : engine_(o.engine_) { o.engine_ = nullptr; }
  Engine& operator=(Engine&& o) noexcept {
    if (this != &o) {
      fasten_engine_free(engine_);
      engine_ = o.engine_;
      o.engine_ = nullptr;
    }
    return *this;
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { fasten_engine_free(engine_); }

  bool ok() const { return engine_ != nullptr; }
  const fasten_engine* handle() const { return engine_; }

  // Queues the event; returns its id (evt-…).
  std::string emit(const Event& event) const {
    Status s;
    std::string id = emit(event, s);
    if (!s.ok()) throw Error(s);
    return id;
  }
  std::string emit(const Event& event, Status& status) const {
    char id[FASTEN_EVENT_ID_SIZE];
    fasten_event c = event.c();
    status = detail::status(fasten_emit(engine_, &c, id));
    return status.ok() ? std::string(id) : std::string();
  }
  // Runs fn(usage) as a tool call and records it as a TOOL_CALLED row
  // whatever happens: duration, outcome (success; failure when fn throws,
  // with what() as the error, and the exception rethrown; denied after
  // usage.deny()), and the cost and tokens fn reported. Throws fasten::Error
  // when fn returned but the row could not be written.
  void tool_call(const std::string& tool, const std::function<void(Usage&)>& fn,
                 const CallOptions& options = CallOptions()) const {
    agent_call("tool", tool, fn, options);
  }
  // tool_call for a call to a model: a MODEL_CALLED row.
  void model_call(const std::string& model, const std::function<void(Usage&)>& fn,
                  const CallOptions& options = CallOptions()) const {
    agent_call("model", model, fn, options);
  }
  // tool_call for work handed to agent `to`: an AGENT_HANDOFF row.
  void handoff(const std::string& to, const std::function<void(Usage&)>& fn,
               const CallOptions& options = CallOptions()) const {
    agent_call("handoff", to, fn, options);
  }

  // Emits and waits for the commit; returns the sealed row as JSON.
  std::string emit_durable(const Event& event) const {
    fasten_event c = event.c();
    char* out = nullptr;
    size_t len = 0;
    detail::check(fasten_emit_durable(engine_, &c, &out, &len));
    return detail::take(out, len);
  }
  void flush(std::chrono::milliseconds timeout) const {
    detail::check(fasten_flush(engine_, detail::millis(timeout)));
  }
  // {"written":N,"unwritten":M}
  std::string shutdown(std::chrono::milliseconds timeout) const {
    char* out = nullptr;
    size_t len = 0;
    detail::check(fasten_shutdown(engine_, detail::millis(timeout), &out, &len));
    return detail::take(out, len);
  }
  std::string queue_stats() const {
    char* out = nullptr;
    size_t len = 0;
    detail::check(fasten_queue_stats(engine_, &out, &len));
    return detail::take(out, len);
  }
  size_t register_yaml(const std::string& yaml, const std::string& origin = "<yaml>") const {
    size_t n = 0;
    detail::check(fasten_register_yaml(engine_, detail::str(origin), detail::str(yaml), &n));
    return n;
  }
  size_t register_file(const std::string& path) const {
    size_t n = 0;
    detail::check(fasten_register_file(engine_, detail::str(path), &n));
    return n;
  }
  // Returns whether the line passed FASTEN_SYS_LEVEL.
  bool log(const LogLine& l) const {
    using detail::str;
    fasten_log_line c{str(l.level), str(l.target), str(l.message), str(l.fields_json), str(l.request_id), str(l.tenant)};
    bool recorded = false;
    detail::check(fasten_log(engine_, &c, &recorded));
    return recorded;
  }
  void record_api(const ApiRecord& r) const {
    using detail::str;
    fasten_api_record c{str(r.request_id), str(r.method), str(r.route), str(r.path), r.status,
                        static_cast<uint64_t>(r.duration.count() < 0 ? 0 : r.duration.count()),
                        r.bytes_in, r.bytes_out, str(r.actor), str(r.target), str(r.tenant)};
    detail::check(fasten_record_api(engine_, &c));
  }

 private:
  void agent_call(const char* kind, const std::string& name, const std::function<void(Usage&)>& fn,
                  const CallOptions& o) const {
    Usage usage;
    const auto started = std::chrono::steady_clock::now();
    std::exception_ptr thrown;
    std::string error;
    try {
      fn(usage);
    } catch (const std::exception& e) {
      thrown = std::current_exception();
      error = e.what();
      if (error.empty()) error = "exception";
    } catch (...) {
      thrown = std::current_exception();
      error = "unknown exception";
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    if (usage.denied() && !usage.reason().empty()) error = usage.reason();
    const std::string k = kind, usage_json = usage.json();
    using detail::str;
    fasten_agent_call_fields c{str(k), str(name), str(o.actor), str(o.actor_kind), str(o.target),
                               str(o.tenant), fasten_str{nullptr, 0}, str(error), str(usage_json)};
    const int32_t rc = fasten_agent_call(engine_, &c, detail::millis(ms), nullptr);
    // The call's own exception wins over a row that could not be written.
    if (thrown) std::rethrow_exception(thrown);
    detail::check(rc);
  }

  explicit Engine(fasten_engine* e) : engine_(e) {}
  bool start(const Settings& settings, Status& status) {
    std::vector<fasten_str> keys, values;
    for (const auto& kv : settings) {
      keys.push_back(detail::str(kv.first));
      values.push_back(detail::str(kv.second));
    }
    status = detail::status(fasten_init(keys.data(), values.data(), keys.size(), &engine_));
    return status.ok();
  }
  fasten_engine* engine_ = nullptr;
};

// A request scope on the calling thread: rows emitted, logged or recorded
// while it lives take its request id, actor and tenant. Scopes nest; the
// previous one comes back when this one is destroyed. Not movable: it
// belongs to the thread and the block that made it.
class Scope {
 public:
  // An empty id mints a fresh one.
  explicit Scope(const std::string& request_id = "") {
    detail::check(fasten_context_enter(detail::str(request_id)));
  }
  ~Scope() { fasten_context_exit(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  const Scope& set_actor(const std::string& actor, const std::string& kind = "") const {
    detail::check(fasten_context_set_actor(detail::str(actor), detail::str(kind)));
    return *this;
  }
  const Scope& set_tenant(const std::string& tenant) const {
    detail::check(fasten_context_set_tenant(detail::str(tenant)));
    return *this;
  }
  // The calling thread's ambient request id, or empty.
  static std::string current_request_id() {
    char* out = nullptr;
    size_t len = 0;
    detail::check(fasten_context_request_id(&out, &len));
    return detail::take(out, len);
  }
};

// The HTTP reader as a function, to mount under any C++ web framework.
class Reader {
 public:
  // tokens: comma-separated bearer tokens; empty reads FASTEN_READER_TOKENS.
  // flags: FASTEN_READER_DELEGATED, FASTEN_READER_AUDIT_READS.
  Reader(const Engine& engine, const std::string& tokens, uint32_t flags = 0) {
    detail::check(fasten_reader_new(engine.handle(), detail::str(tokens), flags, &reader_));
  }
  ~Reader() { fasten_reader_free(reader_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // path: below the mount point, with its query ("/audit?limit=10").
  Response handle(const std::string& method, const std::string& path,
                  const std::string& headers = "") const {
    Response r;
    char *h = nullptr, *b = nullptr;
    size_t hl = 0, bl = 0;
    detail::check(fasten_reader_handle(reader_, detail::str(method), detail::str(path),
                                       detail::str(headers), &r.status, &h, &hl, &b, &bl));
    r.headers = detail::take(h, hl);
    r.body = detail::take(b, bl);
    return r;
  }

 private:
  fasten_reader* reader_ = nullptr;
};

// Verifies every chain of the store at dsn; the report as JSON ({"ok":…}).
inline std::string verify(const std::string& dsn) {
  char* out = nullptr;
  size_t len = 0;
  detail::check(fasten_verify(detail::str(dsn), &out, &len));
  return detail::take(out, len);
}

// The row contract's functions, computed by the engine.
namespace contract {
inline std::string canonical_json(const std::string& json) {
  char* out = nullptr;
  size_t len = 0;
  detail::check(fasten_canonical_json(detail::str(json), &out, &len));
  return detail::take(out, len);
}
inline std::string detail_commitment(const std::string& salt, const std::string& detail_json) {
  char* out = nullptr;
  size_t len = 0;
  detail::check(fasten_detail_commitment(detail::str(salt), detail::str(detail_json), &out, &len));
  return detail::take(out, len);
}
inline std::string row_hash(const std::string& row_json) {
  char* out = nullptr;
  size_t len = 0;
  detail::check(fasten_row_hash(detail::str(row_json), &out, &len));
  return detail::take(out, len);
}
}  // namespace contract

// The process-wide engine, for fasten::emit(...) without passing a handle.
class Guard {
 public:
  explicit Guard(Engine engine) : engine_(std::move(engine)) { slot() = &engine_; }
  ~Guard() {
    if (slot() == &engine_) slot() = nullptr;
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  const Engine& engine() const { return engine_; }
  static Engine*& slot() {
    static Engine* global = nullptr;
    return global;
  }

 private:
  Engine engine_;
};

// Installs the engine configured by the FASTEN_* environment variables; keep
// the guard alive while the process emits.
inline std::unique_ptr<Guard> init() { return std::unique_ptr<Guard>(new Guard(Engine::from_env())); }

inline const Engine& global() {
  Engine* e = Guard::slot();
  if (!e) {
    Status s;
    s.code = FASTEN_ERR_CLOSED;
    s.message = "no global engine: keep the fasten::Guard from fasten::Guard(engine) or fasten::init() alive";
    throw Error(s);
  }
  return *e;
}

inline std::string emit(const Event& event) { return global().emit(event); }
inline std::string emit(const Event& event, Status& status) {
  Engine* e = Guard::slot();
  if (!e) {
    status.code = FASTEN_ERR_CLOSED;
    status.message = "no global engine: keep the fasten::Guard alive";
    status.field.clear();
    return std::string();
  }
  return e->emit(event, status);
}
inline void flush(std::chrono::milliseconds timeout) { global().flush(timeout); }

}  // namespace fasten

#endif  // FASTEN_HPP
