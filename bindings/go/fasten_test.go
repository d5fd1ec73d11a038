package fasten_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	fasten "example.invalid/fasten/bindings/go"
)

const codes = "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n"

// repo is the repository root, two levels up from bindings/go.
func repo(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func newEngine(t testing.TB, dsn, node string, settings map[string]string) *fasten.Fasten {
	t.Helper()
	if settings == nil {
		settings = map[string]string{}
	}
	settings["FASTEN_STDOUT"] = "none"
	f, err := fasten.New(fasten.Config{ServiceID: "go-test", NodeID: node, AuditDSN: dsn, Settings: settings})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	if _, err := f.RegisterYAML("sales.codes.yaml", codes); err != nil {
		t.Fatalf("register: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func sqliteDSN(t testing.TB, name string) string {
	return "sqlite:///" + filepath.Join(t.TempDir(), name)
}

func order(qty int) fasten.Event {
	return fasten.Event{Code: "ORDER_PLACED", Target: "order/42", Actor: "alice", ActorKind: "user",
		Detail: map[string]any{"qty": qty, "sku": "WIDGET"}}
}

// binary is a Rust binary the tests call: from an env var (ci-go.sh sets
// them), else the repo's target/debug. Missing: fail under CI, else skip.
func binary(t *testing.T, env, rel string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(repo(t), "target", "debug", rel)
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and %s is missing (%s): build it with cargo first", rel, path)
		}
		t.Skipf("SKIPPED: %s is missing (%s); run `cargo build -p fasten-cli -p fasten-ffi --examples`", rel, path)
	}
	return path
}

func cliVerify(t *testing.T, dsn string, rows int) {
	t.Helper()
	cli := binary(t, "FASTEN_CLI", "fasten")
	out, err := exec.Command(cli, "verify", "--json", "--dsn", dsn).CombinedOutput()
	if err != nil {
		t.Fatalf("fasten verify: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(`"ok":true`)) || !bytes.Contains(out, []byte(fmt.Sprintf(`"rows":%d`, rows))) {
		t.Fatalf("fasten verify: want ok with %d rows, got %s", rows, out)
	}
}

func TestGoldenVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo(t), "spec", "vectors", "form3.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		SingleRows map[string]struct {
			Row           map[string]json.RawMessage `json:"row"`
			CanonicalJSON string                     `json:"canonical_json"`
			DetailJCS     *string                    `json:"detail_jcs"`
		} `json:"single_rows"`
		Chain    []map[string]json.RawMessage `json:"chain"`
		Redacted map[string]json.RawMessage   `json:"chain_row_2_redacted"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	checked := 0
	checkRow := func(name string, row map[string]json.RawMessage) {
		text, _ := json.Marshal(row)
		var want, salt string
		_ = json.Unmarshal(row["hash"], &want)
		got, err := fasten.RowHash(string(text))
		if err != nil || got != want {
			t.Errorf("%s: row hash %q, %v; want %q", name, got, err, want)
		}
		if json.Unmarshal(row["detail_salt"], &salt) == nil && salt != "" && string(row["detail"]) != "null" {
			var commitment string
			_ = json.Unmarshal(row["detail_commitment"], &commitment)
			got, err := fasten.DetailCommitment(salt, string(row["detail"]))
			if err != nil || got != commitment {
				t.Errorf("%s: commitment %q, %v; want %q", name, got, err, commitment)
			}
		}
		checked++
	}
	for name, c := range v.SingleRows {
		checkRow(name, c.Row)
		hashed := map[string]json.RawMessage{}
		for k, val := range c.Row {
			if k != "detail" && k != "detail_salt" && k != "hash" {
				hashed[k] = val
			}
		}
		text, _ := json.Marshal(hashed)
		if got, err := fasten.CanonicalJSON(string(text)); err != nil || got != c.CanonicalJSON {
			t.Errorf("%s: canonical %q, %v; want %q", name, got, err, c.CanonicalJSON)
		}
		if c.DetailJCS != nil {
			if got, err := fasten.CanonicalJSON(string(c.Row["detail"])); err != nil || got != *c.DetailJCS {
				t.Errorf("%s: detail jcs %q, %v; want %q", name, got, err, *c.DetailJCS)
			}
		}
	}
	for i, row := range v.Chain {
		checkRow(fmt.Sprintf("chain[%d]", i), row)
	}
	checkRow("chain_row_2_redacted", v.Redacted)
	if checked < 5 {
		t.Fatalf("only %d vector rows", checked)
	}
}

// Issue 17: 32 goroutines emitting at once; run with -race.
func TestEmitFrom32Goroutines(t *testing.T) {
	dsn := sqliteDSN(t, "race.db")
	f := newEngine(t, dsn, "node-go", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx := fasten.WithRequestID(context.Background(), fmt.Sprintf("req-g%d", g))
			for i := 0; i < 50; i++ {
				id, err := f.Emit(ctx, order(i))
				if err != nil || !strings.HasPrefix(id, "evt-") {
					errs <- fmt.Errorf("goroutine %d: %q %v", g, id, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stats, err := f.QueueStats()
	if err != nil || stats.Written != 1600 {
		t.Fatalf("written %d, %v", stats.Written, err)
	}
	report, err := fasten.Verify(dsn)
	if err != nil || !report.OK || report.Nodes[0].Rows != 1600 {
		t.Fatalf("verify %+v, %v", report, err)
	}
}

func TestContextTravelsPerCall(t *testing.T) {
	f := newEngine(t, sqliteDSN(t, "ctx.db"), "node-ctx", nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx := fasten.WithRequestID(context.Background(), fmt.Sprintf("req-%d", g))
			ctx = fasten.WithActor(ctx, fmt.Sprintf("user-%d", g), "user")
			ctx = fasten.WithTenant(ctx, "acme")
			row, err := f.EmitDurable(ctx, fasten.Event{Code: "ORDER_PLACED", Target: "order/1"})
			if err != nil {
				t.Error(err)
				return
			}
			if row.RequestID != fmt.Sprintf("req-%d", g) || row.Actor != fmt.Sprintf("user-%d", g) ||
				row.ActorKind != "user" || row.TenantID == nil || *row.TenantID != "acme" {
				t.Errorf("goroutine %d got row %+v", g, row)
			}
		}(g)
	}
	wg.Wait()
	if got := fasten.RequestID(fasten.WithRequestID(context.Background(), "x")); got != "x" {
		t.Fatalf("RequestID = %q", got)
	}
}

func TestBadInputIsATypedErrorNamingTheField(t *testing.T) {
	f := newEngine(t, sqliteDSN(t, "bad.db"), "node-bad", nil)
	ctx := context.Background()
	cases := []struct {
		name  string
		event fasten.Event
		kind  fasten.ErrorKind
		field string
		text  string
	}{
		{"unknown code", fasten.Event{Code: "NO_SUCH_CODE"}, fasten.KindUnknownCode, "code", "NO_SUCH_CODE"},
		{"bad json", fasten.Event{Code: "ORDER_PLACED", Detail: json.RawMessage(`{"qty":`)}, fasten.KindInvalidEvent, "detail", "not JSON"},
		{"not an object", fasten.Event{Code: "ORDER_PLACED", Detail: []int{1}}, fasten.KindInvalidEvent, "detail", "must be a JSON object"},
		{"hostile request id", fasten.Event{Code: "ORDER_PLACED", RequestID: "a\r\nSet-Cookie: x"}, fasten.KindInvalidEvent, "request_id", "[A-Za-z0-9._:-]"},
		{"bad outcome", fasten.Event{Code: "ORDER_PLACED", Outcome: "maybe"}, fasten.KindInvalidEvent, "outcome", `invalid outcome "maybe"`},
		{"invalid utf-8", fasten.Event{Code: "ORDER_PLACED", Target: "x\xffy"}, fasten.KindArgument, "target", "not UTF-8"},
	}
	for _, c := range cases {
		_, err := f.Emit(ctx, c.event)
		var fe *fasten.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: want *fasten.Error, got %v", c.name, err)
			continue
		}
		if fe.Kind != c.kind || fe.Field != c.field || !strings.Contains(fe.Message, c.text) {
			t.Errorf("%s: got kind %v field %q message %q", c.name, fe.Kind, fe.Field, fe.Message)
		}
	}
	_, err := fasten.New(fasten.Config{Settings: map[string]string{"FASTEN_AUDIT_DNS": "sqlite:///x.db"}})
	var fe *fasten.Error
	if !errors.As(err, &fe) || fe.Kind != fasten.KindConfig || !strings.Contains(fe.Message, "FASTEN_AUDIT_DSN") {
		t.Errorf("typo in a setting: %v", err)
	}
	// A code file that does not parse: what failed, then the parser's reason, once.
	_, err = f.RegisterYAML("y.codes.yaml", "domain: y\ncodes:\n  A_B:\n    category: a\n    action: b\n    severity: loud\n")
	if !errors.As(err, &fe) || fe.Kind != fasten.KindCodes ||
		!strings.Contains(fe.Message, "y.codes.yaml:6:15: cannot parse the code file: ") ||
		strings.Count(fe.Message, `invalid severity "loud"`) != 1 {
		t.Errorf("bad code file: %v", err)
	}
	if err := fasten.CheckRequestID("ok-id_1.2:3"); err != nil {
		t.Errorf("good id refused: %v", err)
	}
	// Nothing bad reached the chain; a good row still goes in.
	if _, err := f.Emit(ctx, order(1)); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.QueueStats(); s.Written != 1 {
		t.Fatalf("written %d", s.Written)
	}
	_ = f.Close()
	if _, err := f.Emit(ctx, order(1)); !errors.As(err, &fe) || fe.Kind != fasten.KindClosed {
		t.Fatalf("emit after close: %v", err)
	}
}

func TestFlushHonoursTheDeadline(t *testing.T) {
	f := newEngine(t, sqliteDSN(t, "flush.db"), "node-flush", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("flush on a cancelled context: %v", err)
	}
}

func TestRequestIDFromHeaders(t *testing.T) {
	if id, src := fasten.RequestIDFrom("mine-1", ""); id != "mine-1" || src != fasten.FromHeader {
		t.Errorf("kept header: %q %d", id, src)
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if id, src := fasten.RequestIDFrom("bad id!", tp); id != "4bf92f3577b34da6a3ce929d0e0e4736" || src != fasten.FromTraceparent {
		t.Errorf("traceparent: %q %d", id, src)
	}
	if id, src := fasten.RequestIDFrom("", "01-nope"); len(id) != 32 || src != fasten.Minted {
		t.Errorf("minted: %q %d", id, src)
	}
	h := fasten.OutboundHeaders(fasten.WithRequestID(context.Background(), "4bf92f3577b34da6a3ce929d0e0e4736"))
	if h["x-request-id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || !strings.HasPrefix(h["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Errorf("outbound headers: %v", h)
	}
}

// One request through the middleware yields an api row, a sys row and an
// audit row sharing one id, read back through the mounted reader.
func TestHTTPMiddlewareAndReader(t *testing.T) {
	db := sqliteDSN(t, "http.db")
	f, err := fasten.Init(fasten.Config{ServiceID: "go-http", NodeID: "node-http", AuditDSN: db,
		Settings: map[string]string{"FASTEN_SYS_DSN": db, "FASTEN_API_DSN": db, "FASTEN_STDOUT": "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.RegisterYAML("", codes); err != nil {
		t.Fatal(err)
	}
	token := "0123456789abcdef0123456789abcdef"
	reader, err := fasten.NewReader(f, fasten.ReaderOptions{Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/orders/", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		fasten.SetActor(ctx, "alice", "user")
		fasten.SetTarget(ctx, "order/42")
		fasten.Log.InfoContext(ctx, "order placed", "sku", "WIDGET", "password", "hunter2")
		if _, err := fasten.Emit(ctx, fasten.Event{Code: "ORDER_PLACED", Target: "order/42",
			Detail: map[string]any{"qty": 3}}); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	mux.Handle("/api/v1/logs/", http.StripPrefix("/api/v1/logs", reader))
	srv := httptest.NewServer(fasten.Middleware(mux))
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/orders/42?token=secret", strings.NewReader("{}"))
	req.Header.Set("X-Request-ID", "req-http-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Request-ID") != "req-http-1" {
		t.Fatalf("status %d, id %q", resp.StatusCode, resp.Header.Get("X-Request-ID"))
	}
	if err := fasten.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, _ := get("/api/v1/logs/correlate?request_id=req-http-1", ""); status != 401 {
		t.Fatalf("without a token: %d", status)
	}
	// The api row is written after the handler returns; give the stream a moment.
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		var status int
		status, body = get("/api/v1/logs/correlate?request_id=req-http-1", token)
		if status != 200 {
			t.Fatalf("correlate: %d %s", status, body)
		}
		if strings.Contains(body, `"stream":"api"`) || time.Now().After(deadline) {
			break
		}
		_ = fasten.Flush(context.Background())
		time.Sleep(50 * time.Millisecond)
	}
	var timeline struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := json.Unmarshal([]byte(body), &timeline); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	kinds := map[string]bool{}
	for _, e := range timeline.Entries {
		kind, _ := e["stream"].(string)
		kinds[kind] = true
	}
	for _, want := range []string{"audit", "sys", "api"} {
		if !kinds[want] {
			t.Errorf("no %s row in %s", want, body)
		}
	}
	for _, secret := range []string{"hunter2", "token=secret"} {
		if strings.Contains(body, secret) {
			t.Errorf("%q reached the rows: %s", secret, body)
		}
	}
	if !strings.Contains(body, `"alice"`) {
		t.Errorf("the handler's actor is not on the rows: %s", body)
	}
}

func TestPostgresFromGoroutinesVerifiedByTheCLI(t *testing.T) {
	base := os.Getenv("FASTEN_TEST_PG")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test"
	}
	schema := fmt.Sprintf("fasten_go_%d_%d", os.Getpid(), rand.Intn(1_000_000))
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	dsn := base + sep + "table=" + schema + ".audit_log"
	f, err := fasten.New(fasten.Config{ServiceID: "go-test", NodeID: "node-go-pg", AuditDSN: dsn,
		Settings: map[string]string{"FASTEN_STDOUT": "none"}})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and PostgreSQL is unreachable: %v", err)
		}
		t.Skipf("SKIPPED: PostgreSQL unreachable: %v", err)
	}
	defer func() {
		if _, err := exec.LookPath("psql"); err == nil {
			_ = exec.Command("psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test",
				"-c", "DROP SCHEMA "+schema+" CASCADE").Run()
		}
	}()
	if _, err := f.RegisterYAML("", codes); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := f.Emit(context.Background(), order(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cliVerify(t, dsn, 400)
}

// Rows from Rust, C++ (when its emitter is built) and Go in one store:
// alike in everything but ids, times and salts, and one chain for the Rust
// CLI.
func TestCrossLanguageWithRustAndCpp(t *testing.T) {
	emitOne := binary(t, "FASTEN_EMIT_ONE", filepath.Join("examples", "emit_one"))
	dsn := sqliteDSN(t, "xlang.db")
	var others [][]byte
	out, err := exec.Command(emitOne, dsn, "node-x", "req-xlang-go").Output()
	if err != nil {
		t.Fatalf("rust emit_one: %v", err)
	}
	others = append(others, out)
	if cpp := os.Getenv("FASTEN_CPP_EMIT_ONE"); cpp != "" {
		out, err := exec.Command(cpp, dsn, "node-x", "req-xlang-go").Output()
		if err != nil {
			t.Fatalf("c++ emit_one: %v", err)
		}
		others = append(others, out)
	} else {
		t.Log("FASTEN_CPP_EMIT_ONE not set: Rust and Go rows only (scripts/ci-go.sh sets it)")
	}
	f, err := fasten.New(fasten.Config{ServiceID: "xlang", NodeID: "node-x", AuditDSN: dsn,
		Settings: map[string]string{"FASTEN_STDOUT": "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.RegisterYAML("", codes); err != nil {
		t.Fatal(err)
	}
	row, err := f.EmitDurable(context.Background(), fasten.Event{Code: "ORDER_PLACED", Actor: "alice",
		ActorKind: "user", Target: "order/42", RequestID: "req-xlang-go",
		Detail: map[string]any{"qty": 3, "sku": "WIDGET"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	strip := func(text []byte) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(bytes.TrimSpace(text), &m); err != nil {
			t.Fatalf("%v: %s", err, text)
		}
		for _, k := range []string{"id", "origin_id", "timestamp", "detail_salt", "detail_commitment", "hash", "prev_hash", "monotonic_seq"} {
			delete(m, k)
		}
		b, _ := json.Marshal(m)
		c, err := fasten.CanonicalJSON(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	goRow := strip(row.JSON)
	prev := ""
	for i, other := range others {
		if a := strip(other); a != goRow {
			t.Fatalf("rows differ:\nother[%d] %s\ngo       %s", i, a, goRow)
		}
		var r fasten.Row
		_ = json.Unmarshal(bytes.TrimSpace(other), &r)
		if r.MonotonicSeq != int64(i+1) || (i > 0 && r.PrevHash != prev) {
			t.Fatalf("row %d: seq %d prev %s", i, r.MonotonicSeq, r.PrevHash)
		}
		prev = r.Hash
	}
	if row.MonotonicSeq != int64(len(others)+1) || row.PrevHash != prev {
		t.Fatalf("not one chain: go seq %d prev %s, want prev %s", row.MonotonicSeq, row.PrevHash, prev)
	}
	cliVerify(t, dsn, len(others)+1)
}

func TestRunJobGivesEachFiringItsOwnID(t *testing.T) {
	f, err := fasten.Init(fasten.Config{ServiceID: "go-job", NodeID: "node-job", AuditDSN: sqliteDSN(t, "job.db"),
		Settings: map[string]string{"FASTEN_STDOUT": "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.RegisterYAML("", codes); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 2; i++ {
		err := fasten.RunJob(context.Background(), "nightly", func(ctx context.Context) error {
			row, err := fasten.EmitDurable(ctx, fasten.Event{Code: "ORDER_PLACED", Target: "batch"})
			if err == nil && row.RequestID != fasten.RequestID(ctx) {
				err = fmt.Errorf("row id %s, ctx id %s", row.RequestID, fasten.RequestID(ctx))
			}
			ids = append(ids, fasten.RequestID(ctx))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) != 2 || ids[0] == ids[1] || len(ids[0]) != 32 {
		t.Fatalf("ids %v", ids)
	}
	want := errors.New("boom")
	if err := fasten.RunJob(context.Background(), "failing", func(context.Context) error { return want }); !errors.Is(err, want) {
		t.Fatalf("job error: %v", err)
	}
}
