package agent

import (
	"fmt"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// ConfigWarning is a setting the agent accepts but that probably does not do what the operator
// wants. `config check` prints warnings and the agent logs them at start; neither refuses them.
type ConfigWarning struct {
	// Setting is the environment variable concerned.
	Setting string
	// Text says what goes wrong and what to set instead; it starts in lower case.
	Text string
}

// String returns the warning as "SETTING: text".
func (w ConfigWarning) String() string { return w.Setting + ": " + w.Text }

// Deliveries a change needs before the driver's give-up logic can act, when a step fails on
// every delivery (one counted failure per delivery).
const (
	// freshRoundDelivery is the first delivery that tries a fresh value.
	freshRoundDelivery = rotators.MaxStepFailures + 1
	// needsReconcileDelivery is the delivery on which the driver gives up into needs_reconcile.
	needsReconcileDelivery = rotators.MaxStepFailures * rotators.MaxRounds
)

// Warnings lists the settings of a valid configuration that probably defeat their purpose.
func (c Config) Warnings() []ConfigWarning {
	var out []ConfigWarning
	if md := c.NATS.MaxDeliver; md >= 1 && md < needsReconcileDelivery {
		reached := fmt.Sprintf("before the agent tries a fresh value (from delivery %d) or gives up into needs_reconcile (on delivery %d)",
			freshRoundDelivery, needsReconcileDelivery)
		if md >= freshRoundDelivery {
			reached = fmt.Sprintf("after trying a fresh value but before the agent gives up into needs_reconcile (on delivery %d)", needsReconcileDelivery)
		}
		out = append(out, ConfigWarning{
			Setting: EnvPrefix + "_NATS_MAX_DELIVER",
			Text: fmt.Sprintf("%d deliveries: a credential whose rotation step fails on every delivery is reported failed on delivery %d, %s; set at least %d unless giving up early is intended",
				md, md, reached, needsReconcileDelivery),
		})
	}
	return out
}
