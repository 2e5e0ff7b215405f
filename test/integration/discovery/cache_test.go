package discovery

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A cache refreshing on its schedule keeps the last good bindings while Vault refuses a
// refresh, reports the failure, and picks up changes once Vault answers again.
func TestCacheKeepsLastGoodBindings(t *testing.T) {
	v := harness.StartVault(t)
	c := discoveryClient(t, v)
	putTagged(t, v, "apps/a", map[string]any{"password": "x"}, map[string]any{"service": "web"})

	var mu sync.Mutex
	var reported []error
	cfg := kvConfig
	cfg.Interval = 100 * time.Millisecond
	cache, err := vaultsource.NewCache(c, cfg, func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := cache.Start(ctx)
	waitFor(t, "the first refresh", func() bool { return len(cache.Bindings()) == 1 })

	// The discovery token loses the KV stanza: refreshes fail with permission denied.
	putPolicy(t, v, strings.Replace(discoveryPolicy, `path "secret/metadata/apps/*" { capabilities = ["list", "read"] }`, "", 1))
	putTagged(t, v, "apps/b", map[string]any{"password": "x"}, map[string]any{"service": "web"})
	waitFor(t, "a failed refresh to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, err := range reported {
			var se *vaultsource.SourceError
			if errors.As(err, &se) && se.Failed && se.Source == "kv-v2:secret/apps" && strings.Contains(err.Error(), "permission denied") {
				return true
			}
		}
		return false
	})
	if got := ids(cache.Bindings()); !reflect.DeepEqual(got, []string{"kv-v2:secret/apps/a"}) {
		t.Errorf("while refreshes fail the cache holds %v, want the last good result", got)
	}
	m := cache.Index().Resolve(events.Change{Targets: events.Targets{Services: []string{"web"}}})
	if len(m) != 1 || m[0].Source != "discovery:kv-v2:secret/apps/a" {
		t.Errorf("while refreshes fail the index resolves %s", render(m))
	}

	// Vault answers again: the next refresh finds the new secret.
	putPolicy(t, v, discoveryPolicy)
	waitFor(t, "the refresh after recovery", func() bool { return len(cache.Bindings()) == 2 })
	if got := ids(cache.Bindings()); !reflect.DeepEqual(got, []string{"kv-v2:secret/apps/a", "kv-v2:secret/apps/b"}) {
		t.Errorf("after recovery: %v", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh goroutine did not end with its context")
	}
}
