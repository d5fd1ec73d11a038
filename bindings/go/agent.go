package fasten

/*
#include "fasten.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"
)

// Usage is what an agent call reports about itself while it runs: cost,
// tokens, the model it used, or that it was denied. Safe for concurrent use.
type Usage struct {
	mu      sync.Mutex
	cost    *float64
	badCost bool
	in, out *uint64
	model   string
	denied  bool
	reason  string
}

// CostUSD adds to the call's cost in US dollars (detail.cost_usd).
func (u *Usage) CostUSD(usd float64) *Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if math.IsNaN(usd) || math.IsInf(usd, 0) || usd < 0 {
		u.badCost = true
		return u
	}
	c := usd
	if u.cost != nil {
		c += *u.cost
	}
	u.cost = &c
	return u
}

// Tokens adds input and output tokens (detail.input_tokens, detail.output_tokens).
func (u *Usage) Tokens(input, output uint64) *Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	add := func(p **uint64, n uint64) {
		v := n
		if *p != nil {
			v += **p
		}
		*p = &v
	}
	add(&u.in, input)
	add(&u.out, output)
	return u
}

// Model names the model the call used (detail.model).
func (u *Usage) Model(model string) *Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.model = model
	return u
}

// Deny marks the call denied by policy: its outcome is "denied" whatever
// the function returns, and reason (if not empty) is its error.
func (u *Usage) Deny(reason string) *Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.denied, u.reason = true, reason
	return u
}

// json is the usage as the engine reads it; the engine checks the types.
func (u *Usage) json() (string, bool, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := map[string]any{}
	if u.badCost {
		// JSON has no NaN: send what the engine refuses, naming the field.
		m["cost_usd"] = "not a finite number of dollars, 0 or more"
	} else if u.cost != nil {
		m["cost_usd"] = *u.cost
	}
	if u.in != nil {
		m["input_tokens"] = *u.in
	}
	if u.out != nil {
		m["output_tokens"] = *u.out
	}
	if u.model != "" {
		m["model"] = u.model
	}
	if u.denied {
		m["denied"] = true
	}
	if len(m) == 0 {
		return "", u.denied, u.reason
	}
	b, _ := json.Marshal(m)
	return string(b), u.denied, u.reason
}

// CallOption sets an anchor of an agent call's row.
type CallOption func(*callSpec)

type callSpec struct {
	actor, actorKind, target, tenant string
}

// CallActor names the agent that made the call (kind "agent" unless
// CallActorKind says otherwise). Default: the context's actor.
func CallActor(actor string) CallOption { return func(s *callSpec) { s.actor = actor } }

// CallActorKind sets the actor's kind: user, service, schedule or agent.
func CallActorKind(kind string) CallOption { return func(s *callSpec) { s.actorKind = kind } }

// CallTarget names what the call acted on (a handoff's default: the
// receiving agent).
func CallTarget(target string) CallOption { return func(s *callSpec) { s.target = target } }

// CallTenant sets the tenant. Default: the context's.
func CallTenant(tenant string) CallOption { return func(s *callSpec) { s.tenant = tenant } }

// ToolCall runs fn and records it as a TOOL_CALLED row whatever happens:
// its duration, outcome (success, failure, or denied after u.Deny), error
// text (redacted like any detail) and the cost and tokens fn reported on u.
// A panic in fn is recorded as a failure and then re-panics. The request
// id, actor and tenant come from ctx unless an option names them.
//
// It returns fn's error; when fn succeeded but the row could not be
// written, that error.
func (f *Fasten) ToolCall(ctx context.Context, tool string, fn func(u *Usage) error, opts ...CallOption) error {
	return f.agentCall(ctx, "tool", tool, fn, opts)
}

// ModelCall is ToolCall for a call to a model: a MODEL_CALLED row.
func (f *Fasten) ModelCall(ctx context.Context, model string, fn func(u *Usage) error, opts ...CallOption) error {
	return f.agentCall(ctx, "model", model, fn, opts)
}

// Handoff is ToolCall for work handed to another agent: an AGENT_HANDOFF
// row whose target is the receiving agent.
func (f *Fasten) Handoff(ctx context.Context, to string, fn func(u *Usage) error, opts ...CallOption) error {
	return f.agentCall(ctx, "handoff", to, fn, opts)
}

// ToolCall records a tool call through the Default engine.
func ToolCall(ctx context.Context, tool string, fn func(u *Usage) error, opts ...CallOption) error {
	f, err := defaultOrErr()
	if err != nil {
		return err
	}
	return f.ToolCall(ctx, tool, fn, opts...)
}

// ModelCall records a model call through the Default engine.
func ModelCall(ctx context.Context, model string, fn func(u *Usage) error, opts ...CallOption) error {
	f, err := defaultOrErr()
	if err != nil {
		return err
	}
	return f.ModelCall(ctx, model, fn, opts...)
}

// Handoff records a handoff through the Default engine.
func Handoff(ctx context.Context, to string, fn func(u *Usage) error, opts ...CallOption) error {
	f, err := defaultOrErr()
	if err != nil {
		return err
	}
	return f.Handoff(ctx, to, fn, opts...)
}

func (f *Fasten) agentCall(ctx context.Context, kind, name string, fn func(u *Usage) error, opts []CallOption) error {
	var spec callSpec
	for _, o := range opts {
		o(&spec)
	}
	u := &Usage{}
	start := time.Now()
	var err error
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		err = fn(u)
	}()
	elapsed := time.Since(start)
	text := ""
	switch {
	case panicked != nil:
		text = fmt.Sprintf("panicked: %v", panicked)
	case err != nil:
		text = err.Error()
		if text == "" {
			text = fmt.Sprintf("%T", err)
		}
	}
	usage, denied, reason := u.json()
	if denied && reason != "" {
		text = reason
	}
	recErr := f.recordCall(ctx, kind, name, spec, elapsed, text, usage)
	if panicked != nil {
		panic(panicked)
	}
	if err != nil {
		return err
	}
	return recErr
}

func (f *Fasten) recordCall(ctx context.Context, kind, name string, spec callSpec, elapsed time.Duration, errText, usage string) error {
	var requestID string
	if s := scopeOf(ctx); s != nil {
		requestID = s.requestID
		actor, actorKind, tenant := s.attribution()
		if spec.actor == "" && actor != "" {
			spec.actor, spec.actorKind = actor, actorKind
		}
		if spec.tenant == "" {
			spec.tenant = tenant
		}
	}
	engine, err := f.handle()
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	// The field order of struct fasten_agent_call_fields.
	buf := cstrs(kind, name, spec.actor, spec.actorKind, spec.target, spec.tenant, requestID, errText, usage)
	defer buf.free()
	ms := C.uint64_t(elapsed.Milliseconds())
	return call(func() C.int32_t {
		return C.fasten_agent_call(engine, (*C.fasten_agent_call_fields)(buf.base), ms, nil)
	})
}
