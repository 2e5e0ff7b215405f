package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff computes exponential delays with full jitter, capped at max. It is the agent's one
// retry-delay policy: Vault re-logins and redelivery delays of failed events both use it.
type backoff struct {
	base, max time.Duration
}

func newBackoff(base, max time.Duration) backoff { return backoff{base: base, max: max} }

// delay returns the wait before attempt (1-based): a random duration in [d/2, d] where d doubles
// with each attempt up to max.
func (b backoff) delay(attempt int) time.Duration {
	d := b.base
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	if d > b.max {
		d = b.max
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1)) //nolint:gosec // jitter needs no cryptographic randomness
}

// sleepCtx waits for d or until ctx ends; it reports whether the full wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
