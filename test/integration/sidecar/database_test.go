package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/delivery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
	"github.com/rotation-agent/rotation-agent/test/harness/postgres"
)

// A database static role rotated by the sidecar reaches the application as a JSON file; the
// application logs in to PostgreSQL with it before it reports the new credential in use, so
// the confirmation proves the new password works for the application.
func TestSidecarDeliversDatabaseStaticRole(t *testing.T) {
	v := harness.StartVault(t)
	pg := postgres.Start(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	const user = "payments_app"
	if err := v.Root.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Root.Logical().Write("database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": pg.VaultConnectionURL(),
		"username": pg.Superuser, "password": pg.Password, "allowed_roles": "*", "verify_connection": true,
	}); err != nil {
		t.Fatal(err)
	}
	pg.CreateLoginRole(t, user, "canary-initial-db-password-31", false)
	if _, err := v.Root.Logical().Write("database/static-roles/payments", map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "720h",
	}); err != nil {
		t.Fatal(err)
	}
	oldPassword := staticPassword(t, v)

	dir := t.TempDir()
	file := filepath.Join(dir, "db.json")
	var mu sync.Mutex
	inUse, loginErr := "", ""
	app := http.NewServeMux()
	app.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		raw, err := os.ReadFile(file)
		tok, err2 := os.ReadFile(delivery.VersionPath(file))
		var creds struct{ User, Password string }
		if err == nil && err2 == nil {
			err = json.Unmarshal(raw, &creds)
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err = pg.CanLogin(ctx, creds.User, creds.Password)
			cancel()
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			loginErr = err.Error()
			http.Error(w, "cannot log in with the new credential", http.StatusInternalServerError)
			return
		}
		inUse = strings.TrimSpace(string(tok))
	})
	app.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = fmt.Fprintf(w, `{"db_credential":%q}`, inUse)
	})
	srv := httptest.NewServer(app)
	defer srv.Close()

	cfg := sidecarConfigWithSinks(t, v, token, n, srv.URL, fmt.Sprintf(`version: 1
sinks:
  - credential: database-static-role:database/payments
    path: %s
    format: json
    fields: [{from: username, as: user}, {from: password}]
`, file))
	ra := harness.StartAgent(t, cfg)
	ref := events.CredentialRef{Kind: "database-static-role", Mount: "database", Path: "payments", Options: map[string]string{"sidecar": "payments"}}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-SC-DB", ref), "")
	ev := bus.WaitEvidence(t, "CHG-SC-DB", waitEvidence)
	validateEvidence(t, ev)

	c := ev.Data.Credentials[0]
	if c.Outcome != events.OutcomeRotated || c.Delivery == nil || c.Delivery.ConfirmedAt == nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("evidence = %+v / %+v (application login error: %s)", c, c.Delivery, loginErr)
	}
	newPassword := staticPassword(t, v)
	if newPassword == oldPassword {
		t.Fatal("the static role's password did not change")
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(raw, &got); err != nil || got["user"] != user || got["password"] != newPassword || len(got) != 2 {
		t.Errorf("JSON file does not hold the static role's new credential from vault (%v)", err)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode().Perm())
	}
	mu.Lock()
	confirmedToken := inUse
	mu.Unlock()
	if confirmedToken != c.Delivery.Token {
		t.Errorf("application uses token %q, evidence says %q", confirmedToken, c.Delivery.Token)
	}
	ra.Stop(t)
	drive.AssertNoLeak(t,
		map[string]string{"old password": oldPassword, "new password": newPassword, "agent token": token},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}

func staticPassword(t *testing.T, v *harness.Vault) string {
	t.Helper()
	s, err := v.Root.Logical().Read("database/static-creds/payments")
	if err != nil || s == nil {
		t.Fatalf("read static-creds: %v", err)
	}
	pw, _ := s.Data["password"].(string)
	if pw == "" {
		t.Fatal("static role has no password")
	}
	return pw
}
