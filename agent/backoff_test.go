package agent

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	const samples = 300
	tests := []struct {
		name      string
		base, max time.Duration
	}{
		{"redelivery policy", 2 * time.Second, 2 * time.Minute},
		{"vault relogin policy", time.Second, time.Minute},
		{"max not a power of two of base", 100 * time.Millisecond, 1500 * time.Millisecond},
		{"base equals max", 5 * time.Second, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(tc.base, tc.max)
			want := tc.base // the nominal delay d of the attempt
			for attempt := 1; attempt <= 80; attempt++ {
				lo, hi := want/2, want
				var minSeen, maxSeen time.Duration = hi + 1, -1
				for i := 0; i < samples; i++ {
					d := b.delay(attempt)
					if d < lo || d > hi {
						t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, lo, hi)
					}
					minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
				}
				// Jitter: the samples spread over the range instead of sitting on one value.
				if maxSeen-minSeen < (hi-lo)/4 {
					t.Errorf("attempt %d: %d samples span only [%v, %v] of [%v, %v]", attempt, samples, minSeen, maxSeen, lo, hi)
				}
				want = min(want*2, tc.max)
			}
		})
	}
}

func TestBackoffGrowsThenCaps(t *testing.T) {
	b := newBackoff(time.Second, time.Minute)
	// Mean delay of an attempt is 3/4 of its nominal delay: 1s, 2s, 4s, ... capped at 1m.
	mean := func(attempt int) time.Duration {
		var sum time.Duration
		const n = 2000
		for i := 0; i < n; i++ {
			sum += b.delay(attempt)
		}
		return sum / n
	}
	prev := mean(1)
	for attempt := 2; attempt <= 6; attempt++ {
		m := mean(attempt)
		if ratio := float64(m) / float64(prev); ratio < 1.7 || ratio > 2.3 {
			t.Errorf("attempt %d: mean delay %v is %.2f times attempt %d's %v, want about 2", attempt, m, ratio, attempt-1, prev)
		}
		prev = m
	}
	for _, attempt := range []int{7, 10, 63, 64, 65, 1000, 1 << 30} {
		if d := b.delay(attempt); d < 30*time.Second || d > time.Minute {
			t.Errorf("attempt %d: delay %v, want within [30s, 1m] (capped)", attempt, d)
		}
	}
}

func TestBackoffNonPositiveAttemptIsFirst(t *testing.T) {
	b := newBackoff(4*time.Second, time.Minute)
	for _, attempt := range []int{0, -1, -100} {
		for i := 0; i < 100; i++ {
			if d := b.delay(attempt); d < 2*time.Second || d > 4*time.Second {
				t.Fatalf("attempt %d: delay %v, want within [2s, 4s]", attempt, d)
			}
		}
	}
}

func TestSleepCtx(t *testing.T) {
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		if sleepCtx(ctx, time.Hour) {
			t.Error("sleepCtx on a cancelled context reported a full wait")
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("sleepCtx on a cancelled context took %v", el)
		}
	})
	t.Run("cancelled during", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if sleepCtx(ctx, time.Hour) {
			t.Error("sleepCtx cancelled mid-wait reported a full wait")
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("sleepCtx returned after %v, want soon after cancel", el)
		}
	})
	t.Run("full wait", func(t *testing.T) {
		start := time.Now()
		if !sleepCtx(context.Background(), 10*time.Millisecond) {
			t.Error("sleepCtx without cancel reported an interrupted wait")
		}
		if el := time.Since(start); el < 10*time.Millisecond {
			t.Errorf("sleepCtx returned after %v, before the 10ms wait", el)
		}
	})
}
