// Package pkitransit drives the pki and transit rotators against a real in-process Vault core,
// under a least-privilege token, and asserts on Vault's own state: issued serials, the CRL, key
// versions, and what still decrypts.
package pkitransit

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// agentPolicy is the policy the rotators run under here: the shared KV v2 stanzas plus the
// stanzas the pki and transit kinds need. The tests fail if any needed capability is missing.
const agentPolicy = `
path "secret/data/*"     { capabilities = ["read", "create", "update"] }
path "secret/metadata/*" { capabilities = ["read"] }

path "pki/cert/*"        { capabilities = ["read"] }
path "pki/roles/*"       { capabilities = ["read"] }
path "pki/issue/*"       { capabilities = ["create", "update"] }
path "pki/issuer/+/json" { capabilities = ["read"] }
path "pki/issuer/+/crl"  { capabilities = ["read"] }
path "pki/revoke" {
  capabilities       = ["create", "update"]
  allowed_parameters = { "serial_number" = [] }
}
path "pki/crl/rotate"    { capabilities = ["read"] }

path "transit/keys/+"        { capabilities = ["read"] }
path "transit/keys/+/rotate" { capabilities = ["update"] }
path "transit/keys/+/config" {
  capabilities       = ["update"]
  allowed_parameters = { "min_decryption_version" = [] }
}
path "transit/encrypt/+" { capabilities = ["update"] }
path "transit/decrypt/+" { capabilities = ["update"] }
path "transit/sign/+"    { capabilities = ["update"] }
path "transit/verify/+"  { capabilities = ["update"] }
path "transit/hmac/+"    { capabilities = ["update"] }
`

// agentClient returns a client like the agent's (TLS to the cluster CA, no client retries)
// with a token bound to agentPolicy only.
func agentClient(t *testing.T, v *harness.Vault) *vaultapi.Client {
	t.Helper()
	if err := v.Root.Sys().PutPolicy("pki-transit-agent", agentPolicy); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	tok, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"pki-transit-agent"}, TTL: "1h", NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	conf := vaultapi.DefaultConfig()
	conf.Address = v.Addr
	conf.MaxRetries = 0
	if err := conf.ConfigureTLS(&vaultapi.TLSConfig{CACert: v.CACertFile}); err != nil {
		t.Fatal(err)
	}
	c, err := vaultapi.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok.Auth.ClientToken)
	return c
}

// journal is an in-memory Save that keeps a copy of every saved state and can be told to fail.
type journal struct {
	mu    sync.Mutex
	saved []rotators.State
	// fail, when set, decides whether a save fails (before anything is stored).
	fail func(st *rotators.State) error
}

var errSaveFailed = errors.New("journal unavailable (test)")

func (j *journal) save(_ context.Context, st *rotators.State) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		if err := j.fail(st); err != nil {
			return err
		}
	}
	j.saved = append(j.saved, cloneState(st))
	return nil
}

// last returns a copy of the last state saved: what a restarted agent would resume from.
func (j *journal) last(t *testing.T) rotators.State {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.saved) == 0 {
		t.Fatal("nothing was saved")
	}
	return cloneState(&j.saved[len(j.saved)-1])
}

// texts returns every saved state as JSON, for leak scans.
func (j *journal) texts() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]string, 0, len(j.saved))
	for i := range j.saved {
		raw, _ := json.Marshal(j.saved[i])
		out = append(out, string(raw))
	}
	return out
}

// cloneState copies st the way the journal stores it: through JSON.
func cloneState(st *rotators.State) rotators.State {
	raw, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	var out rotators.State
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	return out
}

// clock is a controllable clock starting at the real time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func request(ref events.CredentialRef, j *journal, c *clock) rotators.Request {
	return rotators.Request{
		ChangeID:   "CHG-PKI-TRANSIT",
		Credential: ref,
		Save:       j.save,
		Generate: func(context.Context) (string, error) {
			return "", errors.New("this kind generates no values")
		},
		Now: c.Now,
	}
}

const overlap = time.Hour

// drive runs rotators.Drive once with a deadline.
func drive(t *testing.T, rot rotators.Rotator, req rotators.Request, st *rotators.State) (rotators.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return rotators.Drive(ctx, rot, req, st, overlap)
}

// mustDrive runs rotators.Drive once and fails the test on an error.
func mustDrive(t *testing.T, rot rotators.Rotator, req rotators.Request, st *rotators.State) rotators.Outcome {
	t.Helper()
	out, err := drive(t, rot, req, st)
	if err != nil {
		t.Fatalf("drive: %v (state %+v)", err, *st)
	}
	return out
}

// assertNoLeak fails the test if any secret (or a long piece of its base64 body) appears in
// any text.
func assertNoLeak(t *testing.T, secrets map[string]string, texts []string) {
	t.Helper()
	if len(texts) == 0 {
		t.Fatal("leak scan had nothing to scan")
	}
	for name, secret := range secrets {
		needles := []string{secret}
		if lines := strings.Split(strings.TrimSpace(secret), "\n"); len(lines) > 2 {
			needles = append(needles, lines[1][:32])
		}
		for _, text := range texts {
			for _, n := range needles {
				if len(n) < 16 {
					t.Fatalf("secret %s is too short to scan for", name)
				}
				if strings.Contains(text, n) {
					t.Errorf("secret %s leaked: %.300q", name, text)
				}
			}
		}
	}
}

// stepFailer returns a journal fail function that fails saving once, when the driver is about
// to start step (so everything before it is done and saved).
func stepFailer(step rotators.Step) func(st *rotators.State) error {
	done := false
	return func(st *rotators.State) error {
		if !done && st.Started == step {
			done = true
			return errSaveFailed
		}
		return nil
	}
}
