// Package drive holds what the rotator integration tests share to drive a rotator through
// rotators.Drive against the harness's Vault: an in-memory journal that can be told to fail,
// a controllable clock, a least-privilege agent token and client, and a scan that proves no
// secret leaked into saved state, plans or errors.
package drive

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
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// ErrSaveFailed is the error a Journal's save returns when FailWhen or FailAtStep makes it fail.
var ErrSaveFailed = errors.New("journal unavailable (test)")

// Journal is an in-memory rotators.Request.Save that keeps a copy of every state saved, as the
// agent's journal would store it. It is safe for concurrent use.
type Journal struct {
	mu    sync.Mutex
	saved []rotators.State
	// Fail, when set, decides whether a save fails: a non-nil error is returned and nothing
	// is stored.
	Fail func(st *rotators.State) error
	// OnSave, when set, runs after a state was stored.
	OnSave func(st *rotators.State)
}

// Save stores a copy of st, unless Fail makes the save fail. It has the signature of
// rotators.Request.Save.
func (j *Journal) Save(_ context.Context, st *rotators.State) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.Fail != nil {
		if err := j.Fail(st); err != nil {
			return err
		}
	}
	j.saved = append(j.saved, CloneState(st))
	if j.OnSave != nil {
		j.OnSave(st)
	}
	return nil
}

// Last returns a copy of the last state saved, which is what a restarted agent resumes from.
// It fails the test when nothing was saved.
func (j *Journal) Last(t testing.TB) rotators.State {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.saved) == 0 {
		t.Fatal("nothing was saved")
	}
	return CloneState(&j.saved[len(j.saved)-1])
}

// Texts returns every saved state as JSON, for leak scans.
func (j *Journal) Texts() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]string, 0, len(j.saved))
	for i := range j.saved {
		raw, _ := json.Marshal(j.saved[i])
		out = append(out, string(raw))
	}
	return out
}

// FailWhen returns a Journal.Fail that fails every save for which cond is true with
// ErrSaveFailed.
func FailWhen(cond func(st *rotators.State) bool) func(st *rotators.State) error {
	return func(st *rotators.State) error {
		if cond(st) {
			return ErrSaveFailed
		}
		return nil
	}
}

// FailAtStep returns a Journal.Fail that fails one save, the first one made when the driver is
// about to start step (so everything before it is done and saved), with ErrSaveFailed.
func FailAtStep(step rotators.Step) func(st *rotators.State) error {
	done := false
	return func(st *rotators.State) error {
		if !done && st.Started == step {
			done = true
			return ErrSaveFailed
		}
		return nil
	}
}

// CloneState copies st the way the journal stores it: through JSON.
func CloneState(st *rotators.State) rotators.State {
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

// Clock is a clock the test moves: the agent's own fake clock, so one fake serves the agent
// and the rotators driven here. It is safe for concurrent use.
type Clock = clock.Fake

// NewClock returns a Clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock { return clock.NewFake(start) }

// Request returns a request for changeID and ref that saves its state to j and reads the time
// from c. Its Generate fails: the rotators driven here let Vault generate the new values.
func Request(changeID string, ref events.CredentialRef, j *Journal, c *Clock) rotators.Request {
	return rotators.Request{
		ChangeID:   changeID,
		Credential: ref,
		Save:       j.Save,
		Generate: func(context.Context) (string, error) {
			return "", errors.New("this rotation must not generate values itself: Vault generates them")
		},
		Now: c.Now,
	}
}

// Run runs rotators.Drive once, with a deadline of a minute.
func Run(t testing.TB, rot rotators.Rotator, req rotators.Request, st *rotators.State, overlap time.Duration) (rotators.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return rotators.Drive(ctx, rot, req, st, overlap)
}

// PolicyToken writes policy to Vault under name and returns a token bound to it alone (no
// default policy), valid for ttl.
func PolicyToken(t testing.TB, v *harness.Vault, name, policy, ttl string) string {
	t.Helper()
	if err := v.Root.Sys().PutPolicy(name, policy); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	s, err := v.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{name}, TTL: ttl, NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return s.Auth.ClientToken
}

// ClientConfig returns a client configuration like the agent's: TLS to the cluster's CA and no
// client retries (the agent owns retries).
func ClientConfig(t testing.TB, v *harness.Vault) *vaultapi.Config {
	t.Helper()
	conf := vaultapi.DefaultConfig()
	conf.Address = v.Addr
	conf.MaxRetries = 0
	if err := conf.ConfigureTLS(&vaultapi.TLSConfig{CACert: v.CACertFile}); err != nil {
		t.Fatalf("tls: %v", err)
	}
	return conf
}

// Client returns a client configured by ClientConfig that sends token.
func Client(t testing.TB, v *harness.Vault, token string) *vaultapi.Client {
	t.Helper()
	c, err := vaultapi.NewClient(ClientConfig(t, v))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	c.SetToken(token)
	return c
}

// AssertNoLeak fails the test if any of secrets (by name) appears in any of texts (by where
// they came from). For a PEM secret it also looks for a piece of its base64 body. A secret too
// short to scan for, or nothing to scan, fails the test: the scan would prove nothing.
func AssertNoLeak(t testing.TB, secrets map[string]string, texts map[string][]string) {
	t.Helper()
	n := 0
	for _, list := range texts {
		n += len(list)
	}
	if n == 0 {
		t.Fatal("leak scan had nothing to scan")
	}
	for name, secret := range secrets {
		if len(secret) < 8 {
			t.Fatalf("secret %s is too short to scan for", name)
		}
		needles := []string{secret}
		if lines := strings.Split(strings.TrimSpace(secret), "\n"); len(lines) > 2 && len(lines[1]) >= 32 {
			needles = append(needles, lines[1][:32])
		}
		for where, list := range texts {
			for _, text := range list {
				for _, needle := range needles {
					if strings.Contains(text, needle) {
						t.Errorf("the %s leaked into the %s: %.300q", name, where, text)
					}
				}
			}
		}
	}
}

// StateTexts renders states as JSON for a leak scan.
func StateTexts(sts ...*rotators.State) []string {
	out := make([]string, 0, len(sts))
	for _, st := range sts {
		raw, _ := json.Marshal(st)
		out = append(out, string(raw))
	}
	return out
}

// ErrTexts renders errors for a leak scan, each as it is and on one line; nil errors are
// skipped.
func ErrTexts(errs ...error) []string {
	var out []string
	for _, err := range errs {
		if err != nil {
			out = append(out, err.Error(), strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " ")))
		}
	}
	return out
}

// MustRun runs rotators.Drive once, like Run, and fails the test on an error.
func MustRun(t testing.TB, rot rotators.Rotator, req rotators.Request, st *rotators.State, overlap time.Duration) rotators.Outcome {
	t.Helper()
	out, err := Run(t, rot, req, st, overlap)
	if err != nil {
		t.Fatalf("drive: %v (state %+v)", err, *st)
	}
	return out
}
