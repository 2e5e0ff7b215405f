package ops

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

func readyzIs(code int, parts ...string) func(int, string) bool {
	return func(got int, body string) bool {
		if got != code {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(body, p) {
				return false
			}
		}
		return true
	}
}

// /readyz answers 503 while Vault is sealed and 200 again after the unseal; /healthz stays
// 200 throughout (the process is alive and must not be restarted for an outage elsewhere).
func TestReadyzFollowsVaultSeal(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	ra := harness.StartAgent(t, harness.AgentConfig(t, v, v.AgentToken(t), n))
	base := "http://" + ra.MetricsAddr

	waitFor(t, base+"/readyz", "ready after start", 10*time.Second, readyzIs(http.StatusOK, "vault: ok", "nats: ok"))
	v.Seal(t)
	waitFor(t, base+"/readyz", "not ready while sealed", 20*time.Second, readyzIs(http.StatusServiceUnavailable, "vault: sealed", "nats: ok"))
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while Vault is sealed, want 200", code)
	}
	if _, metrics := get(t, base+"/metrics"); !strings.Contains(metrics, "rotation_agent_vault_up 0") {
		t.Errorf("/metrics does not say Vault is down")
	}
	v.Unseal(t)
	waitFor(t, base+"/readyz", "ready after unseal", 60*time.Second, readyzIs(http.StatusOK, "vault: ok", "nats: ok"))
}

// /readyz answers 503 while the NATS server is down and 200 once the agent has reconnected.
func TestReadyzFollowsNATS(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	ra := harness.StartAgent(t, harness.AgentConfig(t, v, v.AgentToken(t), n))
	base := "http://" + ra.MetricsAddr
	waitFor(t, base+"/readyz", "ready after start", 10*time.Second, readyzIs(http.StatusOK, "nats: ok"))

	n.Stop()
	waitFor(t, base+"/readyz", "not ready while NATS is down", 30*time.Second, readyzIs(http.StatusServiceUnavailable, "vault: ok", "nats: reconnecting"))
	n.Start()
	waitFor(t, base+"/readyz", "ready after NATS is back", 60*time.Second, readyzIs(http.StatusOK, "vault: ok", "nats: ok"))
}
