package agent

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxRetryAfter caps how long one Retry-After answer can hold the agent's Vault requests, so
// a malformed or hostile header cannot stall the agent for hours.
const maxRetryAfter = 5 * time.Minute

// retryAfterTransport makes the agent's Vault client honour Retry-After: once Vault (or a load
// balancer in front of it) answers 429 or 503 with Retry-After, every later request waits until
// that time has passed instead of hammering a server that asked for a pause. The wait ends
// early when the request's context ends.
type retryAfterTransport struct {
	next http.RoundTripper
	now  func() time.Time
	// sleep waits for d or until ctx ends and reports whether the full wait elapsed.
	sleep func(ctx context.Context, d time.Duration) bool

	mu        sync.Mutex
	notBefore time.Time
}

func newRetryAfterTransport(next http.RoundTripper) *retryAfterTransport {
	return &retryAfterTransport{next: next, now: time.Now, sleep: sleepCtx}
}

// RoundTrip waits out a pause Vault asked for, sends the request, and records a new pause when
// the answer asks for one.
func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if wait := t.pending(); wait > 0 {
		if !t.sleep(req.Context(), wait) {
			return nil, req.Context().Err()
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok {
		t.hold(d)
	}
	return resp, nil
}

// pending is how long requests must still wait.
func (t *retryAfterTransport) pending() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notBefore.Sub(t.now())
}

// hold makes requests wait d from now; a longer pause already asked for is kept.
func (t *retryAfterTransport) hold(d time.Duration) {
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	until := t.now().Add(d)
	t.mu.Lock()
	defer t.mu.Unlock()
	if until.After(t.notBefore) {
		t.notBefore = until
	}
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := at.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}
