package fasten

import (
	"context"
	"fmt"
	"time"
)

// RunJob runs one firing of a scheduled job in a request of its own: a
// fresh request id in ctx (so its audit rows and log lines share it), and
// a sys line when it starts and when it ends (with the error, if any).
// Call it from any scheduler (time.Ticker, robfig/cron, gocron).
func RunJob(ctx context.Context, name string, job func(ctx context.Context) error) error {
	ctx = WithRequestID(ctx, NewRequestID())
	start := time.Now()
	Log.InfoContext(ctx, "job started", "job", name)
	err := job(ctx)
	if err != nil {
		Log.ErrorContext(ctx, "job failed", "job", name, "error", err.Error(),
			"duration_ms", time.Since(start).Milliseconds())
		return fmt.Errorf("job %s: %w", name, err)
	}
	Log.InfoContext(ctx, "job finished", "job", name, "duration_ms", time.Since(start).Milliseconds())
	return nil
}
