package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// fakeVault serves the parts of the PKI and KV v2 APIs the rotator uses, for error paths.
type fakeVault struct {
	t  *testing.T
	ca *testCA

	mu sync.Mutex
	// requests lists "METHOD path" in order, with "save" where the rotator saved its state.
	requests []string
	// kvVersion is the deliver_to secret's current version; kvData its data.
	kvVersion int
	kvData    map[string]any
	// certs maps canonical serials to certificate PEMs.
	certs map[string]string
	// status answers "METHOD path" with a status code instead of serving it.
	status map[string]int
	// lastKey is the private key of the last certificate issued.
	lastKey string
	serial  int64
}

func newFake(t *testing.T) (*fakeVault, *vault.Client) {
	t.Helper()
	f := &fakeVault{t: t, ca: newTestCA(t, "Fake CA"), certs: map[string]string{}, status: map[string]int{}, serial: 100}
	oldPEM, oldKey := f.ca.leaf(t, 0x42, names2tmpl())
	f.certs["42"] = oldPEM
	f.kvVersion = 1
	f.kvData = map[string]any{"certificate": oldPEM, "private_key": oldKey, "serial": "42"}
	return f, vaultfake.Client(t, f, "test-token")
}

func names2tmpl() *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: "api.example.test"},
		DNSNames: []string{"api.example.test"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
}

func (f *fakeVault) log(s string) {
	f.mu.Lock()
	f.requests = append(f.requests, s)
	f.mu.Unlock()
}

func (f *fakeVault) seen(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	method := r.Method
	if method == http.MethodPut {
		method = http.MethodPost
	}
	key := method + " " + path
	f.log(key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if code, ok := f.status[key]; ok {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{"fake failure"}})
		return
	}
	reply := func(data map[string]any) {
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	}
	switch {
	case key == "GET secret/metadata/app/tls":
		reply(map[string]any{"current_version": f.kvVersion, "versions": map[string]any{}})
	case key == "GET secret/data/app/tls":
		reply(map[string]any{"data": f.kvData, "metadata": map[string]any{"version": f.kvVersion, "created_time": time.Now().UTC().Format(time.RFC3339Nano)}})
	case key == "POST secret/data/app/tls":
		var body struct {
			Data    map[string]any `json:"data"`
			Options struct {
				CAS int `json:"cas"`
			} `json:"options"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Options.CAS != f.kvVersion {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{"check-and-set parameter did not match the current version"}})
			return
		}
		f.kvVersion++
		f.kvData = body.Data
		reply(map[string]any{"version": f.kvVersion, "created_time": time.Now().UTC().Format(time.RFC3339Nano)})
	case strings.HasPrefix(key, "GET pki/cert/"):
		s, _ := normalizeSerial(strings.TrimPrefix(path, "pki/cert/"))
		p, ok := f.certs[strings.ReplaceAll(s, ":", "")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{}})
			return
		}
		reply(map[string]any{"certificate": p, "revocation_time": 0})
	case key == "POST pki/issue/web":
		f.serial++
		certPEM, keyPEM := f.ca.leaf(f.t, f.serial, names2tmpl())
		c, _ := parseCertPEM(certPEM)
		f.certs[strings.ReplaceAll(serialOf(c), ":", "")] = certPEM
		f.lastKey = keyPEM
		reply(map[string]any{"certificate": certPEM, "private_key": keyPEM, "issuing_ca": f.ca.pem,
			"ca_chain": []string{f.ca.pem}, "serial_number": serialOf(c)})
	case key == "GET pki/roles/web":
		reply(map[string]any{"issuer_ref": "default"})
	case key == "GET pki/issuer/default/json":
		reply(map[string]any{"certificate": f.ca.pem, "ca_chain": []string{f.ca.pem}})
	case key == "POST pki/revoke":
		reply(map[string]any{"revocation_time": time.Now().Unix()})
	default:
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{"no handler for " + key}})
	}
}

func fakeRequest(f *fakeVault, save func(*rotators.State) error) rotators.Request {
	return rotators.Request{
		ChangeID: "CHG-UNIT",
		Credential: events.CredentialRef{Kind: Kind, Mount: "pki", Path: "web",
			Options: map[string]string{OptionDeliverTo: "secret/app/tls"}},
		Save: func(_ context.Context, st *rotators.State) error {
			f.log("save")
			if save != nil {
				return save(st)
			}
			return nil
		},
		Now: time.Now,
	}
}

func prepared(t *testing.T, r *Rotator, req rotators.Request) *rotators.State {
	t.Helper()
	st := &rotators.State{}
	if err := r.Prepare(context.Background(), req, st); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if st.Note(noteOldSerial) != "42" || st.Note(noteBase) != "1" {
		t.Fatalf("prepare notes = %v", st.Data)
	}
	return st
}

// The intent is saved before Vault is asked for a certificate; when the save fails, nothing
// is issued.
func TestApplyIssuesNothingWhenTheIntentCannotBeSaved(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	req := fakeRequest(f, func(st *rotators.State) error { return errors.New("journal down") })
	st := prepared(t, r, req)
	err := r.Apply(context.Background(), req, st)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply = %v, want a retryable error", err)
	}
	if n := f.seen("POST pki/issue"); n != 0 {
		t.Errorf("%d issue requests despite the failed save", n)
	}
}

// Vault's answers to the issue request are classified: 5xx and 429 retry, 4xx do not. The
// intent is saved before the request.
func TestApplyClassifiesIssueFailures(t *testing.T) {
	for code, retry := range map[int]bool{500: true, 503: true, 429: true, 400: false, 403: false} {
		f, c := newFake(t)
		f.status["POST pki/issue/web"] = code
		r := New(c)
		req := fakeRequest(f, nil)
		st := prepared(t, r, req)
		err := r.Apply(context.Background(), req, st)
		if err == nil || rotators.IsRetryable(err) != retry {
			t.Errorf("issue answered %d: apply = %v, retryable %v; want retryable %v", code, err, rotators.IsRetryable(err), retry)
		}
		f.mu.Lock()
		order := strings.Join(f.requests, "|")
		f.mu.Unlock()
		if !strings.Contains(order, "save|POST pki/issue/web") {
			t.Errorf("the intent was not saved right before issuing: %s", order)
		}
	}
}

// A deliver_to secret written by someone else between prepare and apply is not overwritten,
// and the certificate issued for it is revoked since its key will be lost. The error names
// neither key.
func TestApplyRevokesWhatItCannotDeliver(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	req := fakeRequest(f, func(*rotators.State) error {
		// Someone writes the secret while the certificate is being issued.
		f.mu.Lock()
		f.kvVersion = 2
		f.mu.Unlock()
		return nil
	})
	st := prepared(t, r, req)
	err := r.Apply(context.Background(), req, st)
	if err == nil || rotators.IsRetryable(err) || !errors.Is(err, errChanged) {
		t.Fatalf("apply = %v, want a permanent %v", err, errChanged)
	}
	if f.seen("POST secret/data/app/tls") != 1 || f.seen("POST pki/revoke") != 1 {
		t.Errorf("requests %v: want one refused delivery and one revocation", f.requests)
	}
	if st.Note(noteOrphaned) == "" || st.Note(noteNewSerial) != "" {
		t.Errorf("notes = %v, want the orphan recorded and the serial cleared", st.Data)
	}
	old, _ := f.kvData["private_key"].(string)
	for _, key := range []string{f.lastKey, old} {
		if strings.Contains(err.Error(), strings.Split(key, "\n")[1]) {
			t.Error("a private key leaked into the error")
		}
	}
}

// A delivery lost on the way (5xx) is retryable; the next apply finds it delivered and
// adopts it instead of issuing again.
func TestApplyAdoptsALostDelivery(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	req := fakeRequest(f, nil)
	st := prepared(t, r, req)
	f.status["POST secret/data/app/tls"] = 502
	if err := r.Apply(context.Background(), req, st); err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("apply = %v, want retryable", err)
	}
	// The write happened after all; only the answer was lost.
	delete(f.status, "POST secret/data/app/tls")
	certPEM := f.certs[strings.ReplaceAll(st.Note(noteNewSerial), ":", "")]
	f.kvVersion, f.kvData = 2, map[string]any{"certificate": certPEM, "serial": st.Note(noteNewSerial)}
	if err := r.Apply(context.Background(), req, st); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if n := f.seen("POST pki/issue/web"); n != 1 {
		t.Errorf("%d certificates issued, want 1", n)
	}
	if st.Note(noteDelivered) != "2" || st.After["serial"] != st.Note(noteNewSerial) {
		t.Errorf("state after adoption: notes %v after %v", st.Data, st.After)
	}
}

// Plan only reads.
func TestPlanOnlyReads(t *testing.T) {
	f, c := newFake(t)
	r := New(c)
	plan, err := r.Plan(context.Background(), fakeRequest(f, nil))
	if err != nil || plan.Current["serial"] != "42" || len(plan.Changes) != 3 {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, req := range f.requests {
		if !strings.HasPrefix(req, "GET ") && !strings.HasPrefix(req, "LIST ") {
			t.Errorf("plan sent %s", req)
		}
	}
	if len(f.requests) == 0 {
		t.Error("plan read nothing")
	}
}

// Retire classifies a failed revocation: 5xx retries, 403 does not.
func TestRetireClassifiesRevokeFailures(t *testing.T) {
	for code, retry := range map[int]bool{503: true, 403: false} {
		f, c := newFake(t)
		f.status["POST pki/revoke"] = code
		r := New(c)
		st := &rotators.State{Data: map[string]string{noteOldSerial: "42"}}
		err := r.Retire(context.Background(), fakeRequest(f, nil), st)
		if err == nil || rotators.IsRetryable(err) != retry {
			t.Errorf("revoke answered %d: retire = %v; want retryable %v", code, err, retry)
		}
	}
}

// References that cannot work are refused before any request.
func TestCheckRefusesBadReferences(t *testing.T) {
	r := New(nil)
	for name, ref := range map[string]events.CredentialRef{
		"revoke action": {Kind: Kind, Mount: "pki", Path: "web", Action: events.ActionRevoke, Options: map[string]string{OptionDeliverTo: "secret/x"}},
		"no role":       {Kind: Kind, Mount: "pki", Options: map[string]string{OptionDeliverTo: "secret/x"}},
		"no deliver_to": {Kind: Kind, Mount: "pki", Path: "web"},
		"bad serial":    {Kind: Kind, Mount: "pki", Path: "web", Options: map[string]string{OptionDeliverTo: "secret/x", OptionSerial: "xyz"}},
	} {
		if _, _, err := r.check(ref); err == nil || rotators.IsRetryable(err) {
			t.Errorf("%s: check = %v, want a permanent error", name, err)
		}
	}
}
