// Package identity tests the approle-secret-id, token and lease-prefix rotators against a real
// in-process Vault core, driving them through rotators.Drive with an in-memory journal and a
// controllable clock, and asserting on Vault's own state: logins that work or fail, accessors,
// tokens and leases.
package identity

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

// agentPolicy is the least-privilege policy these rotators need (plus the KV v2 delivery
// paths); the happy paths run under it so the documented stanzas are proven.
const agentPolicy = `
path "secret/data/*" { capabilities = ["read", "create", "update"] }
path "secret/metadata/*" { capabilities = ["read"] }
path "auth/token/lookup-self" { capabilities = ["read"] }

path "auth/approle/role/+/role-id" { capabilities = ["read"] }
path "auth/approle/role/+/secret-id" { capabilities = ["update", "list"] }
path "auth/approle/role/+/secret-id-accessor/lookup" { capabilities = ["update"] }
path "auth/approle/role/+/secret-id-accessor/destroy" { capabilities = ["update"] }

path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/roles/+" { capabilities = ["read"] }
path "auth/token/create/+" { capabilities = ["update"] }
path "auth/token/accessors" { capabilities = ["list", "sudo"] }
path "auth/token/lookup" { capabilities = ["update"] }
path "auth/token/revoke-orphan" { capabilities = ["update", "sudo"] }

path "sys/leases/lookup/*" { capabilities = ["list", "sudo"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/leases/revoke-prefix/*" { capabilities = ["update", "sudo"] }
path "sys/leases/revoke-force/*" { capabilities = ["update", "sudo"] }
`

// agentClient returns a client for the rotators, with client retries off as the agent has
// them, holding a token bound to policy only.
func agentClient(t *testing.T, v *harness.Vault, policy string) *vaultapi.Client {
	t.Helper()
	return clientWith(t, v, drive.PolicyToken(t, v, "identity-agent", policy, "2h"))
}

// countingAgentClient is agentClient, with the requests Vault answered counted.
func countingAgentClient(t *testing.T, v *harness.Vault, policy string) (*vaultapi.Client, *drive.Calls) {
	t.Helper()
	return drive.CountingClient(t, v, drive.PolicyToken(t, v, "identity-agent", policy, "2h"))
}

// clientWith returns a client sending token (none when empty).
func clientWith(t *testing.T, v *harness.Vault, token string) *vaultapi.Client {
	t.Helper()
	c, err := v.Root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetMaxRetries(0)
	c.ClearToken()
	if token != "" {
		c.SetToken(token)
	}
	return c
}

// run drives one rotator for one credential, with an in-memory journal that can be told to
// fail, and a clock the test moves.
type run struct {
	t       *testing.T
	rot     rotators.Rotator
	req     rotators.Request
	st      rotators.State
	now     time.Time
	journal *drive.Journal
	// texts holds the plans and errors the rotator returned, for the leak scan.
	texts    []string
	failSave func(st *rotators.State) bool
}

func newRun(t *testing.T, rot rotators.Rotator, changeID string, ref events.CredentialRef) *run {
	r := &run{t: t, rot: rot, now: time.Now().UTC(), journal: &drive.Journal{}}
	r.req = rotators.Request{
		ChangeID:   changeID,
		Credential: ref,
		Now:        func() time.Time { return r.now },
		Save:       r.save,
		Generate: func(context.Context) (string, error) {
			return "", errors.New("these rotators let Vault generate their credentials")
		},
	}
	return r
}

func (r *run) save(ctx context.Context, st *rotators.State) error {
	if r.failSave != nil && r.failSave(st) {
		return drive.ErrSaveFailed
	}
	st.At = r.now
	return r.journal.Save(ctx, st)
}

// drive runs rotators.Drive once and records its error text for the leak scan.
func (r *run) drive(overlap time.Duration) (rotators.Outcome, error) {
	r.t.Helper()
	out, err := drive.Run(r.t, r.rot, r.req, &r.st, overlap)
	if err != nil {
		r.texts = append(r.texts, err.Error())
	}
	return out, err
}

// mustDrive drives and fails the test on an error.
func (r *run) mustDrive(overlap time.Duration) rotators.Outcome {
	r.t.Helper()
	out, err := r.drive(overlap)
	if err != nil {
		r.t.Fatalf("drive: %v", err)
	}
	return out
}

// journalDownFrom makes every save fail from the first state carrying the note on, as if the
// process died right after Vault acted on the intent the note records; r.failSave = nil
// brings the journal back.
func (r *run) journalDownFrom(note string) {
	down := false
	r.failSave = func(st *rotators.State) bool {
		down = down || st.Note(note) != ""
		return down
	}
}

// driveAfterOverlap moves the clock two hours on, past the one-hour overlap the tests drive
// with, and drives again: the drive that retires the old credential.
func (r *run) driveAfterOverlap() rotators.Outcome {
	r.t.Helper()
	r.now = r.now.Add(2 * time.Hour)
	return r.mustDrive(time.Hour)
}

// driveUntilCompleted drives again until the rotation completes, at most twice as often as
// a step may fail, and returns the last outcome and error.
func (r *run) driveUntilCompleted(overlap time.Duration) (rotators.Outcome, error) {
	r.t.Helper()
	var out rotators.Outcome
	var err error
	for i := 0; i < 2*rotators.MaxStepFailures && !out.Completed; i++ {
		out, err = r.drive(overlap)
	}
	return out, err
}

// plan runs Plan and records it for the leak scan.
func (r *run) plan() (rotators.Plan, error) {
	p, err := r.rot.Plan(context.Background(), r.req)
	raw, _ := json.Marshal(p)
	r.texts = append(r.texts, string(raw))
	if err != nil {
		r.texts = append(r.texts, err.Error())
	}
	return p, err
}

// resumeFromJournal replaces the in-memory state by the last one the journal stored, as a
// restarted agent would read it.
func (r *run) resumeFromJournal() {
	r.t.Helper()
	r.st = r.journal.Last(r.t)
}

// assertNoLeak fails when any secret value appears in anything the rotator returned.
func (r *run) assertNoLeak(secrets map[string]string) {
	r.t.Helper()
	drive.AssertNoLeak(r.t, secrets, map[string][]string{
		"journal": r.journal.Texts(), "plans and errors": r.texts, "final state": drive.StateTexts(&r.st)})
}

// sabotage wraps a rotator to interfere with it at a step, as an operator or an attacker
// acting behind the agent's back would.
type sabotage struct {
	rotators.Rotator
	beforeVerify func(call int)
	// applyAs, when set, makes Apply act on another credential than the one requested.
	applyAs     *events.CredentialRef
	verifyCalls int
}

func (s *sabotage) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	if s.applyAs != nil {
		req.Credential = *s.applyAs
	}
	return s.Rotator.Apply(ctx, req, st)
}

func (s *sabotage) Verify(ctx context.Context, req rotators.Request, st *rotators.State) error {
	s.verifyCalls++
	if s.beforeVerify != nil {
		s.beforeVerify(s.verifyCalls)
	}
	return s.Rotator.Verify(ctx, req, st)
}

// write writes to Vault as root and fails the test on error.
func write(t *testing.T, c *vaultapi.Client, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

// leaseIDs lists every lease id under prefix, walking sub-folders.
func leaseIDs(t *testing.T, v *harness.Vault, prefix string) []string {
	t.Helper()
	var out []string
	dirs := []string{prefix + "/"}
	for len(dirs) > 0 {
		dir := dirs[0]
		dirs = dirs[1:]
		for _, k := range v.List(t, "sys/leases/lookup/"+dir) {
			if strings.HasSuffix(k, "/") {
				dirs = append(dirs, dir+k)
			} else {
				out = append(out, dir+k)
			}
		}
	}
	return out
}

// tokenWorks reports whether a request authenticated with token succeeds (lookup-self), and
// fails the test when Vault answers anything but success or permission denied.
func tokenWorks(t *testing.T, v *harness.Vault, token string) bool {
	t.Helper()
	_, err := clientWith(t, v, token).Auth().Token().LookupSelf()
	if err == nil {
		return true
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode == 403 {
		return false
	}
	t.Fatalf("lookup-self: unexpected error %v", err)
	return false
}

// accessorExists reports whether a token accessor is still known to Vault.
func accessorExists(t *testing.T, v *harness.Vault, accessor string) bool {
	t.Helper()
	_, err := v.Root.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	if err == nil {
		return true
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode == 400 {
		return false
	}
	t.Fatalf("lookup-accessor: unexpected error %v", err)
	return false
}

func wantRetryable(t *testing.T, err error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a retryable one")
	}
	if !rotators.IsRetryable(err) {
		t.Fatalf("error is not retryable: %v", err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func wantPermanent(t *testing.T, err error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a permanent one")
	}
	if rotators.IsRetryable(err) {
		t.Fatalf("error is retryable, want permanent: %v", err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}
