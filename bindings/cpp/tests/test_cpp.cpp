// The C++14 SDK: golden vectors, 8 threads into one chain verified by the
// Rust CLI (SQLite and PostgreSQL), bad input as exceptions, the scope guard,
// the streams and the reader, and a row from C++ beside a row from Rust.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "fasten.hpp"

extern "C" {
#include "json_scan.h"
}

using namespace std::chrono_literals;

namespace {

const char* const kCodes =
    "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n";

std::string temp_dir() {
  char dir[] = "/tmp/fasten-cpp-XXXXXX";
  if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp");
  return dir;
}

struct Cmd {
  int status;
  std::string out;
};

Cmd run(const std::string& cmd) {
  Cmd r{0, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return Cmd{-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  return r;
}

fasten::Engine engine_at(const std::string& dsn, const std::string& node,
                         const std::string& service = "cpp-test") {
  fasten::Engine e({{"FASTEN_SERVICE_ID", service},
                    {"FASTEN_NODE_ID", node},
                    {"FASTEN_AUDIT_DSN", dsn},
                    {"FASTEN_STDOUT", "none"}});
  e.register_yaml(kCodes, "sales.codes.yaml");
  return e;
}

fasten::Event order(int qty) {
  return fasten::Event("ORDER_PLACED")
      .actor("alice", "user")
      .target("order/42")
      .detail("{\"qty\":" + std::to_string(qty) + ",\"sku\":\"WIDGET\"}");
}

// The value of a top-level member of a JSON object, as raw text.
std::string member(const std::string& obj, const char* name) {
  const char* v = js_get(obj.c_str(), name);
  if (!v) return "";
  char* raw = js_raw(v);
  std::string out(raw);
  free(raw);
  return out;
}

void emit_from_threads(const fasten::Engine& e, int threads, int each) {
  std::vector<std::thread> pool;
  std::vector<int> failed(threads, 0);
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < each; i++) {
        fasten::Status s;
        std::string id = e.emit(order(i), s);
        if (!s.ok() || id.compare(0, 4, "evt-") != 0) failed[t]++;
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; t++) EXPECT_EQ(failed[t], 0) << "thread " << t;
}

void expect_cli_verifies(const std::string& dsn, int rows) {
  Cmd r = run(std::string(FASTEN_CLI) + " verify --json --dsn '" + dsn + "'");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("\"ok\":true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"rows\":" + std::to_string(rows)), std::string::npos) << r.out;
}

}  // namespace

TEST(Vectors, EveryGoldenVectorThroughTheAbi) {
  char* text = js_read_file(FASTEN_VECTORS);
  ASSERT_NE(text, nullptr) << FASTEN_VECTORS;
  const std::string file(text);
  free(text);
  int rows = 0;
  auto check_row = [&](const char* row) {
    char* raw_copy = js_raw(row);
    const std::string raw(raw_copy);
    free(raw_copy);
    char* hash = js_decode(js_get(row, "hash"));
    EXPECT_EQ(fasten::contract::row_hash(raw), hash);
    free(hash);
    const char* salt = js_get(row, "detail_salt");
    const char* detail = js_get(row, "detail");
    if (salt && *salt == '"' && detail && *detail == '{') {
      char* s = js_decode(salt);
      char* d = js_raw(detail);
      char* c = js_decode(js_get(row, "detail_commitment"));
      EXPECT_EQ(fasten::contract::detail_commitment(s, d), c);
      free(s);
      free(d);
      free(c);
    }
    rows++;
  };
  const char* it = js_get(file.c_str(), "single_rows");
  const char *key, *val;
  size_t klen;
  static const char* const unhashed[] = {"detail", "detail_salt", "hash", nullptr};
  while (js_member(&it, &key, &klen, &val)) {
    const char* row = js_get(val, "row");
    check_row(row);
    char* hashed = js_without(row, unhashed);
    char* want = js_decode(js_get(val, "canonical_json"));
    EXPECT_EQ(fasten::contract::canonical_json(hashed), want) << std::string(key, klen);
    free(hashed);
    free(want);
    if (const char* jcs = js_get(val, "detail_jcs")) {
      char* d = js_raw(js_get(row, "detail"));
      char* w = js_decode(jcs);
      EXPECT_EQ(fasten::contract::canonical_json(d), w);
      free(d);
      free(w);
    }
  }
  it = js_get(file.c_str(), "chain");
  while (js_element(&it, &val)) check_row(val);
  check_row(js_get(file.c_str(), "chain_row_2_redacted"));
  EXPECT_GE(rows, 5);
}

TEST(Emit, EightThreadsOneChainSqliteVerifiedByTheCli) {
  const std::string dsn = "sqlite:///" + temp_dir() + "/threads.db";
  {
    fasten::Engine e = engine_at(dsn, "node-cpp");
    emit_from_threads(e, 8, 250);
    e.flush(30s);
    EXPECT_NE(e.queue_stats().find("\"written\":2000"), std::string::npos) << e.queue_stats();
    e.shutdown(30s);
  }
  expect_cli_verifies(dsn, 2000);
  EXPECT_NE(fasten::verify(dsn).find("\"ok\":true"), std::string::npos);
}

TEST(Emit, EightThreadsOneChainPostgresVerifiedByTheCli) {
  const char* env = std::getenv("FASTEN_TEST_PG");
  std::string base = env ? env : "postgres://postgres@127.0.0.1:5432/test";
  std::random_device rd;
  const std::string schema = "fasten_cpp_" + std::to_string(getpid()) + "_" + std::to_string(rd() % 100000);
  const std::string dsn = base + (base.find('?') == std::string::npos ? "?" : "&") +
                          "table=" + schema + ".audit_log";
  fasten::Status s;
  fasten::Engine probe({{"FASTEN_SERVICE_ID", "cpp-test"},
                        {"FASTEN_NODE_ID", "node-cpp-pg"},
                        {"FASTEN_AUDIT_DSN", dsn},
                        {"FASTEN_STDOUT", "none"}},
                       s);
  if (!s.ok()) {
    if (std::getenv("CI")) FAIL() << "CI is set and PostgreSQL is unreachable: " << s.message;
    GTEST_SKIP() << "SKIPPED: PostgreSQL unreachable: " << s.message;
  }
  {
    fasten::Engine e = std::move(probe);
    e.register_yaml(kCodes);
    emit_from_threads(e, 8, 100);
    e.flush(30s);
    e.shutdown(30s);
  }
  expect_cli_verifies(dsn, 800);
  if (run("command -v psql").status == 0)
    run("psql -q -h 127.0.0.1 -U postgres -d test -c 'DROP SCHEMA " + schema + " CASCADE'");
}

TEST(Errors, BadInputThrowsWithKindFieldAndRule) {
  fasten::Engine e = engine_at("sqlite:///" + temp_dir() + "/bad.db", "node-bad");
  try {
    e.emit(fasten::Event("NO_SUCH_CODE"));
    FAIL() << "no throw";
  } catch (const fasten::Error& err) {
    EXPECT_EQ(err.kind(), fasten::ErrorKind::UnknownCode);
    EXPECT_NE(std::string(err.what()).find("NO_SUCH_CODE"), std::string::npos) << err.what();
  }
  try {
    e.emit(order(1).detail("{\"qty\":"));
    FAIL() << "no throw";
  } catch (const fasten::Error& err) {
    EXPECT_EQ(err.kind(), fasten::ErrorKind::InvalidEvent);
    EXPECT_EQ(err.field(), "detail");
  }
  try {
    e.emit(order(1).request_id("a b\nc"));
    FAIL() << "no throw";
  } catch (const fasten::Error& err) {
    EXPECT_EQ(err.field(), "request_id");
    EXPECT_NE(std::string(err.what()).find("[A-Za-z0-9._:-]"), std::string::npos) << err.what();
  }
  try {
    e.emit(order(1).target(std::string("x\xff", 2)));
    FAIL() << "no throw";
  } catch (const fasten::Error& err) {
    EXPECT_EQ(err.kind(), fasten::ErrorKind::Argument);
    EXPECT_EQ(err.field(), "target");
  }
  fasten::Status s;
  EXPECT_EQ(e.emit(order(1).outcome("maybe"), s), "");
  EXPECT_EQ(s.kind(), fasten::ErrorKind::InvalidEvent);
  EXPECT_EQ(s.field, "outcome");
  EXPECT_NE(s.message.find("expected one of"), std::string::npos) << s.message;
  EXPECT_THROW(fasten::Engine({{"FASTEN_NODE_ID", "n"}, {"FASTEN_SERVICE_ID", "s"},
                               {"FASTEN_AUDIT_DSN", "mysql://x"}}),
               fasten::Error);
  // Nothing bad reached the chain; a good row still goes in after all that.
  EXPECT_EQ(e.emit(order(2)).size(), 24u);
  e.flush(10s);
  EXPECT_NE(e.queue_stats().find("\"written\":1"), std::string::npos) << e.queue_stats();
}

TEST(Context, ScopeGuardCarriesIdActorTenantAndNests) {
  fasten::Engine e = engine_at("sqlite:///" + temp_dir() + "/ctx.db", "node-ctx");
  EXPECT_EQ(fasten::Scope::current_request_id(), "");
  std::string row;
  {
    fasten::Scope outer("req-outer");
    outer.set_actor("carol", "user").set_tenant("acme");
    {
      fasten::Scope inner("req-inner");
      EXPECT_EQ(fasten::Scope::current_request_id(), "req-inner");
    }
    EXPECT_EQ(fasten::Scope::current_request_id(), "req-outer");
    row = e.emit_durable(fasten::Event("ORDER_PLACED").target("order/1"));
  }
  EXPECT_EQ(fasten::Scope::current_request_id(), "");
  EXPECT_EQ(member(row, "request_id"), "\"req-outer\"");
  EXPECT_EQ(member(row, "actor"), "\"carol\"");
  EXPECT_EQ(member(row, "tenant_id"), "\"acme\"");
  EXPECT_THROW(fasten::Scope("bad id!"), fasten::Error);
}

TEST(Global, FreeEmitThroughTheGuard) {
  fasten::Status s;
  EXPECT_EQ(fasten::emit(order(1), s), "");
  EXPECT_EQ(s.kind(), fasten::ErrorKind::Closed);
  fasten::Guard guard(engine_at("sqlite:///" + temp_dir() + "/global.db", "node-global"));
  EXPECT_EQ(fasten::emit(order(1)).compare(0, 4, "evt-"), 0);
  fasten::flush(5s);
}

TEST(Streams, OneRequestYieldsAuditSysAndApiRowsReadBackThroughTheReader) {
  const std::string dir = temp_dir();
  const std::string db = "sqlite:///" + dir + "/streams.db";
  fasten::Engine e({{"FASTEN_SERVICE_ID", "cpp-test"},
                    {"FASTEN_NODE_ID", "node-streams"},
                    {"FASTEN_AUDIT_DSN", db},
                    {"FASTEN_SYS_DSN", db},
                    {"FASTEN_API_DSN", db},
                    {"FASTEN_STDOUT", "none"}});
  e.register_yaml(kCodes);
  {
    fasten::Scope scope("req-streams-1");
    e.emit(order(3));
    fasten::LogLine line;
    line.level = "warning";
    line.message = "stock low";
    line.target = "shop.inventory";
    line.fields_json = "{\"sku\":\"WIDGET\",\"api_key\":\"sk_live_abcdefabcdefabcdef\"}";
    EXPECT_TRUE(e.log(line));
    fasten::ApiRecord api;
    api.method = "POST";
    api.route = "/orders";
    api.path = "/orders?token=secret";
    api.status = 201;
    api.duration = std::chrono::microseconds(1500);
    e.record_api(api);
  }
  e.flush(10s);
  const std::string token = "0123456789abcdef0123456789abcdef";
  fasten::Reader reader(e, token);
  fasten::Response denied = reader.handle("GET", "/correlate?request_id=req-streams-1");
  EXPECT_EQ(denied.status, 401) << denied.body;
  fasten::Response r = reader.handle("GET", "/correlate?request_id=req-streams-1",
                                     "Authorization: Bearer " + token + "\n");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("ORDER_PLACED"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("stock low"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("/orders"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("sk_live_abcdefabcdefabcdef"), std::string::npos) << "redacted: " << r.body;
  EXPECT_EQ(r.body.find("token=secret"), std::string::npos) << "query cut: " << r.body;
  EXPECT_NE(r.headers.find("content-type: application/json"), std::string::npos) << r.headers;
  fasten::Response bad = reader.handle("GET", "/audit?limit=nope",
                                       "Authorization: Bearer " + token + "\n");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("limit"), std::string::npos) << bad.body;
}

TEST(Agent, CallsAreRecordedWhateverHappensAndSummed) {
  const std::string db = "sqlite:///" + temp_dir() + "/agents.db";
  fasten::Engine e({{"FASTEN_SERVICE_ID", "cpp-test"},
                    {"FASTEN_NODE_ID", "node-agents"},
                    {"FASTEN_AUDIT_DSN", db},
                    {"FASTEN_STDOUT", "none"}});
  fasten::CallOptions b;
  b.actor = "agent-b";
  {
    fasten::Scope scope("req-cpp-agents");
    e.tool_call("search_web", [](fasten::Usage& u) { u.cost_usd(0.25).tokens(100, 20); }, b);
    EXPECT_THROW(e.tool_call("fetch_page",
                             [](fasten::Usage& u) {
                               u.cost_usd(0.5);
                               throw std::runtime_error("timed out after 2000 ms");
                             },
                             b),
                 std::runtime_error);
    e.model_call("small-\"model\"", [](fasten::Usage& u) { u.cost_usd(1).model("m"); }, b);
    fasten::CallOptions c;
    c.actor = "agent-c";
    e.tool_call("delete_repo", [](fasten::Usage& u) { u.deny("policy: no deletes"); }, c);
    try {
      e.tool_call("nan", [](fasten::Usage& u) { u.cost_usd(-1); }, b);
      ADD_FAILURE() << "a refused usage throws";
    } catch (const fasten::Error& err) {
      EXPECT_EQ(err.field(), "cost_usd") << err.what();
    }
  }
  e.flush(10s);
  const std::string token = "0123456789abcdef0123456789abcdef";
  fasten::Reader reader(e, token);
  const std::string auth = "Authorization: Bearer " + token + "\n";
  fasten::Response rows = reader.handle("GET", "/audit?request_id=req-cpp-agents", auth);
  ASSERT_EQ(rows.status, 200) << rows.body;
  for (const char* needle :
       {"\"tool\":\"search_web\"", "\"outcome\":\"failure\"", "\"error\":\"timed out after 2000 ms\"",
        "\"outcome\":\"denied\"", "\"error\":\"policy: no deletes\"", "MODEL_CALLED",
        "\"input_tokens\":100", "\"actor_kind\":\"agent\""}) {
    EXPECT_NE(rows.body.find(needle), std::string::npos) << needle << " in " << rows.body;
  }
  fasten::Response sum =
      reader.handle("GET", "/audit/summary?code=TOOL_CALLED&sum=detail.cost_usd&by=actor", auth);
  ASSERT_EQ(sum.status, 200) << sum.body;
  EXPECT_NE(sum.body.find("{\"key\":\"agent-b\",\"rows\":2,\"sum\":0.75,\"summed\":2}"), std::string::npos)
      << sum.body;
}

TEST(CrossLanguage, RowsFromRustAndCppAreAlikeAndVerifyAsOneChain) {
  const std::string dsn = "sqlite:///" + temp_dir() + "/xlang.db";
  Cmd rust = run(std::string(FASTEN_EMIT_ONE) + " '" + dsn + "' node-x req-xlang-1");
  ASSERT_EQ(rust.status, 0) << rust.out;
  std::string cpp_row;
  {
    fasten::Engine e = engine_at(dsn, "node-x", "xlang");
    cpp_row = e.emit_durable(fasten::Event("ORDER_PLACED")
                                 .actor("alice", "user")
                                 .target("order/42")
                                 .request_id("req-xlang-1")
                                 .detail("{\"qty\":3,\"sku\":\"WIDGET\"}"));
    e.shutdown(10s);
  }
  std::string rust_row = rust.out.substr(rust.out.find('{'));
  rust_row = rust_row.substr(0, rust_row.rfind('}') + 1);
  // Everything but ids, times, salts (and what they feed) is byte-for-byte alike.
  static const char* const varying[] = {"id", "origin_id", "timestamp", "detail_salt",
                                        "detail_commitment", "hash", "prev_hash",
                                        "monotonic_seq", nullptr};
  char* a = js_without(rust_row.c_str(), varying);
  char* b = js_without(cpp_row.c_str(), varying);
  EXPECT_EQ(fasten::contract::canonical_json(a), fasten::contract::canonical_json(b));
  free(a);
  free(b);
  EXPECT_EQ(member(cpp_row, "monotonic_seq"), "2");
  EXPECT_EQ(member(cpp_row, "prev_hash"), member(rust_row, "hash"));
  expect_cli_verifies(dsn, 2);
}
