package fasten_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	fasten "example.invalid/fasten/bindings/go"
)

// The baseline: what a Go service does without fasten, one slog JSON line
// per change, written to a file.
func slogToFile(b *testing.B) *slog.Logger {
	file, err := os.Create(filepath.Join(b.TempDir(), "audit.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { file.Close() })
	return slog.New(slog.NewJSONHandler(file, nil))
}

func benchEngine(b *testing.B) *fasten.Fasten {
	return newEngine(b, sqliteDSN(b, "bench.db"), "node-bench",
		map[string]string{"FASTEN_AUDIT_QUEUE_CAPACITY": "262144"})
}

func BenchmarkEmit(b *testing.B) {
	f := benchEngine(b)
	ctx := fasten.WithRequestID(context.Background(), "bench-req-1")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Emit(ctx, order(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = f.Flush(context.Background())
}

func BenchmarkSlogJSONFile(b *testing.B) {
	log := slogToFile(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		log.InfoContext(ctx, "ORDER_PLACED", "request_id", "bench-req-1", "actor", "alice",
			"actor_kind", "user", "target", "order/42", "detail", map[string]any{"qty": i, "sku": "WIDGET"})
	}
}

// BenchmarkEmitVsSlog times each call of both, interleaved in blocks so
// both see the same machine, and reports p50 and p99 of each and the
// ratios (goal: emit p50 no slower than slog's). Run with -benchtime=1x:
// each iteration is 20,000 calls of each.
func BenchmarkEmitVsSlog(b *testing.B) {
	f := benchEngine(b)
	log := slogToFile(b)
	ctx := fasten.WithRequestID(context.Background(), "bench-req-1")
	const n, block = 20000, 1000
	var emit, slg []time.Duration
	b.ResetTimer()
	for r := 0; r < b.N; r++ {
		for done := 0; done < n; done += block {
			for i := 0; i < block; i++ {
				start := time.Now()
				if _, err := f.Emit(ctx, order(done+i)); err != nil {
					b.Fatal(err)
				}
				emit = append(emit, time.Since(start))
			}
			for i := 0; i < block; i++ {
				start := time.Now()
				log.InfoContext(ctx, "ORDER_PLACED", "request_id", "bench-req-1", "actor", "alice",
					"actor_kind", "user", "target", "order/42", "detail", map[string]any{"qty": done + i, "sku": "WIDGET"})
				slg = append(slg, time.Since(start))
			}
		}
	}
	b.StopTimer()
	_ = f.Flush(context.Background())
	pct := func(d []time.Duration, p float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(float64(len(d)-1)*p+0.5)].Nanoseconds())
	}
	e50, e99, s50, s99 := pct(emit, 0.5), pct(emit, 0.99), pct(slg, 0.5), pct(slg, 0.99)
	b.ReportMetric(e50, "emit-p50-ns")
	b.ReportMetric(e99, "emit-p99-ns")
	b.ReportMetric(s50, "slog-p50-ns")
	b.ReportMetric(s99, "slog-p99-ns")
	b.ReportMetric(e50/s50, "p50-ratio")
	b.ReportMetric(e99/s99, "p99-ratio")
}
