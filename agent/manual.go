package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/events"
)

// requestTimeout bounds the work behind one request on the bus (manual rotation, evidence and
// closure requests).
const requestTimeout = 30 * time.Second

// SignRotateRequest signs the body of a rotate request with an nkey user seed; the result
// goes in the events.SignatureHeader header.
func SignRotateRequest(seed, body []byte) (string, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return "", fmt.Errorf("nkey seed: %w", err)
	}
	defer kp.Wipe()
	sig, err := kp.Sign(body)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sig), nil
}

// manualService answers rotate requests: it checks the request, its signature and the
// requester's rights, then queues the rotation as change manual:<request id>.
type manualService struct {
	p      *pipeline
	authz  *rotateAuthz
	maxAge time.Duration
}

// serve answers one request. Every replica subscribes in one queue group, so one answers.
func (m *manualService) serve(msg *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	reply := m.process(ctx, msg)
	raw, err := json.Marshal(reply)
	if err == nil {
		err = msg.Respond(raw)
	}
	if err != nil {
		m.p.log.WithError(err).Warn("reply to rotate request failed")
	}
}

func (m *manualService) process(ctx context.Context, msg *nats.Msg) events.RotateReply {
	var req events.RotateRequest
	if err := events.DecodeRequest(msg.Data, events.RotateRequestSchema, &req); err != nil {
		return m.refuse(ctx, msg, req, events.RotateInvalid, events.ReasonInvalid, err.Error())
	}
	if err := verifySignature(req.RequesterKey, msg.Data, msg.Header.Get(events.SignatureHeader)); err != nil {
		return m.refuse(ctx, msg, req, events.RotateRefused, events.ReasonUnauthorized, err.Error())
	}
	// Real time, not the scheduling clock: this bounds replays of a signed request.
	if age := time.Since(req.IssuedAt); age > m.maxAge || age < -m.maxAge {
		return m.refuse(ctx, msg, req, events.RotateRefused, events.ReasonUnauthorized,
			fmt.Sprintf("request issued at %s is outside the accepted %s", req.IssuedAt.UTC().Format(time.RFC3339), m.maxAge))
	}
	changeType := events.ChangeNormal
	if req.Emergency {
		changeType = events.ChangeEmergency
	}
	var creds []events.CredentialRef
	for _, match := range m.p.catalog.resolve(events.Change{Type: changeType, Targets: req.Selector}) {
		if req.Kind == "" || match.Credential.Kind == req.Kind {
			creds = append(creds, match.Credential)
		}
	}
	who, err := m.authz.authorise(req, creds)
	if err != nil {
		return m.refuse(ctx, msg, req, events.RotateRefused, events.ReasonUnauthorized, err.Error())
	}
	if len(creds) == 0 {
		return m.refuse(ctx, msg, req, events.RotateInvalid, events.ReasonInvalid, "selector "+describeSelector(req.Selector)+" matches no credential")
	}
	ch := events.Change{
		ID: "manual:" + req.RequestID, Type: changeType, Trigger: events.TriggerManual, Summary: req.Reason,
		Requester: events.Person{ID: who, Name: req.RequesterKey}, Credentials: creds,
	}
	reply := events.RotateReply{RequestID: req.RequestID, ChangeID: ch.ID}
	for _, c := range creds {
		reply.Credentials = append(reply.Credentials, c.ID())
	}
	log := m.p.log.WithFields(logrus.Fields{FieldChangeID: ch.ID, "requester": who, "credentials": len(creds)})
	if req.DryRun {
		reply.Status, reply.Plan = events.RotatePlanned, planCredentials(ctx, m.p.registry, m.p.catalog, ch, m.p.defaultOverlap, m.p.redactor)
		log.Info("manual rotation planned (dry run)")
		return reply
	}
	if err := m.p.publishWork(ctx, ch); err != nil {
		log.WithError(err).Warn("queue manual rotation failed")
		return events.RotateReply{RequestID: req.RequestID, Status: events.RotateInvalid, Reason: "the agent could not queue the rotation; try again"}
	}
	reply.Status = events.RotateAccepted
	log.Info("manual rotation accepted")
	return reply
}

// verifySignature checks the base64url Ed25519 signature of body against an nkey public key.
func verifySignature(publicKey string, body []byte, sig string) error {
	if sig == "" {
		return fmt.Errorf("request is not signed (header %s)", events.SignatureHeader)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return errors.New("request signature is not base64url")
	}
	kp, err := nkeys.FromPublicKey(publicKey)
	if err != nil {
		return fmt.Errorf("requester key: %w", err)
	}
	if err := kp.Verify(body, raw); err != nil {
		return errors.New("request signature does not verify with the requester key")
	}
	return nil
}

// refuse answers a request with a reason and publishes a rejection record for it.
func (m *manualService) refuse(ctx context.Context, msg *nats.Msg, req events.RotateRequest, status events.RotateStatus, code events.ReasonCode, reason string) events.RotateReply {
	reason = m.p.redactor.String(reason)
	sum := sha256.Sum256(msg.Data)
	rej := events.Rejection{
		ReasonCode: code, Reason: reason, EventID: req.RequestID, Subject: msg.Subject,
		PayloadBytes: len(msg.Data), PayloadSHA256: hex.EncodeToString(sum[:]), ReceivedAt: time.Now().UTC(), Agent: m.p.agent,
	}
	if req.RequestID != "" {
		rej.ChangeID = "manual:" + req.RequestID
	}
	env := events.Envelope[events.Rejection]{
		SpecVersion: events.SpecVersion, ID: "rejection:rotate:" + rej.PayloadSHA256, Source: eventSource + "/" + m.p.agent.ID,
		Type: events.TypeRejection, Time: rej.ReceivedAt, DataContentType: "application/json", Data: rej,
	}
	raw, err := json.Marshal(env)
	if err == nil {
		_, err = m.p.js.Publish(ctx, m.p.subjects.Rejections(), raw, jetstream.WithMsgID(env.ID))
	}
	log := m.p.log.WithFields(logrus.Fields{"reason_code": code, "reason": reason, "request_id": req.RequestID})
	if err != nil {
		log.WithError(err).Warn("publish rejection of rotate request failed")
	}
	log.Warn("rotate request refused")
	return events.RotateReply{RequestID: req.RequestID, Status: status, Reason: reason}
}

// serveReviews answers attestations and list requests for post-change reviews.
func (r *reviews) serve(msg *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var reply events.ReviewReply
	switch msg.Subject {
	case r.p.subjects.ReviewAttest():
		var req events.AttestRequest
		if err := events.DecodeRequest(msg.Data, events.ReviewAttestSchema, &req); err != nil {
			reply.Error = err.Error()
			break
		}
		review, err := r.attest(ctx, req)
		if err != nil {
			reply.Error = err.Error()
		}
		if review.ChangeID != "" {
			reply.Reviews = []events.Review{review}
		}
	default:
		all, err := r.list(ctx)
		reply.Reviews = all
		if err != nil {
			reply.Error = err.Error()
		}
	}
	raw, err := json.Marshal(reply)
	if err == nil {
		err = msg.Respond(raw)
	}
	if err != nil {
		r.p.log.WithError(err).Warn("reply to review request failed")
	}
}

// NkeyPublicKey returns the public key of an nkey seed.
func NkeyPublicKey(seed []byte) (string, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return "", fmt.Errorf("nkey seed: %w", err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}
