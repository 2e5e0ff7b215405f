package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

// After a 429 with Retry-After, the next request waits the time asked for before it is sent;
// a 429 without the header, or a 500, asks for no pause.
func TestRetryAfterTransportHoldsLaterRequests(t *testing.T) {
	var answers atomic.Int32
	statuses := []struct {
		code       int
		retryAfter string
	}{{429, "3"}, {200, ""}, {503, ""}, {500, "9"}, {200, ""}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s := statuses[answers.Add(1)-1]
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.code)
	}))
	defer srv.Close()

	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var slept []time.Duration
	tr := newRetryAfterTransport(http.DefaultTransport)
	tr.now = func() time.Time { return clock }
	tr.sleep = func(_ context.Context, d time.Duration) bool {
		slept = append(slept, d)
		clock = clock.Add(d)
		return true
	}
	client := &http.Client{Transport: tr}
	for range statuses {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if len(slept) != 1 || slept[0] != 3*time.Second {
		t.Errorf("waits before requests = %v, want one wait of 3s (after the 429 only)", slept)
	}
}

// A request whose context ends while it waits for a pause returns the context's error without
// being sent.
func TestRetryAfterTransportWaitEndsWithContext(t *testing.T) {
	var sent atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { sent.Add(1) }))
	defer srv.Close()
	tr := newRetryAfterTransport(http.DefaultTransport)
	tr.hold(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("request went through a cancelled wait")
	}
	if sent.Load() != 0 {
		t.Errorf("the server saw %d requests, want 0", sent.Load())
	}
	if got := tr.pending(); got > maxRetryAfter {
		t.Errorf("pause %s exceeds the cap %s", got, maxRetryAfter)
	}
}
