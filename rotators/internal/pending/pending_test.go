package pending

import (
	"testing"
	"time"
)

// A value is kept until dropped; putting another value forgets those older than TTL.
func TestStoreKeepsDropsAndExpires(t *testing.T) {
	s := New()
	t0 := time.Now()
	s.Put("acc-1", "value-1", t0)
	if v, ok := s.Get("acc-1"); !ok || v != "value-1" {
		t.Fatalf("get = %q, %v", v, ok)
	}
	s.Put("acc-2", "value-2", t0.Add(TTL+time.Second))
	if _, ok := s.Get("acc-1"); ok {
		t.Error("a value older than TTL survived a later put")
	}
	s.Drop("acc-2")
	if _, ok := s.Get("acc-2"); ok {
		t.Error("a dropped value is still there")
	}
}
