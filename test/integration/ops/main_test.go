// Package ops tests what an operator runs the agent with: Prometheus metrics, the health and
// readiness endpoints, the systemd notify protocol and the Vault policy, against a real Vault
// core and a real NATS JetStream server.
package ops

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// agentBinary is the rotation-agent command, built once for the tests that run it as systemd
// would.
var agentBinary string

func TestMain(m *testing.M) {
	harness.RunWithAgent(m, &agentBinary)
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// waitFor polls url until check accepts the response, and fails the test with the last
// response after timeout.
func waitFor(t *testing.T, url, what string, timeout time.Duration, check func(code int, body string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := get(t, url)
		if check(code, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %s; last %s answered %d:\n%s", what, timeout, url, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
