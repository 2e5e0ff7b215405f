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

// fakeLogin is an httptest stand-in for Vault's login endpoints; the real AppRole and token
// logins are covered by the integration tests against a real Vault core.
type fakeLogin struct {
	mu     sync.Mutex
	bodies map[string]map[string]any
	tokens map[string]string // X-Vault-Token seen per path
}

func (f *fakeLogin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.bodies[r.URL.Path] = body
	f.tokens[r.URL.Path] = r.Header.Get("X-Vault-Token")
	switch r.URL.Path {
	case "/v1/auth/k8s-prod/login":
		_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "hvs.k8s-issued-token-000000000", "lease_duration": 60, "renewable": true}})
	default:
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
	}
}

func TestKubernetesLogin(t *testing.T) {
	fake := &fakeLogin{bodies: map[string]map[string]any{}, tokens: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	jwtFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwtFile, []byte("eyJhbGciOiJSUzI1NiJ9.sa-token.sig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults().Vault
	cfg.Addr = srv.URL
	cfg.AuthMethod = AuthKubernetes
	cfg.KubernetesRole = "rotation-agent"
	cfg.KubernetesMount = "k8s-prod"
	cfg.KubernetesTokenFile = jwtFile
	redactor := NewRedactor()
	s, secret, err := openVault(context.Background(), cfg, logrus.New(), redactor)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	body := fake.bodies["/v1/auth/k8s-prod/login"]
	if body["role"] != "rotation-agent" || body["jwt"] != "eyJhbGciOiJSUzI1NiJ9.sa-token.sig" {
		t.Errorf("login body = %v, want the role and the trimmed service account token", body)
	}
	if fake.tokens["/v1/auth/k8s-prod/login"] != "" {
		t.Errorf("login was sent with a token")
	}
	if s.client.Token() != "hvs.k8s-issued-token-000000000" || !secret.Auth.Renewable {
		t.Errorf("session token %q renewable %v", s.client.Token(), secret.Auth.Renewable)
	}
	got := redactor.String("token hvs.k8s-issued-token-000000000 and jwt eyJhbGciOiJSUzI1NiJ9.sa-token.sig")
	if strings.Contains(got, "k8s-issued") {
		t.Errorf("issued token not redacted: %q", got)
	}
	if strings.Contains(got, "sa-token") {
		t.Errorf("service account token not redacted: %q", got)
	}
	// Kubernetes rotates the projected token; the one read at the next login is redacted too.
	if err := os.WriteFile(jwtFile, []byte("eyJhbGciOiJSUzI1NiJ9.rotated-sa-token.sig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.login(context.Background()); err != nil {
		t.Fatalf("second login: %v", err)
	}
	if got := redactor.String("jwt eyJhbGciOiJSUzI1NiJ9.rotated-sa-token.sig"); strings.Contains(got, "rotated-sa-token") {
		t.Errorf("rotated service account token not redacted: %q", got)
	}
}

func TestLoginErrorsNameTheCause(t *testing.T) {
	srv := httptest.NewServer(&fakeLogin{bodies: map[string]map[string]any{}, tokens: map[string]string{}})
	defer srv.Close()
	cases := map[string]func(c *VaultConfig){
		"kubernetes token file missing": func(c *VaultConfig) {
			c.AuthMethod, c.KubernetesRole, c.KubernetesTokenFile = AuthKubernetes, "r", "/nonexistent/token"
		},
		"approle refused": func(c *VaultConfig) {
			f := filepath.Join(t.TempDir(), "sid")
			_ = os.WriteFile(f, []byte("secret-id-value"), 0o600)
			c.AuthMethod, c.AppRoleRoleID, c.AppRoleSecretIDFile = AuthAppRole, "role", f
		},
	}
	want := map[string]string{"kubernetes token file missing": "read service account token", "approle refused": "permission denied"}
	for name, configure := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := Defaults().Vault
			cfg.Addr = srv.URL
			cfg.Timeout = 5 * time.Second
			configure(&cfg)
			_, _, err := openVault(context.Background(), cfg, logrus.New(), NewRedactor())
			if err == nil || !strings.Contains(err.Error(), want[name]) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error = %v, want one line mentioning %q", err, want[name])
			}
		})
	}
}
