package fasten_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	fasten "example.invalid/fasten/bindings/go"
)

func TestAgentCallsAreRecordedAndSummed(t *testing.T) {
	f := newEngine(t, sqliteDSN(t, "agents.db"), "node-go", nil)
	ctx := fasten.WithRequestID(context.Background(), "req-go-agents")
	ctx = fasten.WithActor(ctx, "agent-b", "agent")

	if err := f.ToolCall(ctx, "search_web", func(u *fasten.Usage) error {
		u.CostUSD(0.25).Tokens(100, 20)
		return nil
	}, fasten.CallTarget("web")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("upstream timed out")
	if err := f.ToolCall(ctx, "fetch_page", func(u *fasten.Usage) error {
		u.CostUSD(0.5)
		return boom
	}); err != boom {
		t.Fatalf("the tool's own error comes back: %v", err)
	}
	_ = f.ToolCall(ctx, "delete_repo", func(u *fasten.Usage) error {
		u.Deny("policy: no deletes")
		return errors.New("refused")
	}, fasten.CallActor("agent-c"))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic goes on after it is recorded")
			}
		}()
		_ = f.ToolCall(ctx, "crashy", func(u *fasten.Usage) error { panic("tool blew up") }, fasten.CallActor("agent-c"))
	}()
	if err := f.ModelCall(ctx, "small-model", func(u *fasten.Usage) error {
		u.CostUSD(1).Tokens(900, 150)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A usage the engine refuses is an error naming the field.
	err := f.ToolCall(ctx, "nan", func(u *fasten.Usage) error { u.CostUSD(-1); return nil })
	var fe *fasten.Error
	if !errors.As(err, &fe) || fe.Field != "cost_usd" {
		t.Fatalf("want an error naming cost_usd, got %v", err)
	}
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	const token = "tok-go-agents-0123456789"
	reader, err := fasten.NewReader(f, fasten.ReaderOptions{Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	get := func(path string) map[string]any {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		reader.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		return body
	}
	rows := get("/audit?request_id=req-go-agents")["rows"].([]any)
	if len(rows) != 5 {
		t.Fatalf("want 5 rows, got %d", len(rows))
	}
	byTool := map[string]map[string]any{}
	for _, r := range rows {
		row := r.(map[string]any)
		d := row["detail"].(map[string]any)
		name, _ := d["tool"].(string)
		if name == "" {
			name, _ = d["model"].(string)
		}
		byTool[name] = row
	}
	check := func(name, code, outcome, actor, errText string) {
		t.Helper()
		row := byTool[name]
		if row["code"] != code || row["outcome"] != outcome || row["actor"] != actor || row["actor_kind"] != "agent" {
			t.Errorf("%s: %v", name, row)
		}
		if got, _ := row["detail"].(map[string]any)["error"].(string); got != errText {
			t.Errorf("%s: error %q, want %q", name, got, errText)
		}
	}
	check("search_web", "TOOL_CALLED", "success", "agent-b", "")
	check("fetch_page", "TOOL_CALLED", "failure", "agent-b", "upstream timed out")
	check("delete_repo", "TOOL_CALLED", "denied", "agent-c", "policy: no deletes")
	check("crashy", "TOOL_CALLED", "failure", "agent-c", "panicked: tool blew up")
	check("small-model", "MODEL_CALLED", "success", "agent-b", "")
	if d := byTool["search_web"]["detail"].(map[string]any); d["input_tokens"] != 100.0 || d["cost_usd"] != 0.25 {
		t.Errorf("search_web detail: %v", d)
	}

	s := get("/audit/summary?code=TOOL_CALLED&sum=detail.cost_usd&by=actor")
	groups, _ := json.Marshal(s["groups"])
	want := `[{"key":"agent-b","rows":2,"sum":0.75,"summed":2},{"key":"agent-c","rows":2,"sum":0,"summed":0}]`
	if string(groups) != want {
		t.Errorf("summary groups %s, want %s", groups, want)
	}
	if !strings.Contains(string(mustJSON(t, s["total"])), `"sum":0.75`) {
		t.Errorf("total %v", s["total"])
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
