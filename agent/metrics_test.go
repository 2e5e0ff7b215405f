package agent

import (
	"errors"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
)

// Every credential worked on is counted under its outcome, deferred and refused ones too; only
// final outcomes get a duration.
func TestMetricsCountEveryCredentialOutcome(t *testing.T) {
	client, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(client)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	until := start.Add(time.Hour)
	for _, tc := range []struct {
		name      string
		kind      string
		ce        events.CredentialEvidence
		err       error
		outcome   string
		durations int
	}{
		{"rotated", "kv-v2", events.CredentialEvidence{Outcome: events.OutcomeRotated, StartedAt: start, FinishedAt: start.Add(time.Second)}, nil, "rotated", 1},
		{"refused for a privileged option", "lease-prefix", events.CredentialEvidence{Outcome: events.OutcomeFailed, StartedAt: start, FinishedAt: start}, nil, "failed", 1},
		{"deferred", "kv-v2", events.CredentialEvidence{Outcome: events.OutcomeDeferred, DeferredUntil: &until, StartedAt: start, FinishedAt: start}, nil, "deferred", 0},
		{"retryable failure", "kv-v2", events.CredentialEvidence{}, errors.New("vault sealed"), outcomeRetry, 0},
		{"unknown kind", "no-such-kind", events.CredentialEvidence{Outcome: events.OutcomeFailed, StartedAt: start, FinishedAt: start}, nil, "failed", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics()
			m.credential(reg, tc.kind, tc.ce, tc.err)
			kind := tc.kind
			if kind == "no-such-kind" {
				kind = kindUnknown
			}
			counted, durations := gatherRotations(t, m)
			if want := kind + "/" + tc.outcome; len(counted) != 1 || counted[want] != 1 {
				t.Errorf("rotations_total = %v, want %s counted once", counted, want)
			}
			if durations != tc.durations {
				t.Errorf("rotation_duration_seconds has %d series, want %d", durations, tc.durations)
			}
		})
	}
}

// gatherRotations returns rotations_total by "kind/outcome" and how many duration series exist.
func gatherRotations(t *testing.T, m *Metrics) (map[string]float64, int) {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted, durations := map[string]float64{}, 0
	for _, f := range families {
		switch f.GetName() {
		case metricsNamespace + "_rotations_total":
			for _, s := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range s.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				counted[labels["kind"]+"/"+labels["outcome"]] = s.GetCounter().GetValue()
			}
		case metricsNamespace + "_rotation_duration_seconds":
			durations = len(f.GetMetric())
		}
	}
	return counted, durations
}
