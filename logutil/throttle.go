// Package logutil holds logging helpers. A honeypot collector receives floods
// of garbage from the internet; log lines caused by clients must be bounded,
// or an attacker fills the disk (ewsposter once wrote 50 GB/day of logs on
// T-Pots, users.md §2 item 4).
package logutil

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttled lets at most Burst lines through per Interval and reports how many
// it suppressed when the next interval opens.
type Throttled struct {
	log      *slog.Logger
	burst    int
	interval time.Duration

	mu         sync.Mutex
	windowEnd  time.Time
	used       int
	suppressed int
}

// NewThrottled returns a logger letting burst lines through per interval.
func NewThrottled(log *slog.Logger, burst int, interval time.Duration) *Throttled {
	return &Throttled{log: log, burst: burst, interval: interval}
}

// Warn logs at warning level unless the budget of the current interval is spent.
func (t *Throttled) Warn(ctx context.Context, msg string, args ...any) {
	now := time.Now()
	t.mu.Lock()
	if now.After(t.windowEnd) {
		if t.suppressed > 0 {
			t.log.WarnContext(ctx, "Log lines suppressed by rate limit", "count", t.suppressed, "message", msg)
		}
		t.windowEnd, t.used, t.suppressed = now.Add(t.interval), 0, 0
	}
	if t.used >= t.burst {
		t.suppressed++
		t.mu.Unlock()
		return
	}
	t.used++
	t.mu.Unlock()
	t.log.WarnContext(ctx, msg, args...)
}
