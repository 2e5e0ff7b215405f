package transit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// fakeTransit serves one aes256-gcm96 key of a transit mount, enough for the rotator's paths.
type fakeTransit struct {
	mu       sync.Mutex
	latest   int
	minDec   int
	requests []string
	// status answers "METHOD path" with a status code and reason instead of serving it.
	status map[string]int
	reason map[string]string
	// lie makes encrypt report this version in its ciphertext, whatever was asked.
	lie int
	// rotateLost rotates but answers 502, as a lost response would.
	rotateLost bool
}

func newFake(t *testing.T) (*fakeTransit, *vault.Client) {
	t.Helper()
	f := &fakeTransit{latest: 1, minDec: 1, status: map[string]int{}, reason: map[string]string{}}
	return f, vaultfake.Client(t, f, "test-token")
}

func (f *fakeTransit) seen(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r == key {
			n++
		}
	}
	return n
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	method := r.Method
	if method == http.MethodPut {
		method = http.MethodPost
	}
	key := method + " " + path
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, key)
	fail := func(code int, reason string) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{reason}})
	}
	if code, ok := f.status[key]; ok {
		fail(code, f.reason[key])
		return
	}
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	reply := func(data map[string]any) { _ = json.NewEncoder(w).Encode(map[string]any{"data": data}) }
	switch key {
	case "GET transit/keys/orders":
		reply(map[string]any{"type": "aes256-gcm96", "latest_version": f.latest, "min_decryption_version": f.minDec,
			"min_encryption_version": 0, "min_available_version": 0, "supports_encryption": true, "supports_decryption": true})
	case "POST transit/keys/orders/rotate":
		f.latest++
		if f.rotateLost {
			fail(http.StatusBadGateway, "lost")
			return
		}
		reply(nil)
	case "POST transit/keys/orders/config":
		v, _ := body["min_decryption_version"].(float64)
		f.minDec = int(v)
		reply(nil)
	case "POST transit/encrypt/orders":
		v, _ := body["key_version"].(float64)
		ver := int(v)
		if ver < f.minDec {
			fail(http.StatusBadRequest, "no such key version")
			return
		}
		if f.lie != 0 {
			ver = f.lie
		}
		reply(map[string]any{"ciphertext": fmt.Sprintf("vault:v%d:%s", ver, body["plaintext"])})
	case "POST transit/decrypt/orders":
		ct, _ := body["ciphertext"].(string)
		rest := strings.TrimPrefix(ct, "vault:v")
		vs, pt, _ := strings.Cut(rest, ":")
		ver, _ := strconv.Atoi(vs)
		if ver < f.minDec {
			fail(http.StatusBadRequest, "ciphertext or signature version is disallowed by policy (too old)")
			return
		}
		reply(map[string]any{"plaintext": pt})
	default:
		fail(http.StatusNotFound, "no handler for "+key)
	}
}

func fakeRequest(save func(*rotators.State) error, opts map[string]string) rotators.Request {
	return rotators.Request{
		ChangeID:   "CHG-UNIT",
		Credential: events.CredentialRef{Kind: Kind, Mount: "transit", Path: "orders", Options: opts},
		Save: func(_ context.Context, st *rotators.State) error {
			if save != nil {
				return save(st)
			}
			return nil
		},
		Now: time.Now,
	}
}

func preparedState(t *testing.T, r *Rotator, req rotators.Request) *rotators.State {
	t.Helper()
	st := &rotators.State{}
	if err := r.Prepare(context.Background(), req, st); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return st
}

func TestCheckOptions(t *testing.T) {
	r := New(nil)
	for _, v := range []string{"", "keep", "raise"} {
		if _, err := r.check(events.CredentialRef{Mount: "transit", Path: "k", Options: map[string]string{OptionMinDecryption: v}}); err != nil {
			t.Errorf("min_decryption=%q refused: %v", v, err)
		}
	}
	for name, ref := range map[string]events.CredentialRef{
		"bad option": {Mount: "transit", Path: "k", Options: map[string]string{OptionMinDecryption: "lower"}},
		"no key":     {Mount: "transit"},
		"nested key": {Mount: "transit", Path: "a/b"},
		"verify":     {Mount: "transit", Path: "k", Action: events.ActionVerify},
	} {
		if _, err := r.check(ref); err == nil || rotators.IsRetryable(err) {
			t.Errorf("%s: check = %v, want a permanent error", name, err)
		}
	}
}

// Nothing is rotated when the intent cannot be saved.
func TestApplyDoesNotRotateWithoutTheIntentSaved(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	st := preparedState(t, r, fakeRequest(nil, nil))
	err := r.Apply(context.Background(), fakeRequest(func(*rotators.State) error { return errors.New("journal down") }, nil), st)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply = %v, want retryable", err)
	}
	if f.seen("POST transit/keys/orders/rotate") != 0 {
		t.Error("the key was rotated")
	}
}

// A rotation whose answer was lost is retryable, and the next apply adopts the version Vault
// made instead of rotating again.
func TestApplyAdoptsALostRotation(t *testing.T) {
	f, c := newFake(t)
	f.rotateLost = true
	r := New(c)
	req := fakeRequest(nil, nil)
	st := preparedState(t, r, req)
	if err := r.Apply(context.Background(), req, st); err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply = %v, want retryable", err)
	}
	if err := r.Apply(context.Background(), req, st); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if n := f.seen("POST transit/keys/orders/rotate"); n != 1 || f.latest != 2 {
		t.Errorf("%d rotations, latest %d; want 1 and 2", n, f.latest)
	}
	if st.Note(noteNew) != "2" || st.After["adopted"] != "" {
		t.Errorf("state = %v after %v: want version 2, not marked as someone else's", st.Data, st.After)
	}
	// A third apply does nothing at all.
	before := len(f.requests)
	if err := r.Apply(context.Background(), req, st); err != nil || len(f.requests) != before {
		t.Errorf("a finished apply sent %d requests (%v)", len(f.requests)-before, err)
	}
}

func TestApplyClassifiesRotateFailures(t *testing.T) {
	for code, retry := range map[int]bool{500: true, 429: true, 400: false, 403: false} {
		f, c := newFake(t)
		f.status["POST transit/keys/orders/rotate"] = code
		r := New(c)
		req := fakeRequest(nil, nil)
		st := preparedState(t, r, req)
		if err := r.Apply(context.Background(), req, st); err == nil || rotators.IsRetryable(err) != retry {
			t.Errorf("rotate answered %d: apply = %v; want retryable %v", code, err, retry)
		}
	}
}

// Verify refuses a ciphertext that does not carry the new version.
func TestVerifyChecksTheCiphertextVersion(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	req := fakeRequest(nil, nil)
	st := preparedState(t, r, req)
	if err := r.Apply(context.Background(), req, st); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(context.Background(), req, st); err != nil {
		t.Fatalf("verify: %v", err)
	}
	f.lie = 1
	err := r.Verify(context.Background(), req, st)
	if err == nil || !rotators.IsRetryable(err) || !errors.Is(err, errVerify) || !strings.Contains(err.Error(), `"v1", not "v2"`) {
		t.Errorf("verify with a version-1 ciphertext = %v", err)
	}
}

// A decryption Vault forbids (403: the agent's policy) is an error, never taken for the key
// refusing the ciphertext.
func TestVerifyAndRetireDoNotMistakeForbiddenForRefused(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	req := fakeRequest(nil, map[string]string{OptionMinDecryption: MinDecryptionRaise})
	st := preparedState(t, r, req)
	if err := r.Apply(context.Background(), req, st); err != nil {
		t.Fatal(err)
	}
	f.status["POST transit/decrypt/orders"] = http.StatusForbidden
	f.reason["POST transit/decrypt/orders"] = "permission denied"
	if err := r.Verify(context.Background(), req, st); err == nil || rotators.IsRetryable(err) || errors.Is(err, errVerify) {
		t.Errorf("verify with decrypt forbidden = %v, want a permanent non-verification error", err)
	}
	if err := r.Retire(context.Background(), req, st); err == nil || rotators.IsRetryable(err) {
		t.Errorf("retire with decrypt forbidden = %v, want a permanent error", err)
	}
	if f.minDec != 1 {
		t.Errorf("min_decryption_version raised to %d without the old-version check", f.minDec)
	}
}

// With raise, retire records its old-version ciphertext before raising, raises, and checks the
// ciphertext is refused as too old; a resumed retire checks the recorded ciphertext again.
func TestRetireRaiseRecordsItsTestAndResumes(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	var saved []string
	req := fakeRequest(func(st *rotators.State) error {
		saved = append(saved, st.Note(noteOldProbe))
		return nil
	}, map[string]string{OptionMinDecryption: MinDecryptionRaise})
	st := preparedState(t, r, req)
	if err := r.Apply(context.Background(), req, st); err != nil {
		t.Fatal(err)
	}
	if err := r.Retire(context.Background(), req, st); err != nil {
		t.Fatalf("retire: %v", err)
	}
	if f.minDec != 2 || !strings.HasPrefix(st.Note(noteOldProbe), "vault:v1:") || !strings.Contains(st.After["old_versions"], "too old") {
		t.Fatalf("min_decryption %d, notes %v, after %v", f.minDec, st.Data, st.After)
	}
	if len(saved) < 2 || !strings.HasPrefix(saved[len(saved)-1], "vault:v1:") {
		t.Errorf("the test ciphertext was not saved before raising (saves: %q)", saved)
	}
	// Resumed after the raise: the old version can no longer encrypt, the recorded ciphertext
	// is checked instead, and nothing is written.
	f.mu.Lock()
	f.requests = nil
	f.mu.Unlock()
	if err := r.Retire(context.Background(), req, st); err != nil {
		t.Fatalf("resumed retire: %v", err)
	}
	if f.seen("POST transit/keys/orders/config") != 0 || f.seen("POST transit/decrypt/orders") != 1 {
		t.Errorf("resumed retire requests: %v", f.requests)
	}
	// A refusal for another reason than age proves nothing.
	f.status["POST transit/decrypt/orders"] = http.StatusBadRequest
	f.reason["POST transit/decrypt/orders"] = "invalid ciphertext"
	if err := r.Retire(context.Background(), req, st); err == nil || !errors.Is(err, errVerify) {
		t.Errorf("retire with an unexplained refusal = %v, want a verification error", err)
	}
}

// Without raise, retire writes nothing.
func TestRetireKeepWritesNothing(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	req := fakeRequest(nil, nil)
	st := preparedState(t, r, req)
	if err := r.Apply(context.Background(), req, st); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.requests = nil
	f.mu.Unlock()
	if err := r.Retire(context.Background(), req, st); err != nil {
		t.Fatal(err)
	}
	for _, q := range f.requests {
		if !strings.HasPrefix(q, "GET ") {
			t.Errorf("retire without raise sent %s", q)
		}
	}
	if !strings.Contains(st.After["old_versions"], "still decryptable") {
		t.Errorf("after = %v", st.After)
	}
}
