package entitlements

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Approval is the approved access of one identity and where the approval came from.
type Approval struct {
	events.ApprovedEntitlements
	// Source is "change event" or "binding <name>".
	Source string
	// MayGrant lets remediation add policies the identity lacks. Only an approval the agent
	// loaded itself (an inventory or discovered binding) may: anyone who can publish a change
	// event could otherwise grant any identity any policy. Without it remediation may only
	// remove policies.
	MayGrant bool
}

// Checker compares identities in Vault with their approvals.
type Checker struct {
	Client *vault.Client
	// Remediate writes the approved policies back when they differ.
	Remediate bool
	// Probe measures the capabilities of AppRole roles and token roles on declared paths by a
	// single-use login as the role (see probeCapabilities); without it they are not computed.
	Probe bool
	// Secrets learns the probe's secret id and token while they exist; nil for none.
	Secrets SecretSink
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Check compares one identity with its approval. Problems Vault may get over (unreachable,
// 5xx, 429) are returned as a retryable error; anything else is recorded in the result with
// status error.
func (c *Checker) Check(ctx context.Context, a Approval) (events.EntitlementEvidence, error) {
	approved := normalise(a.Policies)
	out := events.EntitlementEvidence{Identity: a.Identity, Source: a.Source, ApprovedPolicies: approved, CheckedAt: c.now()}
	id, err := ParseIdentity(a.Identity)
	if err != nil {
		return settle(out, err)
	}
	out.Kind = id.Kind
	actual, err := c.policies(ctx, id)
	if err != nil {
		return settle(out, err)
	}
	out.ActualPolicies = actual
	out.ExtraPolicies, out.MissingPolicies = diff(actual, approved)
	caps, err := c.capabilities(ctx, id, a.Capabilities)
	if err != nil {
		return settle(out, err)
	}
	out.Capabilities = caps
	out.Status = events.EntitlementMatch
	policyDrift := len(out.ExtraPolicies)+len(out.MissingPolicies) > 0
	capDrift := false
	for _, cp := range caps {
		capDrift = capDrift || cp.Status == events.CapabilityDrift
	}
	if !policyDrift && !capDrift {
		return out, nil
	}
	out.Status = events.EntitlementDrift
	if !c.Remediate || !policyDrift {
		return out, nil
	}
	if id.Kind == KindToken {
		out.Error = "a token's policies cannot be changed; revoke the token to remediate"
		return out, nil
	}
	if len(out.MissingPolicies) > 0 && !a.MayGrant {
		out.Error = fmt.Sprintf("remediation refused: it would add %s, and only an inventory binding's approval may add policies to an identity; an approval from the %s may only remove them",
			strings.Join(out.MissingPolicies, ", "), a.Source)
		return out, nil
	}
	rem, err := c.remediate(ctx, id, approved)
	if err != nil {
		if rotators.IsRetryable(err) {
			return out, rotators.Retryable(err)
		}
		out.Error = "remediation failed: " + err.Error()
		return out, nil
	}
	out.Remediation = rem
	if rem.Verified && capDrift {
		// The capabilities above are those before the remediation; measure them again.
		after, err := c.capabilities(ctx, id, a.Capabilities)
		if err == nil {
			capDrift = remeasured(out.Capabilities, after)
		}
	}
	if rem.Verified && !capDrift {
		out.Status = events.EntitlementRemediated
	}
	return out, nil
}

// settle ends a check that failed: a failure Vault may get over is returned as a retryable
// error; anything else becomes the result, with status error and the reason.
func settle(out events.EntitlementEvidence, err error) (events.EntitlementEvidence, error) {
	if rotators.IsRetryable(err) {
		return out, rotators.Retryable(err)
	}
	out.Status, out.Error = events.EntitlementError, err.Error()
	return out, nil
}

// policies reads the policies attached to an identity.
func (c *Checker) policies(ctx context.Context, id Identity) ([]string, error) {
	path, field := policyField(id)
	if path == "" {
		return nil, fmt.Errorf("cannot read the policies of a %s", id.Kind)
	}
	var (
		sec *vault.Secret
		err error
	)
	if id.Kind == KindToken {
		sec, err = c.Client.Logical().WriteWithContext(ctx, path, map[string]any{"accessor": id.Name})
	} else {
		sec, err = c.Client.Logical().ReadWithContext(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("read %s: the %s does not exist", path, id.Kind)
	}
	return normalise(stringList(sec.Data[field])), nil
}

// policyField is where Vault keeps the policies of an identity: the path of the identity
// (for a token, the path its accessor is looked up at) and the field that lists them; ""
// for a kind it does not know.
func policyField(id Identity) (path, field string) {
	switch id.Kind {
	case KindAppRole:
		return "auth/" + id.Mount + "/role/" + id.Name + "/policies", "token_policies"
	case KindTokenRole:
		return "auth/token/roles/" + id.Name, "allowed_policies"
	case KindEntity:
		return "identity/entity/name/" + id.Name, "policies"
	case KindGroup:
		return "identity/group/name/" + id.Name, "policies"
	case KindToken:
		return "auth/token/lookup-accessor", "policies"
	}
	return "", ""
}

// capabilities compares the effective capabilities on declared paths, as Vault evaluates them:
// for a token with sys/capabilities-accessor; for an AppRole role or token role with a probe
// login (when Probe is on). Entities and groups have no credential the agent could use without
// holding theirs, so their capabilities are reported as not computed, as are those a probe
// could not measure.
func (c *Checker) capabilities(ctx context.Context, id Identity, declared map[string][]string) ([]events.CapabilityEvidence, error) {
	paths := make([]string, 0, len(declared))
	for p := range declared {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		return []events.CapabilityEvidence{}, nil
	}
	var (
		actual     map[string][]string
		measuredBy string
		note       string
	)
	switch {
	case id.Kind == KindToken:
		measuredBy = events.MeasuredByAccessor
		actual = map[string][]string{}
		for _, p := range paths {
			caps, err := c.accessorCapabilities(ctx, id.Name, p)
			if err != nil {
				return nil, err
			}
			actual[p] = caps
		}
	case (id.Kind == KindAppRole || id.Kind == KindTokenRole) && c.Probe:
		measuredBy = events.MeasuredByProbeLogin
		var err error
		var cleanup string
		actual, cleanup, err = c.probeCapabilities(ctx, id, paths)
		switch {
		case err != nil && cleanup != "":
			actual, note = nil, "not measured: "+err.Error()+"; "+cleanup
		case err != nil:
			actual, note = nil, "not measured: "+err.Error()
		default:
			note = cleanup
		}
	case id.Kind == KindAppRole || id.Kind == KindTokenRole:
		note = "not measured: capability probes are off (ROTATION_AGENT_EVIDENCE_PROBE_CAPABILITIES=false); measuring them takes a single-use login as the " + id.Kind
	default:
		note = "effective capabilities need a token of the " + id.Kind + ", which the agent cannot obtain without the " + id.Kind + "'s own credentials; it does not evaluate policies itself"
	}
	out := make([]events.CapabilityEvidence, 0, len(paths))
	for _, p := range paths {
		ce := events.CapabilityEvidence{Path: p, Approved: normalise(declared[p]), Note: note}
		got, ok := actual[p]
		if !ok {
			ce.Status = events.CapabilityNotComputed
			out = append(out, ce)
			continue
		}
		ce.MeasuredBy = measuredBy
		ce.Actual = normalise(got)
		ce.Extra, ce.Missing = diff(ce.Actual, ce.Approved)
		ce.Status = events.CapabilityMatch
		if len(ce.Extra)+len(ce.Missing) > 0 {
			ce.Status = events.CapabilityDrift
		}
		out = append(out, ce)
	}
	return out, nil
}

// accessorCapabilities asks sys/capabilities-accessor for a token's capabilities on path.
func (c *Checker) accessorCapabilities(ctx context.Context, accessor, path string) ([]string, error) {
	sec, err := c.Client.Logical().WriteWithContext(ctx, "sys/capabilities-accessor", map[string]any{"accessor": accessor, "paths": []string{path}})
	if err != nil {
		return nil, fmt.Errorf("sys/capabilities-accessor for %s: %w", path, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("sys/capabilities-accessor for %s: empty response", path)
	}
	actual := stringList(sec.Data[path])
	if actual == nil {
		actual = stringList(sec.Data["capabilities"])
	}
	return actual, nil
}

// remeasured notes on each capability result what a measurement after remediation found, and
// reports whether drift remains (a path that could not be measured again counts as drift).
func remeasured(before, after []events.CapabilityEvidence) bool {
	if len(after) != len(before) {
		return true
	}
	drift := false
	for i, a := range after {
		b := &before[i]
		if b.Path != a.Path {
			return true
		}
		var found string
		switch a.Status {
		case events.CapabilityMatch:
			found = "after remediation: match"
		case events.CapabilityDrift:
			drift = true
			found = fmt.Sprintf("after remediation: still drift (extra %v, missing %v)", a.Extra, a.Missing)
		default:
			drift = drift || b.Status == events.CapabilityDrift
			found = "after remediation: not measured"
		}
		if b.Note != "" {
			found = b.Note + "; " + found
		}
		b.Note = found
	}
	return drift
}

// remediate writes the approved policies and reads them back.
func (c *Checker) remediate(ctx context.Context, id Identity, approved []string) (*events.Remediation, error) {
	path, field := policyField(id)
	if path == "" || id.Kind == KindToken {
		return nil, fmt.Errorf("cannot remediate a %s", id.Kind)
	}
	if _, err := c.Client.Logical().WriteWithContext(ctx, path, map[string]any{field: approved}); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	rem := &events.Remediation{SetPolicies: approved, At: c.now()}
	after, err := c.policies(ctx, id)
	if err != nil {
		return nil, err
	}
	extra, missing := diff(after, approved)
	rem.Verified = len(extra)+len(missing) == 0
	return rem, nil
}

// normalise sorts and de-duplicates; it never returns nil, so "none" is an empty list.
func normalise(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// diff returns what actual has beyond approved, and what approved has that actual lacks.
func diff(actual, approved []string) (extra, missing []string) {
	a, b := map[string]bool{}, map[string]bool{}
	for _, s := range actual {
		a[s] = true
	}
	for _, s := range approved {
		b[s] = true
	}
	for _, s := range actual {
		if !b[s] {
			extra = append(extra, s)
		}
	}
	for _, s := range approved {
		if !a[s] {
			missing = append(missing, s)
		}
	}
	return extra, missing
}

// stringList reads a JSON list of strings (or one comma-free string) from a Vault response.
func stringList(v any) []string {
	switch t := v.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return t
	case string:
		if t == "" {
			return []string{}
		}
		return []string{t}
	}
	return nil
}
