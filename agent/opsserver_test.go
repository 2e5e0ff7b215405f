package agent

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
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

// /readyz follows the agent's phase and the dependency check; /healthz answers throughout.
func TestOpsServerReadiness(t *testing.T) {
	m := NewMetrics()
	s, err := startOpsServer(context.Background(), "127.0.0.1:0", m, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(time.Second)
	base := "http://" + s.addr

	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("/readyz while starting = %d %q, want 503 starting", code, body)
	}
	waitingFor := "pki:pki/web"
	s.waiting(func() string { return "waiting for the first discovery refresh of " + waitingFor })
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: waiting for the first discovery refresh of pki:pki/web\n" {
		t.Errorf("/readyz while waiting for discovery = %d %q", code, body)
	}
	waitingFor = "kv-v2:secret"
	if _, body := get(t, base+"/readyz"); !strings.Contains(body, "kv-v2:secret") {
		t.Errorf("/readyz does not follow what the agent waits for: %q", body)
	}
	tests := []struct {
		name        string
		vault, nats string
		code        int
		vaultUp     string
	}{
		{"both up", "", "", http.StatusOK, "rotation_agent_vault_up 1"},
		{"vault sealed", "sealed", "", http.StatusServiceUnavailable, "rotation_agent_vault_up 0"},
		{"nats reconnecting", "", "reconnecting", http.StatusServiceUnavailable, "rotation_agent_vault_up 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.ready(func(context.Context) (string, string) { return tc.vault, tc.nats })
			code, body := get(t, base+"/readyz")
			if code != tc.code {
				t.Errorf("/readyz = %d %q, want %d", code, body, tc.code)
			}
			for _, want := range []string{"vault: " + orOK(tc.vault), "nats: " + orOK(tc.nats)} {
				if !strings.Contains(body, want) {
					t.Errorf("/readyz body %q lacks %q", body, want)
				}
			}
			if _, metrics := get(t, base+"/metrics"); !strings.Contains(metrics, tc.vaultUp) {
				t.Errorf("/metrics lacks %q", tc.vaultUp)
			}
		})
	}
	s.stopping()
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopping") {
		t.Errorf("/readyz while stopping = %d %q, want 503 stopping", code, body)
	}
}

// A second server on a taken address fails with the variable to change.
func TestOpsServerAddressInUse(t *testing.T) {
	s, err := startOpsServer(context.Background(), "127.0.0.1:0", NewMetrics(), logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(time.Second)
	_, err = startOpsServer(context.Background(), s.addr, NewMetrics(), logrus.New())
	if err == nil || !strings.Contains(err.Error(), "ROTATION_AGENT_METRICS_LISTEN") {
		t.Fatalf("second listener error = %v, want one naming ROTATION_AGENT_METRICS_LISTEN", err)
	}
}

// Outcomes land under the credential's kind, a kind no rotator knows under "unknown", and a
// retryable failure under "retry"; the exposition uses the conventional names.
func TestMetricsCredentialLabels(t *testing.T) {
	m := NewMetrics()
	reg, err := rotators.NewRegistry(kindOnly("kv-v2"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.credential(reg, "kv-v2", events.CredentialEvidence{Outcome: events.OutcomeRotated, StartedAt: start, FinishedAt: start.Add(2 * time.Second)}, nil)
	m.credential(reg, "made-up-kind-from-an-event", events.CredentialEvidence{Outcome: events.OutcomeFailed}, nil)
	m.credential(reg, "kv-v2", events.CredentialEvidence{}, rotators.Retryable(io.ErrUnexpectedEOF))
	m.consumed("invalid")
	m.rejected(events.ReasonMalformedJSON)
	m.SetReviews(3, 1)
	m.journalPending(2, nil)

	s, err := startOpsServer(context.Background(), "127.0.0.1:0", m, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(time.Second)
	_, body := get(t, "http://"+s.addr+"/metrics")
	for _, want := range []string{
		`rotation_agent_rotations_total{kind="kv-v2",outcome="rotated"} 1`,
		`rotation_agent_rotations_total{kind="unknown",outcome="failed"} 1`,
		`rotation_agent_rotations_total{kind="kv-v2",outcome="retry"} 1`,
		`rotation_agent_rotation_duration_seconds_sum{kind="kv-v2",outcome="rotated"} 2`,
		`rotation_agent_events_consumed_total{type="invalid"} 1`,
		`rotation_agent_rejections_total{reason="malformed_json"} 1`,
		`rotation_agent_reviews_open 3`,
		`rotation_agent_reviews_overdue 1`,
		`rotation_agent_journal_records_not_final 2`,
		`rotation_agent_build_info{version="` + Version + `"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "made-up-kind") {
		t.Error("a kind from an event became a label value")
	}
}

// kindOnly is a rotator that only has a kind; the metrics never call its steps.
type kindOnly string

func (k kindOnly) Kind() string { return string(k) }

func (kindOnly) Plan(context.Context, rotators.Request) (rotators.Plan, error) {
	return rotators.Plan{}, nil
}
func (kindOnly) Prepare(context.Context, rotators.Request, *rotators.State) error { return nil }
func (kindOnly) Apply(context.Context, rotators.Request, *rotators.State) error   { return nil }
func (kindOnly) Verify(context.Context, rotators.Request, *rotators.State) error  { return nil }
func (kindOnly) Promote(context.Context, rotators.Request, *rotators.State) error { return nil }
func (kindOnly) Retire(context.Context, rotators.Request, *rotators.State) error  { return nil }
