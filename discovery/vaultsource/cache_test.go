package vaultsource

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

// reports collects what a Cache reports.
type reports struct {
	mu   sync.Mutex
	errs []error
}

func (r *reports) add(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *reports) list() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func paths(bs []discovery.Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Credential.ID())
	}
	return out
}

func TestCacheKeepsLastGoodResultOfAFailingSource(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a"))
	f.ok("GET secret/metadata/a", kvMeta(map[string]any{"service": "web"}))
	f.ok("LIST database/static-roles", keys("app"))
	f.ok("GET database/static-roles/app", map[string]any{"db_name": "pg", "username": "app_user"})

	var rep reports
	c, err := NewCache(client, Config{KV: []KVSource{{Mount: "secret"}}, Database: []DatabaseSource{{Mount: "database"}}}, rep.add)
	if err != nil {
		t.Fatal(err)
	}
	var updates [][]discovery.Binding
	c.OnUpdate(func(bs []discovery.Binding) { updates = append(updates, bs) })
	if len(c.Bindings()) != 0 || !c.Refreshed().IsZero() {
		t.Fatal("a cache is empty before its first refresh")
	}
	if errs := c.Refresh(context.Background()); len(errs) != 0 {
		t.Fatalf("first refresh: %v", errs)
	}
	first := paths(c.Bindings())
	if len(first) != 3 { // the KV secret, the static role by identity and by connection
		t.Fatalf("first refresh found %v", first)
	}

	// The KV mount fails, the database gains a role: the KV result stays, the database one moves on.
	f.fail("LIST secret/metadata", 503, "Vault is sealed")
	f.ok("LIST database/static-roles", keys("app", "batch"))
	f.ok("GET database/static-roles/batch", map[string]any{"db_name": "pg", "username": "batch_user"})
	errs := c.Refresh(context.Background())
	var se *SourceError
	if len(errs) != 1 || !errors.As(errs[0], &se) || !se.Failed || se.Source != "kv-v2:secret" {
		t.Fatalf("second refresh errors %v, want the KV source failing", errs)
	}
	if got := rep.list(); len(got) != 1 || !errors.Is(got[0], errs[0]) {
		t.Errorf("reported %v, want the KV failure", got)
	}
	bs := c.Bindings()
	if got := paths(bs); len(got) != 5 || got[0] != "kv-v2:secret/a" {
		t.Fatalf("after a failed KV refresh: %v, want the old KV binding and both roles", got)
	}
	matches := c.Index().Resolve(events.Change{Targets: events.Targets{Services: []string{"web"}}})
	if len(matches) != 1 || matches[0].Source != "discovery:kv-v2:secret/a" {
		t.Errorf("index after the failed refresh resolves %+v", matches)
	}

	// The KV mount recovers with the secret gone: the empty result replaces the old one.
	f.ok("LIST secret/metadata", keys())
	if errs := c.Refresh(context.Background()); len(errs) != 0 {
		t.Fatalf("third refresh: %v", errs)
	}
	if got := paths(c.Bindings()); len(got) != 4 || got[0] == "kv-v2:secret/a" {
		t.Errorf("after recovery: %v, want both roles only", got)
	}
	if len(updates) != 3 {
		t.Errorf("%d updates, want one per refresh", len(updates))
	}
}

func TestCacheRefreshesOnItsScheduleUntilTheContextEnds(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a"))
	f.ok("GET secret/metadata/a", kvMeta(map[string]any{"service": "web"}))
	c, err := NewCache(client, Config{KV: []KVSource{{Mount: "secret"}}, Interval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := c.Start(ctx)

	// Readers run while the cache refreshes.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_ = c.Bindings()
					_ = c.Index().Len()
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.count("LIST secret/metadata") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d refreshes in 10s at a 20ms interval", f.count("LIST secret/metadata"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := paths(c.Bindings()); len(got) != 1 {
		t.Errorf("bindings %v", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the refresh goroutine did not end with its context")
	}
	n := f.count("LIST secret/metadata")
	time.Sleep(60 * time.Millisecond)
	if m := f.count("LIST secret/metadata"); m != n {
		t.Errorf("refreshes went on after the context ended: %d then %d", n, m)
	}
}

func TestNewCacheRefusesABadConfiguration(t *testing.T) {
	_, client := newFake(t)
	if _, err := NewCache(client, Config{Schedule: "every now and then"}, nil); err == nil {
		t.Fatal("a bad schedule was accepted")
	}
}
