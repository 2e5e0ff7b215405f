package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// metricsNamespace prefixes every metric the agent exports.
const metricsNamespace = "rotation_agent"

// Outcome label values beside the evidence outcomes (rotated, revoked, failed, needs_reconcile).
const (
	// outcomeRetry counts a credential whose work failed in a way a later delivery can fix.
	outcomeRetry = "retry"
	// kindUnknown labels credentials of a kind no rotator handles, so user input cannot grow
	// the number of label values.
	kindUnknown = "unknown"
)

// Metrics are the agent's Prometheus metrics. Every label takes a bounded set of values
// (registered kinds, evidence outcomes, event types, rejection reason codes); nothing derived
// from a secret, a change id or a path is ever a label.
type Metrics struct {
	registry          *prometheus.Registry
	rotations         *prometheus.CounterVec
	rotationDuration  *prometheus.HistogramVec
	eventsConsumed    *prometheus.CounterVec
	rejections        *prometheus.CounterVec
	reviewsOpen       prometheus.Gauge
	reviewsOverdue    prometheus.Gauge
	journalNotFinal   prometheus.Gauge
	vaultUp, natsUp   prometheus.Gauge
	buildInfo         *prometheus.GaugeVec
	journalScanFailed prometheus.Counter
}

// NewMetrics creates the agent's metrics in a registry of their own, with the Go runtime and
// process collectors beside them.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rotations_total",
			Help: "Credentials worked on, by kind and outcome (rotated, revoked, failed, needs_reconcile, deferred, retry).",
		}, []string{"kind", "outcome"}),
		rotationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "rotation_duration_seconds",
			Help:    "Time to bring one credential to its final outcome, by kind and outcome.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"kind", "outcome"}),
		eventsConsumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "events_consumed_total",
			Help: "Deliveries of change events taken from the consumer, by event type (invalid when the message was refused).",
		}, []string{"type"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rejections_total",
			Help: "Messages refused with a rejection record, by reason code.",
		}, []string{"reason"}),
		reviewsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "reviews_open",
			Help: "Access reviews waiting for a decision.",
		}),
		reviewsOverdue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "reviews_overdue",
			Help: "Access reviews past their due date.",
		}),
		journalNotFinal: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "journal_records_not_final",
			Help: "Journal records of credentials still in progress or waiting to retire their old value.",
		}),
		journalScanFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "journal_scan_failures_total",
			Help: "Failed counts of the journal records that are not final.",
		}),
		vaultUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "vault_up",
			Help: "1 when the last readiness check found Vault unsealed and the agent logged in, else 0.",
		}),
		natsUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "nats_up",
			Help: "1 when the last readiness check found the NATS connection up, else 0.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "build_info",
			Help: "Always 1; the version label says which agent runs.",
		}, []string{"version"}),
	}
	m.registry.MustRegister(m.rotations, m.rotationDuration, m.eventsConsumed, m.rejections,
		m.reviewsOpen, m.reviewsOverdue, m.journalNotFinal, m.journalScanFailed, m.vaultUp, m.natsUp, m.buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.buildInfo.WithLabelValues(Version).Set(1)
	return m
}

// Registry is where the metrics are registered; the HTTP server exposes it on /metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// SetReviews sets the number of open and overdue access reviews. The review feature calls it
// whenever it counts them; until then both stay 0.
func (m *Metrics) SetReviews(open, overdue int) {
	if m == nil {
		return
	}
	m.reviewsOpen.Set(float64(open))
	m.reviewsOverdue.Set(float64(overdue))
}

// credential records the result of one credential's work: err is a retryable failure that
// leaves the change to a later delivery, else ce holds the final outcome.
func (m *Metrics) credential(reg *rotators.Registry, kind string, ce events.CredentialEvidence, err error) {
	if m == nil {
		return
	}
	if _, lookupErr := reg.Lookup(kind); lookupErr != nil {
		kind = kindUnknown
	}
	if err != nil {
		m.rotations.WithLabelValues(kind, outcomeRetry).Inc()
		return
	}
	outcome := string(ce.Outcome)
	m.rotations.WithLabelValues(kind, outcome).Inc()
	// A deferred credential has not reached its final outcome: no duration.
	if ce.Outcome != events.OutcomeDeferred && !ce.StartedAt.IsZero() && !ce.FinishedAt.IsZero() {
		m.rotationDuration.WithLabelValues(kind, outcome).Observe(ce.FinishedAt.Sub(ce.StartedAt).Seconds())
	}
}

// consumed counts one delivery of a change event of type t ("invalid" when it was refused).
func (m *Metrics) consumed(t string) {
	if m == nil {
		return
	}
	m.eventsConsumed.WithLabelValues(t).Inc()
}

// rejected counts one rejection record.
func (m *Metrics) rejected(reason events.ReasonCode) {
	if m == nil {
		return
	}
	m.rejections.WithLabelValues(string(reason)).Inc()
}

// journalPending sets the number of journal records that are not final.
func (m *Metrics) journalPending(n int, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.journalScanFailed.Inc()
		return
	}
	m.journalNotFinal.Set(float64(n))
}

// up records what the last readiness check found.
func (m *Metrics) up(vault, nats bool) {
	if m == nil {
		return
	}
	m.vaultUp.Set(boolGauge(vault))
	m.natsUp.Set(boolGauge(nats))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
