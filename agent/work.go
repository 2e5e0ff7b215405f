package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
)

// Work the agent creates itself — a scheduled rotation, a deferred credential whose window
// opened, a manual request, the clean-up of a review — is published as a change-completed
// event on the change subject, with a deterministic change id that is also its Nats-Msg-Id.
// It then takes exactly the path of a change from an ITSM bridge: the durable consumer hands
// it to one replica, the journal records each step before it happens, credentials are locked,
// evidence is published and the message acked. There is no second code path to keep correct,
// a replica that dies mid-way is resumed by another, and two replicas that both decide the
// same work is due publish the same id: the stream drops the duplicate and, beyond its
// window, the journal finds the change already reconciled and only re-publishes its evidence.

// idUnsafe matches characters a change id may not hold.
var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// idPart makes an arbitrary name usable inside a change id.
func idPart(s string) string {
	s = idUnsafe.ReplaceAllString(s, "_")
	if len(s) > 64 {
		s = s[:48] + "-" + hashToken(s)[:15]
	}
	return s
}

// publishWork publishes ch as a change-completed event created by the agent.
func (p *pipeline) publishWork(ctx context.Context, ch events.Change) error {
	now := p.clock.Now().UTC()
	if ch.CompletedAt.IsZero() {
		ch.CompletedAt = now
	}
	if ch.State == "" {
		ch.State = "implemented"
	}
	if ch.Requester.ID == "" {
		ch.Requester = events.Person{ID: "rotation-agent", Name: p.agent.ID}
	}
	if ch.Type == "" {
		ch.Type = events.ChangeStandard
	}
	env := events.ChangeEvent{
		SpecVersion: events.SpecVersion, ID: ch.ID, Source: eventSource + "/" + p.agent.ID, Type: events.TypeChangeCompleted,
		Subject: ch.ID, Time: now, DataContentType: "application/json", Data: ch,
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if _, err := p.js.Publish(ctx, p.subjects.ChangeCompleted(), raw, jetstream.WithMsgID(ch.ID)); err != nil {
		return fmt.Errorf("publish %s: %w", ch.ID, err)
	}
	return nil
}

// progress tells watchers (rotation-agent rotate --wait) that one credential of a change is
// done. It is best effort: the evidence is the record.
func (p *pipeline) progress(changeID string, ce events.CredentialEvidence, done, total int) {
	raw, err := json.Marshal(events.Progress{ChangeID: changeID, Credential: ce.Credential, Outcome: ce.Outcome, Done: done, Total: total})
	if err == nil {
		_ = p.js.Conn().Publish(p.subjects.Progress(changeID), raw)
	}
}
