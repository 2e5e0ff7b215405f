package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema file names inside Schemas, as published in docs/events.md.
const (
	evidenceSchema  = "schema/evidence.schema.json"
	rejectionSchema = "schema/rejection.schema.json"
)

// testMaxBytes is the agent's default ROTATION_AGENT_MAX_EVENT_BYTES.
const testMaxBytes = 65536

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// globTestdata lists the example files matching pattern, relative to testdata.
func globTestdata(t *testing.T, pattern string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range matches {
		rel, err := filepath.Rel("testdata", m)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.ToSlash(rel))
	}
	sort.Strings(names)
	return names
}

// requireCovered fails when an example file exists that the table does not name, so a new
// example cannot be added without a test case.
func requireCovered(t *testing.T, pattern string, covered map[string]bool) {
	t.Helper()
	files := globTestdata(t, pattern)
	if len(files) == 0 {
		t.Fatalf("no example files match %s", pattern)
	}
	for _, f := range files {
		if !covered[f] {
			t.Errorf("example %s has no test case", f)
		}
	}
}

// validate checks raw JSON against a schema in Schemas.
func validate(t *testing.T, schemaName string, raw []byte) error {
	t.Helper()
	s, err := Schema(schemaName)
	if err != nil {
		t.Fatalf("Schema(%q): %v", schemaName, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return s.Validate(doc)
}

func TestDecodeChangeEventValidExamples(t *testing.T) {
	tests := []struct {
		file        string
		changeID    string
		eventID     string
		changeType  ChangeType
		credentials []string // CredentialRef.ID of each named credential
	}{
		{
			file:        "change-completed.json",
			changeID:    "CHG0031337",
			eventID:     "5f0c9e4a-8d1b-4c52-9a43-2b7e1d6f0a11",
			changeType:  ChangeNormal,
			credentials: []string{"kv-v2:secret/payments/db"},
		},
		{
			file:        "change-completed-emergency.json",
			changeID:    "CHG0031402",
			eventID:     "b71e2c30-4f6a-4e0b-8c1d-93a5f2e7c4d8",
			changeType:  ChangeEmergency,
			credentials: []string{"kv-v2:secret/orders/api", "kv-v2:secret/orders/db"},
		},
		{
			file:       "change-completed-no-credentials.json",
			changeID:   "CHG0031455",
			eventID:    "0d9a6b3e-2c71-4f85-a0e4-6c8b1f2d3e94",
			changeType: ChangeStandard,
		},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			ev, rej := DecodeChangeEvent(readTestdata(t, tc.file), testMaxBytes)
			if rej != nil {
				t.Fatalf("rejected: %v", rej)
			}
			if ev.SpecVersion != SpecVersion || ev.Type != TypeChangeCompleted {
				t.Errorf("envelope = %q %q, want %q %q", ev.SpecVersion, ev.Type, SpecVersion, TypeChangeCompleted)
			}
			if ev.ID != tc.eventID {
				t.Errorf("id = %q, want %q", ev.ID, tc.eventID)
			}
			if ev.Data.ID != tc.changeID {
				t.Errorf("change_id = %q, want %q", ev.Data.ID, tc.changeID)
			}
			if ev.Data.Type != tc.changeType {
				t.Errorf("change_type = %q, want %q", ev.Data.Type, tc.changeType)
			}
			if ev.Time.IsZero() || ev.Data.CompletedAt.IsZero() {
				t.Errorf("time or completed_at not decoded")
			}
			if ev.Data.Requester.ID == "" {
				t.Errorf("requester not decoded")
			}
			var got []string
			for _, c := range ev.Data.Credentials {
				got = append(got, c.ID())
				if c.EffectiveAction() != ActionRotate {
					t.Errorf("%s: action = %q, want rotate", c.ID(), c.EffectiveAction())
				}
			}
			if !reflect.DeepEqual(got, tc.credentials) {
				t.Errorf("credentials = %q, want %q", got, tc.credentials)
			}
		})
	}
	requireCovered(t, "change-completed*.json", covered)
}

func TestDecodeChangeEventInvalidExamples(t *testing.T) {
	tests := []struct {
		file     string
		code     ReasonCode
		inReason []string // substrings the reason must contain, naming the problem and where it is
		eventID  string
		changeID string
	}{
		{
			file:     "invalid/malformed-json.json",
			code:     ReasonMalformedJSON,
			inReason: []string{"not valid JSON"},
		},
		{
			file:     "invalid/not-an-object.json",
			code:     ReasonMalformedJSON,
			inReason: []string{"not a JSON object"},
		},
		{
			file:     "invalid/unknown-type.json",
			code:     ReasonUnknownType,
			inReason: []string{`"io.rotation-agent.change.approved.v1"`, TypeChangeCompleted},
			eventID:  "a1b2c3d4-0000-4000-8000-000000000001",
			changeID: "CHG0031501",
		},
		{
			file:     "invalid/missing-change-id.json",
			code:     ReasonInvalid,
			inReason: []string{"/data:", "change_id"},
			eventID:  "a1b2c3d4-0000-4000-8000-000000000002",
		},
		{
			file:     "invalid/bad-change-type.json",
			code:     ReasonInvalid,
			inReason: []string{"/data/change_type:"},
			eventID:  "a1b2c3d4-0000-4000-8000-000000000003",
			changeID: "CHG0031503",
		},
		{
			file:     "invalid/credential-missing-path.json",
			code:     ReasonInvalid,
			inReason: []string{"/data/credentials/1:", "path"},
			eventID:  "a1b2c3d4-0000-4000-8000-000000000004",
			changeID: "CHG0031504",
		},
		{
			file:     "invalid/credential-unknown-field.json",
			code:     ReasonInvalid,
			inReason: []string{"/data/credentials/0:", "rotate_after"},
			eventID:  "a1b2c3d4-0000-4000-8000-000000000005",
			changeID: "CHG0031505",
		},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			raw := readTestdata(t, tc.file)
			ev, rej := DecodeChangeEvent(raw, testMaxBytes)
			if rej == nil {
				t.Fatalf("accepted: %+v", ev)
			}
			if ev != nil {
				t.Errorf("rejection came with an event: %+v", ev)
			}
			if rej.ReasonCode != tc.code {
				t.Errorf("reason_code = %q, want %q (reason %q)", rej.ReasonCode, tc.code, rej.Reason)
			}
			for _, want := range tc.inReason {
				if !strings.Contains(rej.Reason, want) {
					t.Errorf("reason %q does not contain %q", rej.Reason, want)
				}
			}
			if rej.EventID != tc.eventID {
				t.Errorf("event_id = %q, want %q", rej.EventID, tc.eventID)
			}
			if rej.ChangeID != tc.changeID {
				t.Errorf("change_id = %q, want %q", rej.ChangeID, tc.changeID)
			}
			if rej.Error() != string(rej.ReasonCode)+": "+rej.Reason {
				t.Errorf("Error() = %q", rej.Error())
			}

			// The rejection the agent publishes for this payload must fit its schema.
			env := rejectionEnvelope(*rej, raw)
			if err := validateMarshalled(t, rejectionSchema, env); err != nil {
				t.Errorf("rejection does not match %s: %v", rejectionSchema, err)
			}
		})
	}
	requireCovered(t, "invalid/*.json", covered)
}

func TestDecodeChangeEventSizeLimit(t *testing.T) {
	raw := readTestdata(t, "change-completed.json")

	ev, rej := DecodeChangeEvent(raw, len(raw)-1)
	if rej == nil {
		t.Fatalf("payload over the limit accepted: %+v", ev)
	}
	if rej.ReasonCode != ReasonTooLarge {
		t.Errorf("reason_code = %q, want %q", rej.ReasonCode, ReasonTooLarge)
	}
	for _, want := range []string{fmt.Sprint(len(raw)), fmt.Sprint(len(raw) - 1)} {
		if !strings.Contains(rej.Reason, want) {
			t.Errorf("reason %q does not name size %s", rej.Reason, want)
		}
	}
	if rej.EventID != "" || rej.ChangeID != "" {
		t.Errorf("an oversized payload must not be parsed, got event_id %q change_id %q", rej.EventID, rej.ChangeID)
	}
	if err := validateMarshalled(t, rejectionSchema, rejectionEnvelope(*rej, raw)); err != nil {
		t.Errorf("too_large rejection does not match %s: %v", rejectionSchema, err)
	}

	// A payload of exactly the limit is fine, and an oversized payload is refused before parsing,
	// even when it is not JSON at all.
	if _, rej := DecodeChangeEvent(raw, len(raw)); rej != nil {
		t.Errorf("payload of exactly the limit rejected: %v", rej)
	}
	garbage := bytes.Repeat([]byte{'x'}, testMaxBytes+1)
	if _, rej := DecodeChangeEvent(garbage, testMaxBytes); rej == nil || rej.ReasonCode != ReasonTooLarge {
		t.Errorf("oversized garbage: got %v, want %s", rej, ReasonTooLarge)
	}

	// Zero means no limit.
	padded := append(append([]byte{}, raw...), bytes.Repeat([]byte{' '}, testMaxBytes)...)
	if _, rej := DecodeChangeEvent(padded, 0); rej != nil {
		t.Errorf("maxBytes 0 must not limit: %v", rej)
	}
}

func TestDecodeChangeEventRejectsTrailingData(t *testing.T) {
	raw := readTestdata(t, "change-completed.json")
	raw = append(append([]byte{}, raw...), []byte(`{}`)...)
	_, rej := DecodeChangeEvent(raw, 0)
	if rej == nil || rej.ReasonCode != ReasonMalformedJSON {
		t.Fatalf("got %v, want %s", rej, ReasonMalformedJSON)
	}
}

func TestDecodeChangeEventMissingType(t *testing.T) {
	_, rej := DecodeChangeEvent([]byte(`{"specversion":"1.0","id":"e-1","data":{"change_id":"CHG1"}}`), 0)
	if rej == nil || rej.ReasonCode != ReasonUnknownType {
		t.Fatalf("got %v, want %s", rej, ReasonUnknownType)
	}
	if !strings.Contains(rej.Reason, "no type") || rej.EventID != "e-1" || rej.ChangeID != "CHG1" {
		t.Errorf("rejection = %+v", rej)
	}
}

func TestDecodeChangeEventReportsEveryProblem(t *testing.T) {
	// Two independent problems: both locations are named, in a stable order.
	raw := []byte(`{"specversion":"1.0","id":"e-2","source":"s","type":"` + TypeChangeCompleted + `",
		"time":"2025-03-14T16:05:12Z","data":{"change_id":"CHG1","change_type":"normal","state":"closed",
		"completed_at":"yesterday","requester":{},"targets":{}}}`)
	_, rej := DecodeChangeEvent(raw, 0)
	if rej == nil || rej.ReasonCode != ReasonInvalid {
		t.Fatalf("got %v, want %s", rej, ReasonInvalid)
	}
	a := strings.Index(rej.Reason, "/data/completed_at:")
	b := strings.Index(rej.Reason, "/data/requester:")
	if a < 0 || b < 0 || a > b {
		t.Errorf("reason %q does not list /data/completed_at then /data/requester", rej.Reason)
	}
}

func TestSchemasCompile(t *testing.T) {
	entries, err := Schemas.ReadDir("schema")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{ChangeCompletedSchema: false, evidenceSchema: false, rejectionSchema: false}
	ids := map[string]string{}
	for _, e := range entries {
		name := "schema/" + e.Name()
		if _, err := Schema(name); err != nil {
			t.Errorf("Schema(%q): %v", name, err)
		}
		raw, err := Schemas.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Schema string `json:"$schema"`
			ID     string `json:"$id"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if head.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %q, want draft 2020-12", name, head.Schema)
		}
		if wantID := "https://rotation-agent.dev/" + name; head.ID != wantID {
			t.Errorf("%s: $id = %q, want %q", name, head.ID, wantID)
		}
		if other, dup := ids[head.ID]; dup {
			t.Errorf("%s and %s share $id %q", name, other, head.ID)
		}
		ids[head.ID] = name
		if _, ok := want[name]; ok {
			want[name] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("schema %s is missing", name)
		}
	}
	if _, err := Schema("schema/no-such.schema.json"); err == nil {
		t.Error("Schema of an unknown name succeeded")
	}
}

func TestPublishedExamplesMatchSchemas(t *testing.T) {
	tests := []struct {
		file   string
		schema string
		typ    string
		decode func([]byte) error // strict decode into the Go type
	}{
		{"evidence.json", evidenceSchema, TypeEvidence, strictDecode[Envelope[Evidence]]},
		{"evidence-no-credentials.json", evidenceSchema, TypeEvidence, strictDecode[Envelope[Evidence]]},
		{"evidence-drift.json", evidenceSchema, TypeEvidence, strictDecode[Envelope[Evidence]]},
		{"evidence-review.json", evidenceSchema, TypeEvidence, strictDecode[Envelope[Evidence]]},
		{"rejection.json", rejectionSchema, TypeRejection, strictDecode[Envelope[Rejection]]},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			raw := readTestdata(t, tc.file)
			if err := validate(t, tc.schema, raw); err != nil {
				t.Errorf("does not match %s: %v", tc.schema, err)
			}
			var head struct{ Type string }
			if err := json.Unmarshal(raw, &head); err != nil || head.Type != tc.typ {
				t.Errorf("type = %q, want %q", head.Type, tc.typ)
			}
			// Every field of the example exists in the Go type.
			if err := tc.decode(raw); err != nil {
				t.Errorf("does not fit the Go type: %v", err)
			}
			// An inbound schema must not accept what the agent publishes.
			if _, rej := DecodeChangeEvent(raw, testMaxBytes); rej == nil || rej.ReasonCode != ReasonUnknownType {
				t.Errorf("DecodeChangeEvent = %v, want %s", rej, ReasonUnknownType)
			}
		})
	}
	requireCovered(t, "evidence*.json", covered)
	requireCovered(t, "rejection*.json", covered)
}

// TestEvidenceExamplesFollowIDRule checks the documented id, subject and time of evidence.
func TestEvidenceExamplesFollowIDRule(t *testing.T) {
	for _, file := range globTestdata(t, "evidence*.json") {
		var env Envelope[Evidence]
		if err := json.Unmarshal(readTestdata(t, file), &env); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if want := evidenceID(env.Data.ChangeID, env.Data.EventID); env.ID != want {
			t.Errorf("%s: id = %q, want %q", file, env.ID, want)
		}
		if env.Subject != env.Data.ChangeID {
			t.Errorf("%s: subject = %q, want the change id %q", file, env.Subject, env.Data.ChangeID)
		}
		if !env.Time.Equal(env.Data.FinishedAt) {
			t.Errorf("%s: time = %s, want finished_at %s", file, env.Time, env.Data.FinishedAt)
		}
		if got := WithEntitlements(OverallStatus(env.Data.Credentials), env.Data.Entitlements); got != env.Data.Status {
			t.Errorf("%s: status = %q, but the credentials and entitlements give %q", file, env.Data.Status, got)
		}
		if env.Data.Controls != nil && !reflect.DeepEqual(env.Data.Controls, ControlsFor(env.Data)) {
			t.Errorf("%s: controls = %q, want %q", file, env.Data.Controls, ControlsFor(env.Data))
		}
	}
}

func strictDecode[T any](raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v T
	return dec.Decode(&v)
}

// mutateExample applies f to the generic form of an example and returns the result as JSON.
func mutateExample(t *testing.T, file string, f func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readTestdata(t, file), &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestEvidenceSchemaRefuses(t *testing.T) {
	data := func(doc map[string]any) map[string]any { return doc["data"].(map[string]any) }
	cred := func(doc map[string]any) map[string]any {
		return data(doc)["credentials"].([]any)[0].(map[string]any)
	}
	tests := []struct {
		name string
		file string
		f    func(doc map[string]any)
	}{
		{"wrong type", "evidence.json", func(d map[string]any) { d["type"] = TypeChangeCompleted }},
		{"unknown status", "evidence.json", func(d map[string]any) { data(d)["status"] = "ok" }},
		{"unknown outcome", "evidence.json", func(d map[string]any) { cred(d)["outcome"] = "unchanged" }},
		{"unknown action", "evidence.json", func(d map[string]any) { cred(d)["action"] = "delete" }},
		{"unknown trigger", "evidence.json", func(d map[string]any) { data(d)["trigger"] = "cron" }},
		{"schema version 2", "evidence.json", func(d map[string]any) { data(d)["schema_version"] = 2 }},
		{"missing change_id", "evidence.json", func(d map[string]any) { delete(data(d), "change_id") }},
		{"missing credentials", "evidence-no-credentials.json", func(d map[string]any) { delete(data(d), "credentials") }},
		{"null credentials", "evidence-no-credentials.json", func(d map[string]any) { data(d)["credentials"] = nil }},
		{"unknown field", "evidence.json", func(d map[string]any) { data(d)["secret"] = "x" }},
		{"unknown credential field", "evidence.json", func(d map[string]any) { cred(d)["value"] = "x" }},
		{"source of no known form", "evidence-drift.json", func(d map[string]any) { cred(d)["source"] = "inventory.yaml" }},
		{"non-string fingerprint", "evidence.json", func(d map[string]any) {
			cred(d)["after"] = map[string]any{"version": 8}
		}},
		{"failed without error", "evidence.json", func(d map[string]any) {
			cred(d)["outcome"] = "failed"
			data(d)["status"] = "failed"
		}},
		{"no_credentials with a credential", "evidence.json", func(d map[string]any) {
			data(d)["status"] = "no_credentials"
		}},
		{"reconciled without a credential", "evidence-no-credentials.json", func(d map[string]any) {
			data(d)["status"] = "reconciled"
		}},
		{"bad time", "evidence.json", func(d map[string]any) { data(d)["finished_at"] = "14/03/2025" }},
		{"unknown review status", "evidence-review.json", func(d map[string]any) {
			data(d)["review"].(map[string]any)["status"] = "waived"
		}},
		{"attestation without by", "evidence-review.json", func(d map[string]any) {
			delete(data(d)["review"].(map[string]any)["attestations"].([]any)[0].(map[string]any), "by")
		}},
		{"negative duration", "evidence.json", func(d map[string]any) { cred(d)["duration_ms"] = -1 }},
		{"agent without version", "evidence.json", func(d map[string]any) {
			delete(data(d)["agent"].(map[string]any), "version")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(t, evidenceSchema, mutateExample(t, tc.file, tc.f))
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
}

func TestRejectionSchemaRefuses(t *testing.T) {
	data := func(doc map[string]any) map[string]any { return doc["data"].(map[string]any) }
	tests := []struct {
		name string
		f    func(doc map[string]any)
	}{
		{"wrong type", func(d map[string]any) { d["type"] = TypeEvidence }},
		{"unknown reason code", func(d map[string]any) { data(d)["reason_code"] = "too_old" }},
		{"missing reason", func(d map[string]any) { delete(data(d), "reason") }},
		{"missing subject", func(d map[string]any) { delete(data(d), "subject") }},
		{"missing payload_sha256", func(d map[string]any) { delete(data(d), "payload_sha256") }},
		{"payload_sha256 not hex", func(d map[string]any) { data(d)["payload_sha256"] = strings.Repeat("Z", 64) }},
		{"echoed payload", func(d map[string]any) { data(d)["payload"] = "{}" }},
		{"zero stream sequence", func(d map[string]any) { data(d)["stream_sequence"] = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(t, rejectionSchema, mutateExample(t, "rejection.json", tc.f))
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
}

var (
	testAgent = AgentInfo{ID: "rotation-agent-test", Version: "0.0.0-test"}
	testStart = time.Date(2025, 3, 14, 16, 5, 13, 902_000_000, time.UTC)
)

func validateMarshalled(t *testing.T, schemaName string, v any) error {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return validate(t, schemaName, raw)
}

// rejectionEnvelope builds the rejection the agent publishes for a refused payload.
func rejectionEnvelope(rej Rejection, payload []byte) Envelope[Rejection] {
	sum := sha256.Sum256(payload)
	rej.Subject = Subjects{Prefix: DefaultSubjectPrefix}.ChangeCompleted()
	rej.StreamSequence = 42
	rej.PayloadBytes = len(payload)
	rej.PayloadSHA256 = hex.EncodeToString(sum[:])
	rej.ReceivedAt = testStart
	rej.Agent = testAgent
	return Envelope[Rejection]{
		SpecVersion:     SpecVersion,
		ID:              fmt.Sprintf("rejection:ROTATION_CHANGES:%d", rej.StreamSequence),
		Source:          "rotation-agent/" + testAgent.ID,
		Type:            TypeRejection,
		Time:            testStart,
		DataContentType: "application/json",
		Data:            rej,
	}
}

func credentialEvidence(outcome Outcome, full bool) CredentialEvidence {
	ref := CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "payments/db"}
	c := CredentialEvidence{
		Credential: ref.ID(),
		Kind:       ref.Kind,
		Mount:      ref.Mount,
		Path:       ref.Path,
		Action:     ref.EffectiveAction(),
		Outcome:    outcome,
		StartedAt:  testStart,
		FinishedAt: testStart.Add(395 * time.Millisecond),
		DurationMS: 395,
	}
	if outcome == OutcomeFailed || outcome == OutcomeNeedsReconcile {
		c.Error = "vault: permission denied"
	}
	if full { // every optional field set, so the schema must declare each of them
		retireAt, retiredAt := testStart.Add(time.Hour), testStart.Add(time.Hour+time.Second)
		c.Fields = []string{"password"}
		c.Before = Fingerprint{"version": "7"}
		c.After = Fingerprint{"version": "8"}
		c.Verified = true
		c.OldCredential = "retired"
		c.RetireAt, c.RetiredAt = &retireAt, &retiredAt
		c.Resumed = true
		c.MatchedBy, c.Source = "named in the event", "event"
		deferredUntil := testStart.Add(2 * time.Hour)
		c.DeferredUntil = &deferredUntil
		c.Error = "first attempt timed out"
		at := testStart.Add(time.Second)
		c.Delivery = &Delivery{Application: "payments", Files: []string{"/run/app/db.env"}, Token: "rd-0123456789abcdef01234567",
			WrittenAt: &at, Notify: "http", NotifiedAt: &at, Confirmation: "health", ConfirmedAt: &at, Error: "late"}
	}
	return c
}

// evidenceID is the id, and Nats-Msg-Id, of the evidence of one change event.
func evidenceID(changeID, eventID string) string { return "evidence:" + changeID + ":" + eventID }

func evidenceEnvelope(ct ChangeType, creds []CredentialEvidence, full bool) Envelope[Evidence] {
	const changeID, eventID = "CHG0031337", "5f0c9e4a-8d1b-4c52-9a43-2b7e1d6f0a11"
	env := Envelope[Evidence]{
		SpecVersion: SpecVersion,
		ID:          evidenceID(changeID, eventID),
		Source:      "rotation-agent/" + testAgent.ID,
		Type:        TypeEvidence,
		Time:        testStart.Add(time.Second),
		Data: Evidence{
			SchemaVersion: EvidenceSchemaVersion,
			ChangeID:      changeID,
			EventID:       eventID,
			ChangeType:    ct,
			Trigger:       TriggerEvent,
			Agent:         testAgent,
			Status:        OverallStatus(creds),
			StartedAt:     testStart,
			FinishedAt:    testStart.Add(time.Second),
			Credentials:   creds,
		},
	}
	if full {
		env.Subject = env.Data.ChangeID
		env.DataContentType = "application/json"
		env.Data.RelatedChangeID = "CHG0031336"
		env.Data.Entitlements = []EntitlementEvidence{fullEntitlement()}
		env.Data.Controls = ControlsFor(env.Data)
		escalated := testStart.Add(24 * time.Hour)
		env.Data.Review = &Review{ChangeID: "CHG0031336", Status: ReviewApproved, Event: ReviewAttested, OpenedAt: testStart,
			Deadline: testStart.Add(24 * time.Hour), Environments: []string{"production"},
			Attestations: []Attestation{{By: "alice", Decision: DecisionApprove, Note: "checked", At: testStart.Add(25 * time.Hour)}},
			Granted:      []string{"token:token/a"}, CleanupChangeID: "review:CHG0031336", EscalatedAt: &escalated, Agent: testAgent}
		env.Data.Discovery = &DiscoveryReport{Status: DiscoveryStale, Sources: []string{"kv-v2:secret/apps", "pki:pki/web"},
			Failed: []DiscoveryFailure{{Source: "pki:pki/web", Error: "permission denied"}},
			Stale:  []StaleSource{{Source: "kv-v2:secret/apps", BindingsFrom: testStart.Add(-time.Hour), FailedRefreshes: 2}}}
		env.Data.Chain = &ChainLink{Sequence: 7, PreviousSHA256: strings.Repeat("ab", 32)}
		env.Data.Signature = &Signature{Algorithm: SignatureAlgorithm, KeyID: "transit:transit/evidence", KeyVersion: 2,
			Value: strings.Repeat("A", 86) + "=="}
	}
	return env
}

// fullEntitlement is an entitlement result with every optional field set.
func fullEntitlement() EntitlementEvidence {
	return EntitlementEvidence{
		Identity: "approle:approle/payments", Kind: "approle-role", Source: "change event", Status: EntitlementRemediated,
		ApprovedPolicies: []string{"payments"}, ActualPolicies: []string{"admin", "payments"}, ExtraPolicies: []string{"admin"},
		MissingPolicies: []string{"audit"},
		Capabilities: []CapabilityEvidence{{Path: "secret/data/payments/db", Status: CapabilityDrift, Approved: []string{"read"},
			Actual: []string{"read", "update"}, Extra: []string{"update"}, Missing: []string{"list"}, MeasuredBy: MeasuredByProbeLogin, Note: "n"}},
		Remediation: &Remediation{SetPolicies: []string{"payments"}, At: testStart, Verified: true},
		Error:       "e",
		CheckedAt:   testStart,
	}
}

// TestGoEvidenceMatchesSchema builds evidence with the Go types, with every optional field
// set and with none, for every status, and validates it: the Go types and the schema cannot
// drift apart without this failing.
func TestGoEvidenceMatchesSchema(t *testing.T) {
	rotated, failed := credentialEvidence(OutcomeRotated, false), credentialEvidence(OutcomeFailed, false)
	tests := []struct {
		name   string
		env    Envelope[Evidence]
		status Status
	}{
		{"reconciled, minimal", evidenceEnvelope(ChangeNormal, []CredentialEvidence{rotated}, false), StatusReconciled},
		{"reconciled, full", evidenceEnvelope(ChangeNormal, []CredentialEvidence{credentialEvidence(OutcomeRotated, true)}, true), StatusReconciled},
		{"partial", evidenceEnvelope(ChangeEmergency, []CredentialEvidence{rotated, failed}, false), StatusPartial},
		{"failed", evidenceEnvelope(ChangeStandard, []CredentialEvidence{failed}, true), StatusFailed},
		{"no credentials", evidenceEnvelope(ChangeStandard, []CredentialEvidence{}, false), StatusNoCredentials},
	}
	// The longest ids a valid change event can carry still make a valid evidence id.
	long := evidenceEnvelope(ChangeNormal, []CredentialEvidence{rotated}, true)
	long.Data.ChangeID, long.Data.EventID = "C"+strings.Repeat("x", 127), strings.Repeat("e", 256)
	long.ID, long.Subject = evidenceID(long.Data.ChangeID, long.Data.EventID), long.Data.ChangeID
	tests = append(tests, struct {
		name   string
		env    Envelope[Evidence]
		status Status
	}{"longest ids", long, StatusReconciled})
	for _, a := range []Action{ActionRotate, ActionRevoke, ActionVerify} {
		c := credentialEvidence(OutcomeRotated, false)
		c.Action = a
		tests = append(tests, struct {
			name   string
			env    Envelope[Evidence]
			status Status
		}{"action " + string(a), evidenceEnvelope(ChangeNormal, []CredentialEvidence{c}, false), StatusReconciled})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env.Data.Status != tc.status {
				t.Fatalf("status = %q, want %q", tc.env.Data.Status, tc.status)
			}
			if err := validateMarshalled(t, evidenceSchema, tc.env); err != nil {
				t.Errorf("does not match %s: %v", evidenceSchema, err)
			}
		})
	}
}

func TestGoRejectionMatchesSchema(t *testing.T) {
	full := rejectionEnvelope(Rejection{
		ReasonCode: ReasonInvalid,
		Reason:     "event does not match the change-completed schema: /data: missing property 'change_id'",
		EventID:    "e-1",
		ChangeID:   "CHG0031337",
	}, []byte(`{}`))
	full.Subject = "CHG0031337"
	minimal := rejectionEnvelope(Rejection{ReasonCode: ReasonTooLarge, Reason: "payload is 70000 bytes"}, nil)
	minimal.DataContentType = ""
	minimal.Data.StreamSequence = 0

	tests := map[string]Envelope[Rejection]{"full": full, "minimal": minimal}
	for _, code := range []ReasonCode{ReasonTooLarge, ReasonMalformedJSON, ReasonUnknownType, ReasonInvalid, ReasonUndeliverable} {
		env := minimal
		env.Data.ReasonCode = code
		tests["reason "+string(code)] = env
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			if err := validateMarshalled(t, rejectionSchema, env); err != nil {
				t.Errorf("does not match %s: %v", rejectionSchema, err)
			}
		})
	}
}

// schemaNode walks a schema file by JSON keys.
func schemaNode(t *testing.T, schemaName string, keys ...string) any {
	t.Helper()
	raw, err := Schemas.ReadFile(schemaName)
	if err != nil {
		t.Fatal(err)
	}
	var node any
	if err := json.Unmarshal(raw, &node); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s", schemaName, strings.Join(keys, "/"))
		}
		node = m[k]
	}
	return node
}

func schemaPropertyNames(t *testing.T, schemaName string, keys ...string) []string {
	t.Helper()
	props, ok := schemaNode(t, schemaName, append(keys, "properties")...).(map[string]any)
	if !ok {
		t.Fatalf("%s: no properties at %s", schemaName, strings.Join(keys, "/"))
	}
	var names []string
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func schemaEnum(t *testing.T, schemaName string, keys ...string) []string {
	t.Helper()
	list, ok := schemaNode(t, schemaName, append(keys, "enum")...).([]any)
	if !ok {
		t.Fatalf("%s: no enum at %s", schemaName, strings.Join(keys, "/"))
	}
	var values []string
	for _, v := range list {
		values = append(values, fmt.Sprint(v))
	}
	sort.Strings(values)
	return values
}

// jsonKeys returns the sorted keys of v marshalled as a JSON object.
func jsonKeys(t *testing.T, v any) []string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sorted[T ~string](values ...T) []string {
	var s []string
	for _, v := range values {
		s = append(s, string(v))
	}
	sort.Strings(s)
	return s
}

// TestSchemaFieldsMatchGoTypes checks that every property a published schema declares is a
// field of the Go type, and every field of the Go type is declared, and that the enums list
// exactly the Go constants.
func TestSchemaFieldsMatchGoTypes(t *testing.T) {
	fullEvidence := evidenceEnvelope(ChangeNormal, []CredentialEvidence{credentialEvidence(OutcomeRotated, true)}, true)
	fullRejection := rejectionEnvelope(Rejection{ReasonCode: ReasonInvalid, Reason: "r", EventID: "e", ChangeID: "c"}, nil)
	fullRejection.Subject = "c"

	fields := []struct {
		name   string
		schema string
		keys   []string
		value  any
	}{
		{"evidence envelope", evidenceSchema, nil, fullEvidence},
		{"evidence", evidenceSchema, []string{"$defs", "evidence"}, fullEvidence.Data},
		{"evidence credential", evidenceSchema, []string{"$defs", "credential"}, fullEvidence.Data.Credentials[0]},
		{"evidence agent", evidenceSchema, []string{"$defs", "agent"}, testAgent},
		{"evidence entitlement", evidenceSchema, []string{"$defs", "entitlement"}, fullEvidence.Data.Entitlements[0]},
		{"evidence capability", evidenceSchema, []string{"$defs", "capability"}, fullEvidence.Data.Entitlements[0].Capabilities[0]},
		{"evidence chain", evidenceSchema, []string{"$defs", "chain"}, fullEvidence.Data.Chain},
		{"evidence signature", evidenceSchema, []string{"$defs", "signature"}, fullEvidence.Data.Signature},
		{"evidence delivery", evidenceSchema, []string{"$defs", "delivery"}, fullEvidence.Data.Credentials[0].Delivery},
		{"evidence discovery", evidenceSchema, []string{"$defs", "discovery"}, fullEvidence.Data.Discovery},
		{"rejection envelope", rejectionSchema, nil, fullRejection},
		{"rejection", rejectionSchema, []string{"$defs", "rejection"}, fullRejection.Data},
		{"rejection agent", rejectionSchema, []string{"$defs", "agent"}, testAgent},
	}
	for _, tc := range fields {
		got, want := schemaPropertyNames(t, tc.schema, tc.keys...), jsonKeys(t, tc.value)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: schema properties %q, Go fields %q", tc.name, got, want)
		}
	}

	enums := []struct {
		name   string
		schema string
		keys   []string
		want   []string
	}{
		{"status", evidenceSchema, []string{"$defs", "evidence", "properties", "status"},
			sorted(StatusReconciled, StatusDrift, StatusPartial, StatusFailed, StatusRejected, StatusNoCredentials, StatusDeferred)},
		{"entitlement status", evidenceSchema, []string{"$defs", "entitlement", "properties", "status"},
			sorted(EntitlementMatch, EntitlementDrift, EntitlementRemediated, EntitlementError)},
		{"discovery status", evidenceSchema, []string{"$defs", "discovery", "properties", "status"},
			sorted(DiscoveryComplete, DiscoveryStale, DiscoveryIncomplete, DiscoverySkipped)},
		{"capability status", evidenceSchema, []string{"$defs", "capability", "properties", "status"},
			sorted(CapabilityMatch, CapabilityDrift, CapabilityNotComputed)},
		{"capability measured_by", evidenceSchema, []string{"$defs", "capability", "properties", "measured_by"},
			sorted(MeasuredByAccessor, MeasuredByProbeLogin)},
		{"controls", evidenceSchema, []string{"$defs", "evidence", "properties", "controls", "items"},
			sorted(ControlNISTAccessPermissions, ControlNHIOffboarding, ControlNHISecretLeakage, ControlNHIOverprivileged, ControlNHILongLived)},
		{"outcome", evidenceSchema, []string{"$defs", "credential", "properties", "outcome"},
			sorted(OutcomeRotated, OutcomeRevoked, OutcomeFailed, OutcomeNeedsReconcile, OutcomeDeferred)},
		{"action", evidenceSchema, []string{"$defs", "credential", "properties", "action"},
			sorted(ActionRotate, ActionRevoke, ActionVerify)},
		{"trigger", evidenceSchema, []string{"$defs", "evidence", "properties", "trigger"},
			sorted(TriggerEvent, TriggerSchedule, TriggerManual, TriggerReview, TriggerEmergency)},
		{"inbound trigger", ChangeCompletedSchema, []string{"$defs", "change", "properties", "trigger"},
			sorted(TriggerEvent, TriggerSchedule, TriggerManual, TriggerReview)},
		{"change_type", evidenceSchema, []string{"$defs", "evidence", "properties", "change_type"},
			sorted(ChangeStandard, ChangeNormal, ChangeEmergency)},
		{"inbound change_type", ChangeCompletedSchema, []string{"$defs", "change", "properties", "change_type"},
			sorted(ChangeStandard, ChangeNormal, ChangeEmergency)},
		{"inbound action", ChangeCompletedSchema, []string{"$defs", "credential", "properties", "action"},
			sorted(ActionRotate, ActionRevoke, ActionVerify)},
		{"reason_code", rejectionSchema, []string{"$defs", "rejection", "properties", "reason_code"},
			sorted(ReasonTooLarge, ReasonMalformedJSON, ReasonUnknownType, ReasonInvalid, ReasonUndeliverable, ReasonUnauthorized)},
	}
	for _, tc := range enums {
		if got := schemaEnum(t, tc.schema, tc.keys...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: schema enum %q, Go constants %q", tc.name, got, tc.want)
		}
	}

	consts := []struct {
		schema string
		keys   []string
		want   any
	}{
		{evidenceSchema, []string{"properties", "type", "const"}, TypeEvidence},
		{rejectionSchema, []string{"properties", "type", "const"}, TypeRejection},
		{ChangeCompletedSchema, []string{"properties", "type", "const"}, TypeChangeCompleted},
		{evidenceSchema, []string{"properties", "specversion", "const"}, SpecVersion},
		{rejectionSchema, []string{"properties", "specversion", "const"}, SpecVersion},
		{evidenceSchema, []string{"$defs", "evidence", "properties", "schema_version", "const"}, float64(EvidenceSchemaVersion)},
	}
	for _, tc := range consts {
		if got := schemaNode(t, tc.schema, tc.keys...); got != tc.want {
			t.Errorf("%s %s = %v, want %v", tc.schema, strings.Join(tc.keys, "/"), got, tc.want)
		}
	}
}

func TestDecodeChangeEventRefusesCaseVariantKeys(t *testing.T) {
	// encoding/json matches keys without regard to case; a second "Data" or "Credentials" must
	// not smuggle unvalidated content past the schema.
	valid := string(readTestdata(t, "change-completed.json"))
	cases := map[string]string{
		"envelope": strings.Replace(valid, `"data"`, `"Data":{"change_id":""},"data"`, 1),
		"change":   strings.Replace(valid, `"credentials"`, `"Credentials":[{"kind":"KV!","mount":"/","path":"/x"}],"credentials"`, 1),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			if raw == valid {
				t.Fatal("test payload was not modified")
			}
			_, rej := DecodeChangeEvent([]byte(raw), 0)
			if rej == nil || rej.ReasonCode != ReasonInvalid {
				t.Fatalf("got %v, want %s", rej, ReasonInvalid)
			}
		})
	}
}

func TestDecodeChangeEventRefusesDuplicateCredentials(t *testing.T) {
	ev := ChangeEvent{}
	if err := json.Unmarshal(readTestdata(t, "change-completed.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Data.Credentials) == 0 {
		t.Fatal("example names no credential")
	}
	dup := ev.Data.Credentials[0]
	dup.Fields = []string{"other"}
	ev.Data.Credentials = append(ev.Data.Credentials, dup)
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	_, rej := DecodeChangeEvent(raw, 0)
	if rej == nil || rej.ReasonCode != ReasonInvalid || !strings.Contains(rej.Reason, "more than once") {
		t.Fatalf("got %v, want an invalid rejection naming the duplicate", rej)
	}
}
