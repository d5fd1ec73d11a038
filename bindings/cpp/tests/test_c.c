/* The C ABI from plain C: golden vectors, bad input, and 8 threads emitting
 * into one chain. CI runs this binary under valgrind (no leak, no invalid
 * access). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fasten.h"
#include "json_scan.h"

static int failures = 0;
#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      failures++;                                                     \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fprintf(stderr, "\n");                                          \
    }                                                                 \
  } while (0)

static fasten_str S(const char *s) { fasten_str r = {s, s ? strlen(s) : 0}; return r; }
static const char *last(void) { return fasten_last_error(NULL); }
static const char *last_field(void) { return fasten_last_error_field(NULL); }

/* Calls a string-returning ABI function's result: compares and frees. */
/* `out` is read only after the call (argument order is unspecified in C). */
static void expect_out(int32_t rc, char **out, const char *want, const char *what) {
  CHECK(rc == FASTEN_OK, "%s: status %d: %s", what, rc, last());
  if (rc == FASTEN_OK) CHECK(strcmp(*out, want) == 0, "%s: got %s want %s", what, *out, want);
  fasten_free(*out);
  *out = NULL;
}

static int check_row(const char *row) {
  char *out = NULL;
  size_t len = 0;
  char *raw = js_raw(row);
  char *hash = js_decode(js_get(row, "hash"));
  expect_out(fasten_row_hash(S(raw), &out, &len), &out, hash, "row_hash");
  const char *salt = js_get(row, "detail_salt");
  const char *detail = js_get(row, "detail");
  if (salt && *salt == '"' && detail && *detail == '{') {
    char *s = js_decode(salt), *d = js_raw(detail), *c = js_decode(js_get(row, "detail_commitment"));
    out = NULL;
    expect_out(fasten_detail_commitment(S(s), S(d), &out, &len), &out, c, "detail_commitment");
    free(s); free(d); free(c);
  }
  free(raw); free(hash);
  return 1;
}

static void vectors(const char *path) {
  char *file = js_read_file(path);
  CHECK(file != NULL, "cannot read %s", path);
  if (!file) return;
  int rows = 0;
  const char *it = js_get(file, "single_rows"), *key, *val;
  size_t klen;
  static const char *const unhashed[] = {"detail", "detail_salt", "hash", NULL};
  while (js_member(&it, &key, &klen, &val)) {
    const char *row = js_get(val, "row");
    rows += check_row(row);
    char *out = NULL;
    size_t len = 0;
    /* The 23 hashed members, canonicalised by the engine, are the vector's bytes. */
    char *hashed = js_without(row, unhashed), *want = js_decode(js_get(val, "canonical_json"));
    expect_out(fasten_canonical_json(S(hashed), &out, &len), &out, want, "canonical_json");
    free(hashed); free(want);
    const char *jcs = js_get(val, "detail_jcs");
    if (jcs) {
      char *d = js_raw(js_get(row, "detail")), *w = js_decode(jcs);
      out = NULL;
      expect_out(fasten_canonical_json(S(d), &out, &len), &out, w, "detail_jcs");
      free(d); free(w);
    }
  }
  it = js_get(file, "chain");
  while (js_element(&it, &val)) rows += check_row(val);
  rows += check_row(js_get(file, "chain_row_2_redacted"));
  CHECK(rows >= 5, "only %d vector rows", rows);
  printf("vectors: %d rows reproduced\n", rows);
  free(file);
}

static const char *CODES =
    "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n";

static fasten_engine *engine_at(const char *dsn, const char *node) {
  fasten_str keys[] = {S("FASTEN_SERVICE_ID"), S("FASTEN_NODE_ID"), S("FASTEN_AUDIT_DSN"), S("FASTEN_STDOUT")};
  fasten_str values[] = {S("c-test"), S(node), S(dsn), S("none")};
  fasten_engine *e = NULL;
  int32_t rc = fasten_init(keys, values, 4, &e);
  CHECK(rc == FASTEN_OK, "init: %s", last());
  if (rc != FASTEN_OK) return NULL;
  rc = fasten_register_yaml(e, S("sales.codes.yaml"), S(CODES), NULL);
  CHECK(rc == FASTEN_OK, "register: %s", last());
  return e;
}

static fasten_event order(const char *detail) {
  fasten_event ev;
  memset(&ev, 0, sizeof ev);
  ev.code = S("ORDER_PLACED");
  ev.target = S("order/42");
  ev.actor = S("alice");
  ev.actor_kind = S("user");
  ev.detail_json = S(detail);
  return ev;
}

static void bad_input(fasten_engine *e) {
  char id[FASTEN_EVENT_ID_SIZE];
  fasten_event ev = order("{\"qty\":1}");
  ev.code = S("NO_SUCH_CODE");
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_UNKNOWN_CODE, "unknown code: %s", last());
  CHECK(strstr(last(), "NO_SUCH_CODE") != NULL, "message names the code: %s", last());

  ev = order("{\"qty\":");
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_INVALID_EVENT, "bad json");
  CHECK(strcmp(last_field(), "detail") == 0, "field detail: %s", last_field());
  CHECK(strstr(last(), "not JSON") != NULL, "message: %s", last());

  ev = order("{\"qty\":1} trailing");
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_INVALID_EVENT, "trailing garbage");
  CHECK(strstr(last(), "not JSON") != NULL, "message: %s", last());

  ev = order("[1,2]");
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_INVALID_EVENT, "array detail");
  CHECK(strstr(last(), "must be a JSON object") != NULL, "message: %s", last());

  CHECK(fasten_emit(e, NULL, id) == FASTEN_ERR_ARGUMENT, "NULL event");
  CHECK(strcmp(last_field(), "event") == 0, "field event: %s", last_field());
  ev = order("{}");
  CHECK(fasten_emit(NULL, &ev, id) == FASTEN_ERR_ARGUMENT, "NULL engine");

  ev = order("{}");
  ev.target.ptr = NULL; /* length without a pointer */
  ev.target.len = 5;
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_ARGUMENT, "NULL with length");
  CHECK(strcmp(last_field(), "target") == 0, "field target: %s", last_field());

  static const char bad_utf8[] = {'o', 'r', (char)0xff, 'd', 0};
  ev = order("{}");
  ev.target = S(bad_utf8);
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_ARGUMENT, "bad UTF-8");
  CHECK(strstr(last(), "not UTF-8") != NULL, "message: %s", last());

  ev = order("{}");
  ev.request_id = S("x\r\nSet-Cookie: a=b");
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_INVALID_EVENT, "hostile request id");
  CHECK(strcmp(last_field(), "request_id") == 0, "field request_id: %s", last_field());

  ev = order("{}");
  ev.actor_kind = S("robot");
  CHECK(fasten_emit(e, &ev, id) == FASTEN_ERR_INVALID_EVENT, "bad actor kind");
  CHECK(strstr(last(), "invalid actor_kind \"robot\"") != NULL, "message: %s", last());

  fasten_engine *none = NULL;
  fasten_str k = S("FASTEN_AUDIT_DNS"), v = S("sqlite:///x.db");
  CHECK(fasten_init(&k, &v, 1, &none) == FASTEN_ERR_CONFIG, "typo in a setting");
  CHECK(strstr(last(), "FASTEN_AUDIT_DSN") != NULL, "names the nearest: %s", last());
  CHECK(none == NULL, "no engine on failure");

  CHECK(fasten_context_exit() != FASTEN_OK, "exit without a scope");
  CHECK(fasten_register_yaml(e, S("bad.yaml"), S("domain: [\n"), NULL) == FASTEN_ERR_CODES, "bad yaml");
  CHECK(fasten_register_yaml(e, S("y.codes.yaml"),
                             S("domain: y\ncodes:\n  A_B:\n    category: a\n    action: b\n    severity: loud\n"),
                             NULL) == FASTEN_ERR_CODES, "bad severity");
  CHECK(strstr(last(), "y.codes.yaml:6:15: cannot parse the code file: ") != NULL, "what failed: %s", last());
  CHECK(strstr(last(), "invalid severity \"loud\"") != NULL, "the cause: %s", last());
}

struct job { fasten_engine *e; int n; int failed; };

static void *emitter(void *arg) {
  struct job *j = (struct job *)arg;
  char detail[64], id[FASTEN_EVENT_ID_SIZE];
  for (int i = 0; i < j->n; i++) {
    snprintf(detail, sizeof detail, "{\"qty\":%d,\"sku\":\"WIDGET\"}", i);
    fasten_event ev = order(detail);
    if (fasten_emit(j->e, &ev, id) != FASTEN_OK || strncmp(id, "evt-", 4) != 0) j->failed++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_c <spec/vectors/form3.json>\n");
    return 2;
  }
  vectors(argv[1]);

  char dir[] = "/tmp/fasten-c-XXXXXX";
  if (!mkdtemp(dir)) return 2;
  char dsn[256];
  snprintf(dsn, sizeof dsn, "sqlite:///%s/c.db", dir);
  fasten_engine *e = engine_at(dsn, "node-c");
  if (!e) return 1;
  bad_input(e);

  /* Context: a scope's request id and actor land on the row. */
  CHECK(fasten_context_enter(S("req-c-1")) == FASTEN_OK, "enter: %s", last());
  CHECK(fasten_context_set_actor(S("carol"), S("user")) == FASTEN_OK, "actor: %s", last());
  char *out = NULL;
  size_t len = 0;
  CHECK(fasten_context_request_id(&out, &len) == FASTEN_OK && len == 7 && strcmp(out, "req-c-1") == 0, "current id");
  fasten_free(out);
  fasten_event ev = order("{\"password\":\"hunter2\",\"qty\":1}");
  ev.actor = S(NULL);
  ev.actor_kind = S(NULL);
  out = NULL;
  CHECK(fasten_emit_durable(e, &ev, &out, &len) == FASTEN_OK, "durable: %s", last());
  if (out) {
    CHECK(strstr(out, "\"request_id\":\"req-c-1\"") != NULL, "row request id: %s", out);
    CHECK(strstr(out, "\"actor\":\"carol\"") != NULL, "row actor: %s", out);
    CHECK(strstr(out, "hunter2") == NULL, "password redacted: %s", out);
  }
  fasten_free(out);
  CHECK(fasten_context_exit() == FASTEN_OK, "exit");
  out = NULL;
  CHECK(fasten_context_request_id(&out, &len) == FASTEN_OK && out == NULL, "no id after exit");

  /* 8 threads at once into one chain. */
  enum { THREADS = 8, EACH = 100 };
  pthread_t t[THREADS];
  struct job jobs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i].e = e; jobs[i].n = EACH; jobs[i].failed = 0;
    pthread_create(&t[i], NULL, emitter, &jobs[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    CHECK(jobs[i].failed == 0, "thread %d: %d emits failed", i, jobs[i].failed);
  }
  CHECK(fasten_flush(e, 30000) == FASTEN_OK, "flush: %s", last());
  out = NULL;
  CHECK(fasten_shutdown(e, 30000, &out, &len) == FASTEN_OK, "shutdown: %s", last());
  CHECK(out && strstr(out, "\"written\":801") != NULL, "written: %s", out ? out : "");
  fasten_free(out);
  ev = order("{}");
  CHECK(fasten_emit(e, &ev, NULL) == FASTEN_ERR_CLOSED, "emit after shutdown");
  fasten_engine_free(e);

  out = NULL;
  CHECK(fasten_verify(S(dsn), &out, &len) == FASTEN_OK, "verify: %s", last());
  CHECK(out && strstr(out, "\"ok\":true") && strstr(out, "\"rows\":801"), "report: %s", out ? out : "");
  fasten_free(out);

  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  if (failures) {
    fprintf(stderr, "test_c: %d failures\n", failures);
    return 1;
  }
  printf("test_c: ok\n");
  return 0;
}
