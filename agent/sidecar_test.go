package agent

import (
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/delivery"
	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// A sidecar keeps only its application's credentials; the central agent keeps everything no
// sidecar owns. Between them every credential is handled exactly once.
func TestSidecarScope(t *testing.T) {
	ref := func(path, owner string) discovery.Match {
		r := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: path}
		if owner != "" {
			r.Options = map[string]string{OptionSidecar: owner}
		}
		return discovery.Match{Credential: r}
	}
	all := []discovery.Match{ref("shared", ""), ref("payments/db", "payments"), ref("orders/db", "orders")}
	paths := func(ms []discovery.Match) (out []string) {
		for _, m := range ms {
			out = append(out, m.Credential.Path)
		}
		return out
	}
	var central *sidecar
	payments := &sidecar{app: "payments"}
	if got := paths(central.scope(all, quietLog())); len(got) != 1 || got[0] != "shared" {
		t.Errorf("central agent keeps %v, want only the credential no sidecar owns", got)
	}
	if got := paths(payments.scope(all, quietLog())); len(got) != 1 || got[0] != "payments/db" {
		t.Errorf("payments sidecar keeps %v, want only its own", got)
	}
	if len(all) != 3 {
		t.Error("scope changed the caller's list")
	}
	if central.evidenceScope() != "" || payments.evidenceScope() != ":sidecar:payments" {
		t.Error("evidence ids of the central agent and a sidecar must differ")
	}
	r := all[1].Credential
	if _, wrapped := central.wrap(nil, r).(deliveringRotator); wrapped {
		t.Error("the central agent wrapped a credential in delivery")
	}
	if _, wrapped := payments.wrap(nil, r).(deliveringRotator); !wrapped {
		t.Error("the sidecar did not wrap its credential in delivery")
	}
	r.Action = events.ActionRevoke
	if _, wrapped := payments.wrap(nil, r).(deliveringRotator); wrapped {
		t.Error("a revocation has nothing to deliver")
	}
}

// The evidence of an unconfirmed delivery that ended the credential says the old credential
// was kept; a confirmed one carries its times and no error.
func TestSidecarAnnotate(t *testing.T) {
	s := &sidecar{app: "payments", notifier: delivery.HTTPHook{}, confirm: ConfirmByHealth,
		sinks: map[string][]delivery.Sink{"kv-v2:secret/payments/db": {{Path: "/run/a.env"}}}}
	ref := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "payments/db", Options: map[string]string{OptionSidecar: "payments"}}
	var st rotators.State
	st.SetNote(noteDeliveryToken, "rd-0123456789abcdef01234567")
	st.SetNote(noteDeliveryError, "no answer")
	ce := events.CredentialEvidence{Outcome: events.OutcomeNeedsReconcile}
	s.annotate(&ce, ref, st)
	if ce.OldCredential != events.OldCredentialKept || ce.Delivery == nil || ce.Delivery.Error != "no answer" || ce.Delivery.ConfirmedAt != nil {
		t.Errorf("unconfirmed: %+v / %+v", ce, ce.Delivery)
	}
	at := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	st.SetNote(noteDeliveryConfirmedAt, at.Format(time.RFC3339Nano))
	ce = events.CredentialEvidence{Outcome: events.OutcomeRotated, OldCredential: "retired"}
	s.annotate(&ce, ref, st)
	d := ce.Delivery
	if ce.OldCredential != "retired" || d == nil || d.Error != "" || d.ConfirmedAt == nil || !d.ConfirmedAt.Equal(at) ||
		d.Notify != "http" || d.Confirmation != "health" || len(d.Files) != 1 {
		t.Errorf("confirmed: %+v / %+v", ce, d)
	}
	other := events.CredentialEvidence{}
	s.annotate(&other, events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "x"}, st)
	if other.Delivery != nil {
		t.Error("a credential the sidecar does not own got a delivery")
	}
}
