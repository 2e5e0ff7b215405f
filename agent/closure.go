package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

// closureAnswer decides whether a change may be closed from its evidence records (in stream
// order) and its journal entries, each followed by those of the changes that ran its deferred
// credentials (see followDeferred): yes only when there is a change record, every credential's
// latest evidence says rotated or revoked with its old credential retired, nothing is still in
// progress in the journal, no entitlement drift is open, and, for an emergency change, a
// reviewer approved its post-change review. The review is the latest review step in the
// records; stored, the review as the journal bucket holds it, stands in when there is none
// (a review attested before its steps were evidenced, or one whose opening is being published).
func closureAnswer(changeID string, records []events.Record, entries []journalEntry, stored *events.Review, now time.Time) events.ClosureAnswer {
	ans := events.ClosureAnswer{ChangeID: changeID, Records: len(records), CheckedAt: now.UTC(), Reasons: []string{}}
	var change *events.Evidence
	review := stored
	latest := map[string]events.CredentialEvidence{}
	var order []string
	for i := range records {
		ev := records[i].Data
		if ev.IsReviewStep() {
			review = ev.Review
			continue
		}
		if ev.ChangeID == changeID && !ev.IsRetirement() {
			change = &records[i].Data
		}
		for _, c := range ev.Credentials {
			if _, ok := latest[c.Credential]; !ok {
				order = append(order, c.Credential)
			}
			latest[c.Credential] = c
		}
	}
	if change == nil {
		ans.Reasons = append(ans.Reasons, "no evidence record for the change yet: it has not been reconciled")
	} else {
		ans.Status = change.Status
		if change.Status == events.StatusRejected {
			ans.Reasons = append(ans.Reasons, "the agent refused to act on the change (status rejected)")
		}
		if change.ChangeType == events.ChangeEmergency {
			if reason := reviewReason(review, now); reason != "" {
				ans.Reasons = append(ans.Reasons, reason)
			}
		}
	}
	for _, id := range order {
		c := latest[id]
		switch {
		case c.Outcome == events.OutcomeDeferred:
			until := ""
			if c.DeferredUntil != nil {
				until = " until " + c.DeferredUntil.UTC().Format(time.RFC3339)
			}
			ans.Reasons = append(ans.Reasons, fmt.Sprintf("credential %s is deferred to its maintenance window%s: the change that runs it then (deferred:%s:...) has not reconciled it yet",
				id, until, changeID))
		case c.Outcome != events.OutcomeRotated && c.Outcome != events.OutcomeRevoked:
			ans.Reasons = append(ans.Reasons, fmt.Sprintf("credential %s is not reconciled: %s: %s", id, c.Outcome, c.Error))
		case c.OldCredential == "retire_pending":
			at := ""
			if c.RetireAt != nil {
				at = " at " + c.RetireAt.UTC().Format(time.RFC3339)
			}
			ans.Reasons = append(ans.Reasons, fmt.Sprintf("the old credential of %s still works: it is due to be retired%s", id, at))
		}
	}
	for _, e := range entries {
		if e.Final || e.RetirePending { // a pending retirement is reported from the records
			continue
		}
		ans.Reasons = append(ans.Reasons, fmt.Sprintf("credential %s is still being reconciled (journal step %q)", e.Ref.ID(), e.State.Done))
	}
	if change != nil {
		for _, e := range change.Entitlements {
			switch e.Status {
			case events.EntitlementDrift:
				ans.Reasons = append(ans.Reasons, fmt.Sprintf("entitlement drift on %s: extra policies [%s], missing policies [%s]%s",
					e.Identity, strings.Join(e.ExtraPolicies, ", "), strings.Join(e.MissingPolicies, ", "), capabilityDrift(e)))
			case events.EntitlementError:
				ans.Reasons = append(ans.Reasons, fmt.Sprintf("entitlements of %s could not be checked: %s", e.Identity, e.Error))
			}
		}
	}
	ans.MayClose = len(ans.Reasons) == 0
	return ans
}

func capabilityDrift(e events.EntitlementEvidence) string {
	var parts []string
	for _, c := range e.Capabilities {
		if c.Status == events.CapabilityDrift {
			parts = append(parts, fmt.Sprintf("%s extra [%s] missing [%s]", c.Path, strings.Join(c.Extra, ", "), strings.Join(c.Missing, ", ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return "; capabilities: " + strings.Join(parts, "; ")
}

// changeEntries lists the journal entries of a change.
func (j *journal) changeEntries(ctx context.Context, changeID string) ([]journalEntry, error) {
	entries, _, _, err := listRecords[journalEntry](ctx, j.kv, "cred."+hashToken(changeID)+".>")
	return entries, err
}
