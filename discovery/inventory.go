package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/rotation-agent/rotation-agent/entitlements"
	"github.com/rotation-agent/rotation-agent/events"
)

// InventoryVersion is the only inventory file version this agent reads.
const InventoryVersion = 1

var (
	categoryPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	kindPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// LoadInventory reads and validates an inventory file. knownKinds, when not empty, lists the
// credential kinds the agent can act on. Every problem is reported, each as
// "FILE:LINE: where: what", joined into one error.
func LoadInventory(path string, knownKinds []string) ([]Binding, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return ParseInventory(path, raw, knownKinds)
}

// ParseInventory is LoadInventory for bytes already read; name is used in messages.
func ParseInventory(name string, raw []byte, knownKinds []string) ([]Binding, error) {
	p := &parser{file: name, known: map[string]bool{}}
	for _, k := range knownKinds {
		p.known[k] = true
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		return nil, fmt.Errorf("%s:%d: only one YAML document is allowed", name, max(second.Line, 1))
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		line := 1
		if len(doc.Content) == 1 && doc.Content[0].Line > 0 {
			line = doc.Content[0].Line
		}
		return nil, fmt.Errorf("%s:%d: the inventory must be a mapping with version and bindings", name, line)
	}
	bindings := p.document(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return bindings, nil
}

// yamlLine finds the line yaml.v3 names in a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a YAML syntax error into "FILE:LINE: invalid YAML: ...". yaml.v3 names the
// line before the problem for parser errors ("did not find expected ..."), so one is added.
func yamlError(name string, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("%s: invalid YAML: %w", name, err)
	}
	line, _ := strconv.Atoi(m[1])
	if strings.Contains(m[2], "did not find expected") {
		line++
	}
	return fmt.Errorf("%s:%d: invalid YAML: %s", name, line, m[2])
}

type parser struct {
	file  string
	known map[string]bool
	errs  []error
}

func (p *parser) bad(n *yaml.Node, where, format string, a ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.file, n.Line, where, fmt.Sprintf(format, a...)))
}

// fields returns the values of a mapping by key and reports keys that are not allowed.
func (p *parser) fields(n *yaml.Node, where string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.bad(n, where, "must be a mapping")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		if !contains(allowed, key) {
			p.bad(n.Content[i], where, "unknown field %q (allowed: %s)", key, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[key]; dup {
			p.bad(n.Content[i], where, "field %q given twice", key)
		}
		out[key] = n.Content[i+1]
	}
	return out
}

func (p *parser) document(n *yaml.Node) []Binding {
	f := p.fields(n, "inventory", "version", "bindings")
	if v := f["version"]; v == nil {
		p.bad(n, "inventory", "version is required (version: %d)", InventoryVersion)
	} else if v.Value != fmt.Sprint(InventoryVersion) {
		p.bad(v, "version", "%q is not supported; this agent reads version %d", v.Value, InventoryVersion)
	}
	list := f["bindings"]
	if list == nil {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		p.bad(list, "bindings", "must be a list")
		return nil
	}
	names := map[string]int{}
	out := make([]Binding, 0, len(list.Content))
	for i, item := range list.Content {
		b, ok := p.binding(item, fmt.Sprintf("bindings[%d]", i))
		if b.Name != "" {
			if line, dup := names[b.Name]; dup {
				p.bad(item, fmt.Sprintf("bindings[%d]", i), "name %q is already used at line %d", b.Name, line)
				ok = false
			} else {
				names[b.Name] = item.Line
			}
		}
		if ok {
			out = append(out, b)
		}
	}
	return out
}

func (p *parser) binding(n *yaml.Node, where string) (Binding, bool) {
	before := len(p.errs)
	f := p.fields(n, where, "name", "select", "credential", "owner", "on", "schedule", "approved_entitlements",
		"max_age", "break_glass", "maintenance_windows", "blackouts")
	b := Binding{Source: fmt.Sprintf("inventory:%s:%d", p.file, n.Line), Selectors: Selectors{}, Actions: map[string]events.Action{}}
	if v := f["name"]; v == nil || v.Value == "" {
		p.bad(n, where, "name is required")
	} else {
		b.Name = v.Value
		where += " (" + b.Name + ")"
	}
	if v := f["owner"]; v != nil {
		b.Owner = v.Value
	}
	if v := f["schedule"]; v != nil {
		if _, err := cron.ParseStandard(v.Value); err != nil {
			p.bad(v, where+".schedule", "%q is not a cron schedule: %v", v.Value, err)
		}
		b.Schedule = v.Value
	}
	p.timing(f, &b, where)
	if v := f["approved_entitlements"]; v != nil {
		b.ApprovedEntitlements = p.entitlements(v, where+".approved_entitlements")
	}
	if sel := f["select"]; sel == nil {
		p.bad(n, where, "select is required: at least one of %s", strings.Join(SelectorKeys, ", "))
	} else {
		given := p.fields(sel, where+".select", SelectorKeys...)
		for _, key := range SelectorKeys {
			vals, ok := given[key]
			if !ok {
				continue
			}
			list := p.strings(vals, where+".select."+key)
			if len(list) == 0 {
				p.bad(vals, where+".select."+key, "needs at least one value")
			}
			for _, v := range list {
				b.Selectors[key] = append(b.Selectors[key], strings.ToLower(v))
			}
		}
		if len(b.Selectors) == 0 && sel.Kind == yaml.MappingNode {
			p.bad(sel, where+".select", "needs at least one of %s", strings.Join(SelectorKeys, ", "))
		}
	}
	if c := f["credential"]; c == nil {
		p.bad(n, where, "credential is required")
	} else {
		b.Credential = p.credential(c, where+".credential")
	}
	if on := f["on"]; on != nil {
		if on.Kind != yaml.MappingNode {
			p.bad(on, where+".on", "must map change categories to actions")
		}
		for i := 0; on.Kind == yaml.MappingNode && i+1 < len(on.Content); i += 2 {
			cat, act := on.Content[i], on.Content[i+1]
			if _, dup := b.Actions[cat.Value]; dup {
				p.bad(cat, where+".on", "category %q given twice", cat.Value)
			}
			if !categoryPattern.MatchString(cat.Value) {
				p.bad(cat, where+".on", "%q is not a change category (lower-case letters, digits, - and _)", cat.Value)
			}
			if !validAction(act.Value) {
				p.bad(act, where+".on."+cat.Value, "%q is not an action (rotate, revoke, verify)", act.Value)
			}
			b.Actions[cat.Value] = events.Action(act.Value)
		}
	}
	return b, len(p.errs) == before
}

// entitlements reads a list of {identity, policies}.
func (p *parser) entitlements(n *yaml.Node, where string) []events.ApprovedEntitlements {
	if n.Kind != yaml.SequenceNode {
		p.bad(n, where, "must be a list of {identity, policies}")
		return nil
	}
	out := make([]events.ApprovedEntitlements, 0, len(n.Content))
	for i, item := range n.Content {
		w := fmt.Sprintf("%s[%d]", where, i)
		f := p.fields(item, w, "identity", "policies", "capabilities")
		var e events.ApprovedEntitlements
		if v := f["identity"]; v == nil || v.Value == "" {
			p.bad(item, w, "identity is required")
		} else if _, err := entitlements.ParseIdentity(v.Value); err != nil {
			p.bad(v, w+".identity", "%v", err)
		} else {
			e.Identity = v.Value
		}
		if v := f["capabilities"]; v != nil {
			e.Capabilities = p.capabilities(v, w+".capabilities")
		}
		if v := f["policies"]; v == nil {
			p.bad(item, w, "policies is required (an empty list approves none)")
		} else if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			e.Policies = []string{}
		} else {
			e.Policies = p.strings(v, w+".policies")
		}
		out = append(out, e)
	}
	return out
}

// capabilities reads a mapping of sensitive paths to the capabilities approved on each.
func (p *parser) capabilities(n *yaml.Node, where string) map[string][]string {
	if n.Kind != yaml.MappingNode {
		p.bad(n, where, "must map paths to lists of capabilities")
		return nil
	}
	out := map[string][]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		path, caps := n.Content[i], n.Content[i+1]
		if path.Value == "" {
			p.bad(path, where, "a path must not be empty")
			continue
		}
		if _, dup := out[path.Value]; dup {
			p.bad(path, where, "path %q given twice", path.Value)
		}
		list := p.strings(caps, where+"."+path.Value)
		for _, c := range list {
			if !validCapability[c] {
				p.bad(caps, where+"."+path.Value, "%q is not a Vault capability", c)
			}
		}
		out[path.Value] = list
	}
	return out
}

// validCapability lists the capabilities a Vault policy can grant.
var validCapability = map[string]bool{
	"create": true, "read": true, "update": true, "patch": true, "delete": true, "list": true,
	"sudo": true, "deny": true, "root": true, "subscribe": true, "recover": true,
}

func (p *parser) credential(n *yaml.Node, where string) events.CredentialRef {
	f := p.fields(n, where, "kind", "mount", "path", "fields", "action", "options")
	var ref events.CredentialRef
	for _, req := range []string{"kind", "mount", "path"} {
		if v := f[req]; v == nil || v.Value == "" {
			p.bad(n, where, "%s is required", req)
		}
	}
	if v := f["kind"]; v != nil && v.Value != "" {
		ref.Kind = v.Value
		switch {
		case !kindPattern.MatchString(v.Value):
			p.bad(v, where+".kind", "%q is not a kind name", v.Value)
		case len(p.known) > 0 && !p.known[v.Value]:
			p.bad(v, where+".kind", "unknown credential kind %q (known: %s)", v.Value, strings.Join(sortedKeys(p.known), ", "))
		}
	}
	if v := f["mount"]; v != nil {
		ref.Mount = strings.Trim(v.Value, "/")
	}
	if v := f["path"]; v != nil {
		ref.Path = strings.TrimPrefix(v.Value, "/")
	}
	if v := f["fields"]; v != nil {
		ref.Fields = p.strings(v, where+".fields")
	}
	if v := f["action"]; v != nil {
		if !validAction(v.Value) {
			p.bad(v, where+".action", "%q is not an action (rotate, revoke, verify)", v.Value)
		}
		ref.Action = events.Action(v.Value)
	}
	if v := f["options"]; v != nil {
		if v.Kind != yaml.MappingNode {
			p.bad(v, where+".options", "must be a mapping of option names to values")
		} else {
			ref.Options = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				val := v.Content[i+1]
				if _, dup := ref.Options[v.Content[i].Value]; dup {
					p.bad(v.Content[i], where+".options", "option %q given twice", v.Content[i].Value)
				}
				if val.Kind != yaml.ScalarNode {
					p.bad(val, where+".options."+v.Content[i].Value, "must be a single value")
					continue
				}
				ref.Options[v.Content[i].Value] = val.Value
			}
		}
	}
	return ref
}

// strings reads a list of strings, accepting a single scalar as a list of one.
func (p *parser) strings(n *yaml.Node, where string) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			return nil
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Value == "" {
				p.bad(c, where, "must be a non-empty string")
				continue
			}
			out = append(out, c.Value)
		}
		return out
	}
	p.bad(n, where, "must be a string or a list of strings")
	return nil
}

func validAction(a string) bool {
	switch events.Action(a) {
	case events.ActionRotate, events.ActionRevoke, events.ActionVerify:
		return true
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
