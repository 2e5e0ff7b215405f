package discovery

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
)

// agentKinds are the credential kinds the agent's rotators handle (rotators.Registry.Kinds);
// the agent passes them to LoadInventory.
var agentKinds = []string{
	"kv-v2", "database-static-role", "database-root", "pki", "transit", "token",
	"approle-secret-id", "lease-prefix",
}

// normalize makes empty and nil maps and slices compare equal.
func normalize(bs []Binding) []Binding {
	out := make([]Binding, len(bs))
	for i, b := range bs {
		if len(b.Selectors) == 0 {
			b.Selectors = nil
		}
		if len(b.Actions) == 0 {
			b.Actions = nil
		}
		if len(b.Credential.Fields) == 0 {
			b.Credential.Fields = nil
		}
		if len(b.Credential.Options) == 0 {
			b.Credential.Options = nil
		}
		out[i] = b
	}
	return out
}

func TestLoadInventoryGood(t *testing.T) {
	tests := []struct {
		file  string
		kinds []string
		want  []Binding
	}{
		{
			file:  "realistic.yaml",
			kinds: agentKinds,
			want: []Binding{
				{
					Name:      "payments-api-db-password",
					Owner:     "team-payments",
					Selectors: Selectors{KeyService: {"payments-api"}, KeyEnvironment: {"production"}},
					Credential: events.CredentialRef{
						Kind: "kv-v2", Mount: "secret", Path: "payments/db", Fields: []string{"password"},
					},
					Source: "inventory:testdata/good/realistic.yaml:6",
				},
				{
					Name:  "payments-db-static-role",
					Owner: "team-dba",
					Selectors: Selectors{KeyHost: {
						"db-payments-01.example.internal", "db-payments-02.example.internal",
					}},
					Credential: events.CredentialRef{
						Kind: "database-static-role", Mount: "database", Path: "payments-app",
						Options: map[string]string{"overlap": "15m"},
					},
					Source: "inventory:testdata/good/realistic.yaml:18",
				},
				{
					Name:      "payments-edge-certificate",
					Owner:     "team-payments",
					Selectors: Selectors{KeyService: {"payments-api"}, KeyCI: {"ci0004711", "ci0004712"}},
					Credential: events.CredentialRef{
						Kind: "pki", Mount: "pki-int", Path: "payments-edge",
						Options: map[string]string{"deliver_to": "secret/payments/tls", "ttl": "720h"},
					},
					Actions: map[string]events.Action{CategoryExposure: events.ActionRevoke},
					Source:  "inventory:testdata/good/realistic.yaml:32",
				},
				{
					Name:      "build-runner-token",
					Owner:     "team-platform",
					Selectors: Selectors{KeyHost: {"ci-runner-07.example.internal"}, KeyIdentity: {"svc-build"}},
					Credential: events.CredentialRef{
						Kind: "token", Mount: "token", Path: "hmac-accessor-7f3c2a", Action: events.ActionRotate,
						Options: map[string]string{"role": "ci-runner", "deliver_to": "secret/ci/runner-token"},
					},
					Actions: map[string]events.Action{
						CategoryDecommission: events.ActionRevoke, "retirement": events.ActionRevoke,
					},
					Source: "inventory:testdata/good/realistic.yaml:49",
				},
			},
		},
		{file: "empty.yaml", kinds: agentKinds, want: []Binding{}},
		{file: "version-only.yaml", kinds: agentKinds, want: nil},
		{
			file: "custom-kind.yaml",
			want: []Binding{{
				Name:       "legacy-ldap-bind",
				Selectors:  Selectors{KeyOwner: {"team-identity"}},
				Credential: events.CredentialRef{Kind: "ldap-static-2", Mount: "ldap", Path: "static-role/bind"},
				Source:     "inventory:testdata/good/custom-kind.yaml:4",
			}},
		},
	}
	checkCovers(t, "testdata/good", func(f string) bool {
		for _, tt := range tests {
			if tt.file == f {
				return true
			}
		}
		return false
	})
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := "testdata/good/" + tt.file
			got, err := LoadInventory(path, tt.kinds)
			if err != nil {
				t.Fatalf("LoadInventory(%s): %v", path, err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(tt.want)) {
				t.Errorf("LoadInventory(%s):\n got %+v\nwant %+v", path, got, tt.want)
			}
			for _, b := range got {
				for key, vals := range b.Selectors {
					for _, v := range vals {
						if v != strings.ToLower(v) {
							t.Errorf("%s: selector %s=%q is not lower-cased", b.Name, key, v)
						}
					}
				}
			}
		})
	}
}

// want is one problem a bad file must report: its line and a part of its message.
type want struct {
	line int
	text string
}

var (
	wantComment = regexp.MustCompile("# want: (.*)$")
	wantText    = regexp.MustCompile("`([^`]*)`")
)

// wantsOf reads the problems a test file expects from its "# want: `text` `text`" comments:
// each text must appear in a problem reported on that comment's line.
func wantsOf(t *testing.T, path string) []want {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []want
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		m := wantComment.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		for _, w := range wantText.FindAllStringSubmatch(m[1], -1) {
			out = append(out, want{line: line, text: w[1]})
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// problem is one line of a LoadInventory error.
type problem struct {
	line int
	msg  string
}

// problemsOf splits an inventory error into its problems, each of which must start with the
// file name and a line: "FILE:LINE: ..." or, for YAML syntax errors, "FILE: yaml: line N: ...".
func problemsOf(t *testing.T, path string, err error) []problem {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `(?::(\d+)|: yaml: line (\d+)):`)
	var out []problem
	for _, msg := range strings.Split(err.Error(), "\n") {
		m := re.FindStringSubmatch(msg)
		if m == nil {
			t.Errorf("problem %q does not start with %q and a line number", msg, path+":LINE:")
			continue
		}
		n, _ := strconv.Atoi(m[1] + m[2])
		out = append(out, problem{line: n, msg: msg})
	}
	return out
}

// checkProblems matches every wanted problem with a reported one on the same line, and fails
// on reported problems nobody wanted.
func checkProblems(t *testing.T, path string, err error, wants []want) {
	t.Helper()
	got := problemsOf(t, path, err)
	used := make([]bool, len(got))
	for _, w := range wants {
		found := false
		for i, p := range got {
			if !used[i] && p.line == w.line && strings.Contains(p.msg, w.text) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing problem at line %d containing %q", w.line, w.text)
		}
	}
	for i, p := range got {
		if !used[i] {
			t.Errorf("unexpected problem: %s", p.msg)
		}
	}
	if t.Failed() {
		t.Logf("full error:\n%v", err)
	}
}

// checkCovers fails when a file in dir is not listed in a table.
func checkCovers(t *testing.T, dir string, listed func(string) bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !listed(e.Name()) {
			t.Errorf("%s/%s is not in the test table", dir, e.Name())
		}
	}
}

func TestLoadInventoryBad(t *testing.T) {
	// Each file but many-problems.yaml holds one class of problem; problems counts what the
	// loader reports for it, and the file's "# want:" comments say where and what.
	tests := []struct {
		file     string
		problems int
	}{
		{"unknown-field.yaml", 1},
		{"wrong-version.yaml", 1},
		{"missing-version.yaml", 1},
		{"missing-name.yaml", 1},
		{"duplicate-name.yaml", 1},
		{"missing-select.yaml", 1},
		{"unknown-selector.yaml", 2},
		{"empty-selector.yaml", 2},
		{"missing-credential.yaml", 1},
		{"credential-incomplete.yaml", 4},
		{"unknown-kind.yaml", 1},
		{"bad-kind-name.yaml", 1},
		{"bad-action.yaml", 2},
		{"bad-category.yaml", 2},
		{"options-not-scalar.yaml", 2},
		{"not-a-mapping.yaml", 1},
		{"nested-not-a-mapping.yaml", 11},
		{"bindings-not-a-list.yaml", 1},
		{"invalid-yaml.yaml", 1},
		// Every class at once (except invalid YAML and a document that is not a mapping, which
		// stop the loader): version, unknown field, missing name, duplicate name, missing select,
		// unknown selector key, empty selector lists, missing mount and path, unknown kind, bad
		// actions, bad category, options not scalar, select not a mapping.
		{"many-problems.yaml", 17},
	}
	checkCovers(t, "testdata/bad", func(f string) bool {
		for _, tt := range tests {
			if tt.file == f {
				return true
			}
		}
		return false
	})
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := "testdata/bad/" + tt.file
			wants := wantsOf(t, path)
			if len(wants) != tt.problems {
				t.Fatalf("%s has %d want comments, the table says %d problems", path, len(wants), tt.problems)
			}
			got, err := LoadInventory(path, agentKinds)
			if err == nil {
				t.Fatalf("LoadInventory(%s) = %d bindings, no error", path, len(got))
			}
			if got != nil {
				t.Errorf("LoadInventory(%s) returned %d bindings with its error", path, len(got))
			}
			if n := len(strings.Split(err.Error(), "\n")); n != tt.problems {
				t.Errorf("LoadInventory(%s) reported %d problems, want %d", path, n, tt.problems)
			}
			checkProblems(t, path, err, wants)
		})
	}
}

func TestLoadInventoryManyProblemsAtOnce(t *testing.T) {
	const path = "testdata/bad/many-problems.yaml"
	_, err := LoadInventory(path, agentKinds)
	if err == nil {
		t.Fatal("no error")
	}
	problems := problemsOf(t, path, err)
	lines := map[int]bool{}
	for _, p := range problems {
		lines[p.line] = true
	}
	// 17 problems on 15 lines of 10 bindings and the top level, reported in one error.
	if len(problems) != 17 || len(lines) != 15 {
		t.Errorf("got %d problems on %d lines, want 17 on 15:\n%v", len(problems), len(lines), err)
	}
	// The problems of the bindings come in binding order.
	index := regexp.MustCompile(`: bindings\[(\d+)\]`)
	prev := 0
	for _, p := range problems {
		if m := index.FindStringSubmatch(p.msg); m != nil {
			i, _ := strconv.Atoi(m[1])
			if i < prev {
				t.Errorf("problem of bindings[%d] reported after one of bindings[%d]", i, prev)
			}
			prev = i
		}
	}
}

func TestLoadInventoryKnownKinds(t *testing.T) {
	// With no known kinds any well-formed kind is accepted...
	for _, path := range []string{"testdata/good/custom-kind.yaml", "testdata/bad/unknown-kind.yaml"} {
		for _, kinds := range [][]string{nil, {}} {
			if _, err := LoadInventory(path, kinds); err != nil {
				t.Errorf("LoadInventory(%s, %q): %v", path, kinds, err)
			}
		}
	}
	// ...but not a malformed one.
	const bad = "testdata/bad/bad-kind-name.yaml"
	_, err := LoadInventory(bad, nil)
	if err == nil || !strings.Contains(err.Error(), bad+":7: ") || !strings.Contains(err.Error(), `"KV_v2" is not a kind name`) {
		t.Errorf("LoadInventory(%s, nil) = %v, want the malformed kind at line 7", bad, err)
	}
	// With known kinds, an unknown one is refused and the known ones are listed.
	_, err = LoadInventory("testdata/good/custom-kind.yaml", []string{"pki", "kv-v2"})
	if err == nil || !strings.Contains(err.Error(), `custom-kind.yaml:6: bindings[0] (legacy-ldap-bind).credential.kind: unknown credential kind "ldap-static-2" (known: kv-v2, pki)`) {
		t.Errorf("custom kind with known kinds: %v", err)
	}
}

func TestLoadInventoryMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.yaml")
	if _, err := LoadInventory(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadInventory(missing) = %v, want an error naming %s", err, path)
	}
}

func TestParseInventoryName(t *testing.T) {
	src := "version: 1\nbindings:\n  - name: a\n    select: {services: [A]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n"
	got, err := ParseInventory("/etc/rotation-agent/inventory.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Source != "inventory:/etc/rotation-agent/inventory.yaml:3" {
		t.Errorf("got %+v", got)
	}
	_, err = ParseInventory("cm/inventory.yaml", []byte("version: 1\nbindings: 3\n"), nil)
	if err == nil || err.Error() != "cm/inventory.yaml:2: bindings: must be a list" {
		t.Errorf("got %v", err)
	}
	_, err = ParseInventory("empty.yaml", nil, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "empty.yaml:1: ") {
		t.Errorf("empty file: %v", err)
	}
}

// Edge cases found in review: each states the wanted behaviour.

func TestInventoryEdgeNotAMappingLine(t *testing.T) {
	_, err := ParseInventory("inv.yaml", []byte("# comment\n\n- name: a\n"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "inv.yaml:3: ") {
		t.Errorf("got %v, want the error at line 3", err)
	}
}

func TestInventoryEdgeSecondDocumentIgnored(t *testing.T) {
	src := "version: 1\nbindings: []\n---\nversion: 1\nbindings:\n  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n"
	got, err := ParseInventory("inv.yaml", []byte(src), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "inv.yaml:3: ") {
		t.Errorf("got %d bindings and error %v, want an error at line 3 (a second document)", len(got), err)
	}
}

func TestInventoryEdgeYAMLSyntaxErrorLine(t *testing.T) {
	// The flow mapping opened on line 4 is not closed; yaml.v3 says "line 3".
	src := "version: 1\nbindings:\n  - name: a\n    select: {services: [a]\n    credential: {kind: kv-v2, mount: secret, path: a}\n"
	_, err := ParseInventory("inv.yaml", []byte(src), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "inv.yaml:4: ") {
		t.Errorf("got %v, want inv.yaml:4: ...", err)
	}
}

func TestInventoryEdgeProblemOrder(t *testing.T) {
	first := ""
	for range 20 {
		_, err := LoadInventory("testdata/bad/many-problems.yaml", agentKinds)
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("the same file gave two differently ordered errors:\n%s\n---\n%v", first, err)
		}
	}
}

func TestInventoryEdgeDuplicateOfBrokenBinding(t *testing.T) {
	src := "version: 1\nbindings:\n" +
		"  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a, action: nope}\n" +
		"  - name: a\n    select: {services: [b]}\n    credential: {kind: kv-v2, mount: secret, path: b}\n"
	_, err := ParseInventory("inv.yaml", []byte(src), nil)
	if err == nil || !strings.Contains(err.Error(), `inv.yaml:6: bindings[1]: name "a" is already used at line 3`) {
		t.Errorf("got %v, want the duplicate name reported with the bad action", err)
	}
}

func TestInventoryEdgeDuplicateCategory(t *testing.T) {
	src := "version: 1\nbindings:\n  - name: a\n    select: {services: [a]}\n" +
		"    credential: {kind: kv-v2, mount: secret, path: a, options: {overlap: 1h, overlap: 0s}}\n" +
		"    on: {decommission: revoke, decommission: verify}\n"
	_, err := ParseInventory("inv.yaml", []byte(src), nil)
	var lines []string
	if err != nil {
		lines = strings.Split(err.Error(), "\n")
		sort.Strings(lines)
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "inv.yaml:5: ") || !strings.HasPrefix(lines[1], "inv.yaml:6: ") {
		t.Errorf("got %v, want the repeated option (line 5) and category (line 6)", err)
	}
}

func TestInventoryScheduleAndEntitlements(t *testing.T) {
	src := "version: 1\nbindings:\n" +
		"  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n" +
		"    schedule: \"0 3 * * 1\"\n" +
		"    approved_entitlements:\n      - identity: approle:payments\n        policies: [payments-read, payments-write]\n" +
		"      - identity: approle:reporting\n        policies: []\n"
	bs, err := ParseInventory("inv.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []events.ApprovedEntitlements{
		{Identity: "approle:payments", Policies: []string{"payments-read", "payments-write"}},
		{Identity: "approle:reporting", Policies: []string{}},
	}
	if bs[0].Schedule != "0 3 * * 1" || !reflect.DeepEqual(bs[0].ApprovedEntitlements, want) {
		t.Errorf("binding = %+v", bs[0])
	}
	bad := "version: 1\nbindings:\n" +
		"  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n" +
		"    schedule: every tuesday\n" +
		"    approved_entitlements:\n      - policies: [x]\n"
	_, err = ParseInventory("inv.yaml", []byte(bad), nil)
	for _, want := range []string{"inv.yaml:6: bindings[0] (a).schedule:", "inv.yaml:8: bindings[0] (a).approved_entitlements[0]: identity is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestInventoryEntitlementCapabilitiesAndIdentityForms(t *testing.T) {
	src := "version: 1\nbindings:\n" +
		"  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n" +
		"    approved_entitlements:\n      - identity: token:acc-1\n        policies: [read]\n" +
		"        capabilities:\n          secret/data/a: [read]\n          sys/policy/*: deny\n"
	bs, err := ParseInventory("inv.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"secret/data/a": {"read"}, "sys/policy/*": {"deny"}}
	if got := bs[0].ApprovedEntitlements[0].Capabilities; !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities = %v, want %v", got, want)
	}
	bad := "version: 1\nbindings:\n" +
		"  - name: a\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n" +
		"    approved_entitlements:\n      - identity: user:alice\n        policies: [x]\n" +
		"      - identity: entity:svc\n        policies: [x]\n        capabilities: {secret/data/a: [read, write]}\n" +
		"      - identity: group:ops\n        policies: [x]\n        capabilities: [read]\n"
	_, err = ParseInventory("inv.yaml", []byte(bad), nil)
	for _, want := range []string{
		`inv.yaml:7: bindings[0] (a).approved_entitlements[0].identity: identity "user:alice" is not one of`,
		`inv.yaml:11: bindings[0] (a).approved_entitlements[1].capabilities.secret/data/a: "write" is not a Vault capability`,
		`inv.yaml:14: bindings[0] (a).approved_entitlements[2].capabilities: must map paths to lists of capabilities`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
