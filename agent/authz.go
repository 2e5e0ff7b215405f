package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

// rotateAuthz says which requesters may rotate which selectors and kinds. Requesters are
// identified by an nkey public key whose private half signs each request: the NATS server
// vouches for who connected, not for who wrote a message on a shared subject, so the agent
// checks a signature over the request itself. Anything not allowed is refused.
type rotateAuthz struct {
	Requesters []requesterRule `yaml:"requesters"`
}

type requesterRule struct {
	Name  string      `yaml:"name"`
	Key   string      `yaml:"key"`
	Allow []allowRule `yaml:"allow"`
}

// allowRule allows requests whose selector sets the keys the rule names (and no others), with
// values the rule lists, for credentials of the rule's kinds (any kind when none are listed).
type allowRule struct {
	Select    map[string][]string `yaml:"select"`
	Kinds     []string            `yaml:"kinds"`
	Emergency bool                `yaml:"emergency"`
}

// loadRotateAuthz reads the authorisation file; an empty path allows nobody.
func loadRotateAuthz(path string) (*rotateAuthz, error) {
	a := &rotateAuthz{}
	if path == "" {
		return a, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manual rotation authorisation: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(a); err != nil {
		return nil, fmt.Errorf("manual rotation authorisation %s: %w", path, err)
	}
	var errs []error
	for i, r := range a.Requesters {
		where := fmt.Sprintf("%s: requesters[%d] (%s)", path, i, r.Name)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		if !nkeys.IsValidPublicUserKey(r.Key) {
			errs = append(errs, fmt.Errorf("%s: key must be an nkey user public key (starting with U)", where))
		}
		if len(r.Allow) == 0 {
			errs = append(errs, fmt.Errorf("%s: allow needs at least one rule", where))
		}
		for j, rule := range r.Allow {
			if len(rule.Select) == 0 {
				errs = append(errs, fmt.Errorf("%s: allow[%d]: select is required", where, j))
			}
			for key := range rule.Select {
				if !slices.Contains(discovery.SelectorKeys, key) {
					errs = append(errs, fmt.Errorf("%s: allow[%d]: unknown selector %q (known: %s)", where, j, key, strings.Join(discovery.SelectorKeys, ", ")))
				}
			}
		}
	}
	return a, errors.Join(errs...)
}

// selectorValues lists the request's selector by key.
func selectorValues(t events.Targets) map[string][]string {
	return map[string][]string{
		discovery.KeyService: t.Services, discovery.KeyHost: t.Hosts, discovery.KeyCI: t.ConfigurationItems,
		discovery.KeyEnvironment: t.Environments, discovery.KeyOwner: t.Owners, discovery.KeyIdentity: t.Identities,
	}
}

// describeSelector renders a selector as "services=a,b hosts=c".
func describeSelector(t events.Targets) string {
	var parts []string
	sel := selectorValues(t)
	for _, k := range discovery.SelectorKeys {
		if v := sel[k]; len(v) > 0 {
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	return strings.Join(parts, " ")
}

// authorise returns the requester's name, or an error saying why the request is refused.
func (a *rotateAuthz) authorise(req events.RotateRequest, creds []events.CredentialRef) (string, error) {
	var who *requesterRule
	for i := range a.Requesters {
		if a.Requesters[i].Key == req.RequesterKey {
			who = &a.Requesters[i]
			break
		}
	}
	if who == nil {
		return "", fmt.Errorf("requester %s is not allowed to rotate anything", req.RequesterKey)
	}
	reason := fmt.Sprintf("%s may not rotate selector %s", who.Name, describeSelector(req.Selector))
	for _, rule := range who.Allow {
		if !rule.covers(req.Selector) {
			continue
		}
		if req.Emergency && !rule.Emergency {
			reason = fmt.Sprintf("%s may not ask for an emergency rotation of %s", who.Name, describeSelector(req.Selector))
			continue
		}
		if bad := rule.kindRefused(creds); bad != "" {
			reason = fmt.Sprintf("%s may not rotate %s (kind not allowed for selector %s)", who.Name, bad, describeSelector(req.Selector))
			continue
		}
		return who.Name, nil
	}
	return who.Name, errors.New(reason)
}

// covers reports whether the selector sets exactly the keys the rule names, each with values
// the rule lists: a rule for services=payments and environments=staging does not allow a
// request for services=payments alone.
func (r allowRule) covers(t events.Targets) bool {
	sel := selectorValues(t)
	for key := range r.Select {
		if len(sel[key]) == 0 {
			return false
		}
	}
	for key, vals := range sel {
		if len(vals) == 0 {
			continue
		}
		allowed, ok := r.Select[key]
		if !ok {
			return false
		}
		for _, v := range vals {
			if !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, v) }) {
				return false
			}
		}
	}
	return true
}

// kindRefused names the first credential whose kind the rule does not allow.
func (r allowRule) kindRefused(creds []events.CredentialRef) string {
	if len(r.Kinds) == 0 {
		return ""
	}
	for _, c := range creds {
		if !slices.Contains(r.Kinds, c.Kind) {
			return c.ID()
		}
	}
	return ""
}
