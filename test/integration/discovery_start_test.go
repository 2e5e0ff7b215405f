package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// kvDiscoveryPolicy lets discovery read the tags of the secrets under secret/apps.
const kvDiscoveryPolicy = `path "secret/metadata/apps" { capabilities = ["list"] }
path "secret/metadata/apps/*" { capabilities = ["list", "read"] }`

// A change waiting in the stream when the agent starts, which only a discovered binding
// matches, is not handled before discovery has answered: while the discovery source fails its
// first refresh the agent stays not ready and leaves the change in the stream; once the source
// answers, the change's credential is rotated (not acknowledged as no_credentials).
func TestBacklogWaitsForTheFirstDiscovery(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	putTaggedKV(t, v, "apps/orders/db", map[string]any{"user": "orders", "password": "canary-backlog-orders-1"},
		map[string]any{"service": "orders", "rotate_fields": "password"})
	// The discovery policy grants nothing under secret/apps yet: the first refresh fails.
	token := v.AgentTokenWithPolicy(t, "discovery", `path "secret/metadata/elsewhere" { capabilities = ["list"] }`)
	cfg := harness.AgentConfig(t, v, token, n)

	// A first run provisions the stream and the consumer; the change arrives while no agent runs.
	harness.StartAgent(t, cfg).Stop(t)
	bus.Publish(t, targetedChange(t, "CHG-BACKLOG-1", events.Targets{Services: []string{"orders"}}), "")

	file := filepath.Join(t.TempDir(), "discovery.yaml")
	must(t, os.WriteFile(file, []byte("kv:\n  - mount: secret\n    prefix: apps\ninterval: 1h\n"), 0o600))
	cfg.DiscoveryFile = file
	ra, ready := harness.StartAgentListening(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ra.Log.String(), "discovery source failed its first refresh") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed first refresh in the log:\n%s", ra.Log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body := httpGet(t, "http://"+ra.MetricsAddr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for the first discovery refresh of kv-v2:secret/apps") {
		t.Errorf("/readyz while the first refresh fails = %d %q", code, body)
	}
	select {
	case <-ready:
		t.Fatal("the agent consumes changes although discovery never answered")
	default:
	}
	if got := bus.Evidence(t, "CHG-BACKLOG-1"); len(got) != 0 {
		t.Fatalf("the change was handled before discovery answered: %+v", got[0].Data)
	}

	// Discovery may read the tags now: the next retry succeeds and the agent starts consuming.
	must(t, v.Root.Sys().PutPolicy("discovery", kvDiscoveryPolicy))
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the agent did not get ready after discovery recovered\n%s", ra.Log.String())
	}
	got := bus.WaitEvidence(t, "CHG-BACKLOG-1", waitEvidence).Data
	if got.Status != events.StatusReconciled || len(got.Credentials) != 1 || got.Credentials[0].Outcome != events.OutcomeRotated ||
		!strings.Contains(got.Credentials[0].MatchedBy, "discovery:kv-v2:secret/apps/orders/db") {
		t.Fatalf("evidence = %+v\nlog:\n%s", got, ra.Log.String())
	}
	if d := got.Discovery; d == nil || d.Status != events.DiscoveryComplete || len(d.Sources) != 1 || d.Sources[0] != "kv-v2:secret/apps" {
		t.Errorf("evidence discovery = %+v, want complete with the one source", d)
	}
	if cur := v.KV(t, "apps/orders/db", 0); cur.VersionMetadata.Version != 2 || cur.Data["password"] == "canary-backlog-orders-1" {
		t.Errorf("the discovered secret was not rotated: version %d", cur.VersionMetadata.Version)
	}
	if code, body := httpGet(t, "http://"+ra.MetricsAddr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once consuming = %d %q", code, body)
	}
}

// httpGet fetches url and returns the status code and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec,noctx // a test URL on the loopback interface
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
