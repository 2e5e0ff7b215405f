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

// A source that fails its first refresh keeps the cache not ready, and is tried again well
// before the next scheduled refresh (an hour away) until it succeeds.
func TestCacheIsReadyOnceEverySourceHasAFirstResult(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a"))
	f.ok("GET secret/metadata/a", kvMeta(map[string]any{"service": "web"}))
	f.fail("LIST database/static-roles", 403, "permission denied")
	var rep reports
	c, err := NewCache(client, Config{KV: []KVSource{{Mount: "secret"}}, Database: []DatabaseSource{{Mount: "database"}}, Interval: time.Hour}, rep.add)
	if err != nil {
		t.Fatal(err)
	}
	c.firstRetry = 10 * time.Millisecond
	if got := c.Pending(); len(got) != 2 {
		t.Fatalf("pending before any refresh: %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := c.Start(ctx)

	deadline := time.Now().Add(20 * time.Second)
	for f.count("LIST database/static-roles") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the failing source was tried %d times, want it retried", f.count("LIST database/static-roles"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-c.Ready():
		t.Fatal("ready while a source has never succeeded")
	default:
	}
	if got := c.Pending(); len(got) != 1 || got[0] != "database:database" {
		t.Errorf("pending %v, want the database source only", got)
	}
	if got := paths(c.Bindings()); len(got) != 1 || got[0] != "kv-v2:secret/a" {
		t.Errorf("bindings while the database source fails: %v, want the KV one", got)
	}
	if st := c.Status(); st[0].Source != "kv-v2:secret" || !st[0].Ready || st[1].Ready || st[1].Stale() {
		t.Errorf("status %+v", st)
	}

	f.ok("LIST database/static-roles", keys("app"))
	f.ok("GET database/static-roles/app", map[string]any{"db_name": "pg", "username": "app_user"})
	select {
	case <-c.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("not ready after the source recovered; pending %v", c.Pending())
	}
	if got := c.Pending(); got != nil {
		t.Errorf("pending %v once ready", got)
	}
	if got := len(c.Bindings()); got != 3 {
		t.Errorf("%d bindings once ready, want 3", got)
	}
	// Ready, the cache waits for its schedule: no more retries.
	n := f.count("LIST database/static-roles")
	time.Sleep(100 * time.Millisecond)
	if m := f.count("LIST database/static-roles"); m != n {
		t.Errorf("refreshes went on after every source had a result: %d then %d", n, m)
	}
	cancel()
	<-done
}

// A source that succeeded once and then fails keeps its result; after StaleAfterFailures
// failed refreshes in a row the result counts as stale, until a refresh succeeds again.
func TestCacheSourceTurnsStale(t *testing.T) {
	f, client := newFake(t)
	f.ok("LIST secret/metadata", keys("a"))
	f.ok("GET secret/metadata/a", kvMeta(map[string]any{"service": "web"}))
	c, err := NewCache(client, Config{KV: []KVSource{{Mount: "secret"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return at }
	c.Refresh(context.Background())
	select {
	case <-c.Ready():
	default:
		t.Fatal("not ready after a successful refresh")
	}
	c.now = func() time.Time { return at.Add(time.Hour) }
	f.fail("LIST secret/metadata", 503, "Vault is sealed")
	for i := 1; i <= StaleAfterFailures; i++ {
		c.Refresh(context.Background())
		st := c.Status()[0]
		if st.Failures != i || st.Stale() != (i >= StaleAfterFailures) || !st.LastGood.Equal(at) {
			t.Errorf("after %d failed refreshes: %+v, stale %v", i, st, st.Stale())
		}
	}
	if len(c.Bindings()) != 1 {
		t.Error("a stale source lost its bindings")
	}
	f.ok("LIST secret/metadata", keys("a"))
	c.Refresh(context.Background())
	if st := c.Status()[0]; st.Stale() || st.Failures != 0 || !st.LastGood.Equal(at.Add(time.Hour)) {
		t.Errorf("after a successful refresh: %+v", st)
	}
}
