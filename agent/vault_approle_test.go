package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// fakeAppRole is an httptest stand-in for Vault's AppRole login and unwrap endpoints, for the
// error paths; real AppRole logins are covered by the integration tests.
type fakeAppRole struct {
	mu       sync.Mutex
	wrapped  map[string]string // wrapping token -> secret id; unwrapping removes it
	uses     map[string]int    // secret id -> logins left
	unwraps  int
	loginIDs []string // secret ids sent, in order
	tokens   []string // X-Vault-Token of each login
}

func (f *fakeAppRole) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body map[string]string
	_ = json.NewDecoder(r.Body).Decode(&body)
	refuse := func(msg string) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
	}
	switch r.URL.Path {
	case "/v1/sys/wrapping/unwrap":
		f.unwraps++
		token := r.Header.Get("X-Vault-Token")
		if body["token"] != "" {
			token = body["token"]
		}
		id, ok := f.wrapped[token]
		if !ok {
			refuse("wrapping token is not valid or does not exist")
			return
		}
		delete(f.wrapped, token)
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"secret_id": id}})
	case "/v1/auth/approle/login":
		f.loginIDs = append(f.loginIDs, body["secret_id"])
		f.tokens = append(f.tokens, r.Header.Get("X-Vault-Token"))
		if body["role_id"] != "role-1" || f.uses[body["secret_id"]] < 1 {
			refuse("invalid role or secret ID")
			return
		}
		f.uses[body["secret_id"]]--
		_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "hvs.approle-issued-token-00000000", "lease_duration": 60, "renewable": true}})
	default:
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
	}
}

// appRoleSession starts a fake and a session logged in from a secret id file holding first.
func appRoleSession(t *testing.T, fake *fakeAppRole, wrapped bool, first string) (*vaultSession, string, *Redactor) {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "secret-id")
	writeSecretIDFile(t, file, first)
	cfg := Defaults().Vault
	cfg.Addr, cfg.Timeout = srv.URL, 5*time.Second
	cfg.AuthMethod, cfg.AppRoleRoleID, cfg.AppRoleSecretIDFile, cfg.AppRoleSecretIDWrapped = AuthAppRole, "role-1", file, wrapped
	redactor := NewRedactor()
	s, _, err := openVault(context.Background(), cfg, logrus.New(), redactor)
	if err != nil {
		t.Fatalf("first login: %v", err)
	}
	return s, file, redactor
}

func writeSecretIDFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// assertRefused checks a login error says what to do and shows no secret.
func assertRefused(t *testing.T, err error, want string, secrets ...string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("login error = %v, want it to say %q", err, want)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("login error shows a secret %q: %v", s, err)
		}
	}
}

// A plain secret id is read from the file at every login, so a fresh one recovers a spent one.
func TestAppRolePlainSecretIDReadAtEveryLogin(t *testing.T) {
	fake := &fakeAppRole{uses: map[string]int{"secret-id-first-0001": 1, "secret-id-second-0002": 5}}
	s, file, _ := appRoleSession(t, fake, false, "secret-id-first-0001")
	_, err := s.login(context.Background())
	assertRefused(t, err, "vault refused the secret id: it is spent (used up or expired) or not the role's; write a fresh one to the file", "secret-id-first-0001")
	if !strings.Contains(err.Error(), file) {
		t.Errorf("login error does not name the file: %v", err)
	}
	writeSecretIDFile(t, file, "secret-id-second-0002")
	if _, err := s.login(context.Background()); err != nil {
		t.Fatalf("login after a fresh secret id was written: %v", err)
	}
	want := []string{"secret-id-first-0001", "secret-id-first-0001", "secret-id-second-0002"}
	if strings.Join(fake.loginIDs, ",") != strings.Join(want, ",") {
		t.Errorf("secret ids sent = %v, want %v", fake.loginIDs, want)
	}
}

// A wrapping token is unwrapped once and its secret id reused while the file holds it; once
// Vault refuses that secret id, the agent waits for a fresh wrapping token instead of
// unwrapping the spent one again, and recovers with the fresh one.
func TestAppRoleWrappedSecretIDRecoversFromAFreshToken(t *testing.T) {
	fake := &fakeAppRole{
		wrapped: map[string]string{"wrap-token-first-0001": "secret-id-first-0001", "wrap-token-second-0002": "secret-id-second-0002"},
		uses:    map[string]int{"secret-id-first-0001": 2, "secret-id-second-0002": 5},
	}
	s, file, redactor := appRoleSession(t, fake, true, "wrap-token-first-0001")
	ctx := context.Background()
	if _, err := s.login(ctx); err != nil {
		t.Fatalf("second login with the same file: %v", err)
	}
	if fake.unwraps != 1 {
		t.Errorf("%d unwraps for two logins with one wrapping token, want 1", fake.unwraps)
	}
	secrets := []string{"wrap-token-first-0001", "secret-id-first-0001"}
	_, err := s.login(ctx)
	assertRefused(t, err, "it is spent (used up or expired)", secrets...)
	_, err = s.login(ctx)
	assertRefused(t, err, "the file still holds the wrapping token of the secret id vault refused; write a fresh wrapping token to the file", secrets...)
	if fake.unwraps != 1 {
		t.Errorf("the spent wrapping token was unwrapped again (%d unwraps)", fake.unwraps)
	}
	writeSecretIDFile(t, file, "wrap-token-second-0002")
	if _, err := s.login(ctx); err != nil {
		t.Fatalf("login after a fresh wrapping token was written: %v", err)
	}
	if got := fake.loginIDs[len(fake.loginIDs)-1]; got != "secret-id-second-0002" {
		t.Errorf("last login sent %q, want the fresh secret id", got)
	}
	for i, tok := range fake.tokens {
		if tok != "" {
			t.Errorf("login %d was sent with a token (%q): the wrapping token stuck to the login client", i+1, tok)
		}
	}
	for _, secret := range append(secrets, "wrap-token-second-0002", "secret-id-second-0002") {
		if got := redactor.String("x " + secret); strings.Contains(got, secret) {
			t.Errorf("%s is not redacted", secret)
		}
	}
}

// A wrapping token that was already unwrapped (for example by the agent before a restart) is
// reported as spent, with what to do.
func TestAppRoleSpentWrappingToken(t *testing.T) {
	srv := httptest.NewServer(&fakeAppRole{wrapped: map[string]string{}, uses: map[string]int{}})
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "secret-id")
	writeSecretIDFile(t, file, "wrap-token-used-0003")
	cfg := Defaults().Vault
	cfg.Addr, cfg.Timeout = srv.URL, 5*time.Second
	cfg.AuthMethod, cfg.AppRoleRoleID, cfg.AppRoleSecretIDFile, cfg.AppRoleSecretIDWrapped = AuthAppRole, "role-1", file, true
	_, _, err := openVault(context.Background(), cfg, logrus.New(), NewRedactor())
	assertRefused(t, err, "the wrapping token is spent or expired (a wrapping token unwraps once); write a fresh wrapping token to the file", "wrap-token-used-0003")
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("start-up error spans several lines: %q", err)
	}
}
