package events

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schemas holds the JSON Schema of every message on the bus, as documented in docs/events.md.
//
//go:embed schema/*.schema.json
var Schemas embed.FS

// File names of the inbound event schemas inside Schemas.
const (
	ChangeCompletedSchema = "schema/change-completed.schema.json"
	ChangePlannedSchema   = "schema/change-planned.schema.json"
)

// inboundSchemas maps each inbound event type to its schema.
var inboundSchemas = map[string]string{
	TypeChangeCompleted: ChangeCompletedSchema,
	TypeChangePlanned:   ChangePlannedSchema,
}

// maxReportedProblems bounds how many schema violations a rejection lists.
const maxReportedProblems = 10

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

// Schema returns the compiled JSON Schema named by its file inside Schemas.
func Schema(name string) (*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		compiled = map[string]*jsonschema.Schema{}
		entries, err := Schemas.ReadDir("schema")
		if err != nil {
			compileErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		targets := make(map[string]string, len(entries)) // file name -> name registered
		for _, e := range entries {
			name := "schema/" + e.Name()
			raw, err := Schemas.ReadFile(name)
			if err != nil {
				compileErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				compileErr = fmt.Errorf("schema %s: %w", name, err)
				return
			}
			// Registered under its $id, so one schema can refer to another by its file name.
			target := name
			if m, ok := doc.(map[string]any); ok {
				if id, ok := m["$id"].(string); ok && id != "" {
					target = id
				}
			}
			if err := c.AddResource(target, doc); err != nil {
				compileErr = fmt.Errorf("schema %s: %w", name, err)
				return
			}
			targets[name] = target
		}
		for _, e := range entries {
			name := "schema/" + e.Name()
			s, err := c.Compile(targets[name])
			if err != nil {
				compileErr = fmt.Errorf("schema %s: %w", name, err)
				return
			}
			compiled[name] = s
		}
	})
	if compileErr != nil {
		return nil, compileErr
	}
	s, ok := compiled[name]
	if !ok {
		return nil, fmt.Errorf("no schema named %q", name)
	}
	return s, nil
}

// DecodeChangeEvent decodes and validates a change-completed or change-planned event (see
// Type to tell them apart). maxBytes limits the payload
// size (zero means no limit). A refused payload yields a *Rejection naming the reason; the
// caller fills in the transport fields (subject, sequence, agent).
func DecodeChangeEvent(payload []byte, maxBytes int) (*ChangeEvent, *Rejection) {
	if maxBytes > 0 && len(payload) > maxBytes {
		return nil, &Rejection{ReasonCode: ReasonTooLarge,
			Reason: fmt.Sprintf("payload is %d bytes, over the limit of %d", len(payload), maxBytes)}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return nil, &Rejection{ReasonCode: ReasonMalformedJSON, Reason: "payload is not valid JSON: " + err.Error()}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, &Rejection{ReasonCode: ReasonMalformedJSON, Reason: "payload is not a JSON object"}
	}
	rej := &Rejection{}
	if id, ok := obj["id"].(string); ok {
		rej.EventID = id
	}
	if data, ok := obj["data"].(map[string]any); ok {
		if id, ok := data["change_id"].(string); ok {
			rej.ChangeID = id
		}
	}
	typ, _ := obj["type"].(string)
	schemaName, known := inboundSchemas[typ]
	if !known {
		rej.ReasonCode = ReasonUnknownType
		if typ == "" {
			rej.Reason = "event has no type attribute; expected " + TypeChangeCompleted + " or " + TypeChangePlanned
		} else {
			rej.Reason = fmt.Sprintf("event type %q is not handled; expected %s or %s", typ, TypeChangeCompleted, TypeChangePlanned)
		}
		return nil, rej
	}
	schema, err := Schema(schemaName)
	if err != nil {
		rej.ReasonCode, rej.Reason = ReasonInvalid, "schema unavailable: "+err.Error()
		return nil, rej
	}
	if err := schema.Validate(doc); err != nil {
		rej.ReasonCode, rej.Reason = ReasonInvalid, describeViolations("event", err)
		return nil, rej
	}
	var ev ChangeEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		rej.ReasonCode, rej.Reason = ReasonInvalid, "event does not fit the change record: "+err.Error()
		return nil, rej
	}
	seen := map[string]bool{}
	for _, c := range ev.Data.Credentials {
		if seen[c.Key()] {
			rej.ReasonCode, rej.Reason = ReasonInvalid, fmt.Sprintf("credential %s is named more than once", c.ID())
			return nil, rej
		}
		seen[c.Key()] = true
	}
	return &ev, nil
}

// describeViolations turns a schema validation error into one readable line listing the
// failing locations, for example "/data/change_id: missing property"; noun names what was
// validated ("event", "request").
func describeViolations(noun string, err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	p := message.NewPrinter(language.English)
	seen := map[string]bool{}
	var problems []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			line := loc + ": " + e.ErrorKind.LocalizedString(p)
			if !seen[line] {
				seen[line] = true
				problems = append(problems, line)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(problems)
	if len(problems) > maxReportedProblems {
		more := len(problems) - maxReportedProblems
		problems = append(problems[:maxReportedProblems], fmt.Sprintf("and %d more", more))
	}
	return noun + " does not match its schema: " + strings.Join(problems, "; ")
}

// File names of the request schemas inside Schemas.
const (
	RotateRequestSchema = "schema/rotate-request.schema.json"
	ReviewAttestSchema  = "schema/review-attest.schema.json"
)

// DecodeRequest decodes a request body into out after validating it against the named schema
// in Schemas. The error names every failing location.
func DecodeRequest(payload []byte, schemaName string, out any) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("request is not valid JSON: %w", err)
	}
	schema, err := Schema(schemaName)
	if err != nil {
		return err
	}
	if err := schema.Validate(doc); err != nil {
		return errors.New(describeViolations("request", err))
	}
	if err := json.Unmarshal(payload, out); err != nil {
		return fmt.Errorf("request does not fit its type: %w", err)
	}
	return nil
}

// Schema file names of the evidence service's messages inside Schemas.
const (
	EvidenceRequestSchema = "schema/evidence-request.schema.json"
	ClosureAnswerSchema   = "schema/closure-answer.schema.json"
	EvidenceReplySchema   = "schema/evidence-reply.schema.json"
)

// DecodeEvidenceRequest decodes and validates the body of an evidence or closure request.
func DecodeEvidenceRequest(payload []byte) (EvidenceRequest, error) {
	var req EvidenceRequest
	err := DecodeRequest(payload, EvidenceRequestSchema, &req)
	return req, err
}
