package database

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// fakeRole is a static role in the fake Vault.
type fakeRole struct {
	username string
	db       string
	password string
	lvr      time.Time
}

// fakeVault serves the parts of Vault's database engine (mounted at database/) and KV v2
// (mounted at secret/) the rotators use, and records every request.
type fakeVault struct {
	mu      sync.Mutex
	roles   map[string]*fakeRole
	configs map[string]map[string]any
	dynamic map[string]string // dynamic role -> db_name
	marker  map[string]any
	version int
	// fail answers "METHOD path" with the status instead of serving it.
	fail map[string]int
	// lostRotate rotates but answers 503, as a lost response would.
	lostRotate bool
	// markerRace bumps the marker version right before a write, as a concurrent writer would.
	markerRace bool
	requests   []string
	rotations  int
}

func newFake(t *testing.T) (*fakeVault, *vault.Client) {
	t.Helper()
	f := &fakeVault{
		roles: map[string]*fakeRole{
			"app":       {username: "app_user", db: "pg", password: "canary-app-password-0001", lvr: time.Now().Add(-time.Hour).UTC()},
			"app-blue":  {username: "app_blue", db: "pg", password: "canary-blue-password-0001", lvr: time.Now().Add(-time.Hour).UTC()},
			"app-green": {username: "app_green", db: "pg", password: "canary-green-password-001", lvr: time.Now().Add(-time.Hour).UTC()},
		},
		configs: map[string]map[string]any{
			"pg": {"plugin_name": postgresPlugin, "verify_connection": true, "connection_details": map[string]any{
				"connection_url": "postgresql://{{username}}:{{password}}@db.internal:5432/app?sslmode=disable", "username": "vault_admin"}},
			"noverify": {"plugin_name": postgresPlugin, "verify_connection": false, "connection_details": map[string]any{
				"connection_url": "postgresql://{{username}}:{{password}}@db.internal:5432/app", "username": "vault_admin"}},
		},
		dynamic: map[string]string{"check": "pg", "other": "noverify"},
		marker:  map[string]any{"active": "app-blue", "owner": "payments"},
		version: 1,
		fail:    map[string]int{},
	}
	return f, vaultfake.Client(t, f, "test-token")
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	key := r.Method + " " + path
	f.requests = append(f.requests, key)
	if code := f.fail[key]; code != 0 {
		vaultfake.WriteJSON(w, code, map[string]any{"errors": []string{fmt.Sprintf("injected %d", code)}})
		return
	}
	seg := strings.Split(path, "/")
	switch {
	case r.Method == http.MethodGet && len(seg) == 3 && seg[1] == "static-roles" && f.roles[seg[2]] != nil:
		role := f.roles[seg[2]]
		writeData(w, map[string]any{"username": role.username, "db_name": role.db, "last_vault_rotation": role.lvr.Format(time.RFC3339Nano), "rotation_period": 86400})
	case r.Method == http.MethodGet && len(seg) == 3 && seg[1] == "static-creds" && f.roles[seg[2]] != nil:
		role := f.roles[seg[2]]
		writeData(w, map[string]any{"username": role.username, "password": role.password, "last_vault_rotation": role.lvr.Format(time.RFC3339Nano)})
	case r.Method == http.MethodPut && len(seg) == 3 && seg[1] == "rotate-role" && f.roles[seg[2]] != nil:
		role := f.roles[seg[2]]
		f.rotations++
		role.password = fmt.Sprintf("canary-rotated-password-%04d", f.rotations)
		role.lvr = time.Now().UTC()
		if f.lostRotate {
			vaultfake.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []string{"lost"}})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && len(seg) == 3 && seg[1] == "rotate-role":
		vaultfake.WriteJSON(w, http.StatusBadRequest, map[string]any{"errors": []string{"no static role found for role name"}})
	case r.Method == http.MethodGet && len(seg) == 3 && seg[1] == "config" && f.configs[seg[2]] != nil:
		writeData(w, f.configs[seg[2]])
	case r.Method == http.MethodGet && len(seg) == 3 && seg[1] == "roles" && f.dynamic[seg[2]] != "":
		writeData(w, map[string]any{"db_name": f.dynamic[seg[2]]})
	case r.Method == http.MethodPut && len(seg) == 3 && (seg[1] == "rotate-root" || seg[1] == "reset"):
		if seg[1] == "rotate-root" {
			f.rotations++
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "sys/leases/revoke/"):
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && path == "secret/data/db/active":
		writeData(w, map[string]any{"data": f.marker, "metadata": map[string]any{"version": f.version, "created_time": time.Now().UTC().Format(time.RFC3339Nano), "deletion_time": "", "destroyed": false}})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && path == "secret/data/db/active":
		var body struct {
			Data    map[string]any `json:"data"`
			Options struct {
				CAS int `json:"cas"`
			} `json:"options"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if f.markerRace {
			f.version++
			f.markerRace = false
		}
		if body.Options.CAS != f.version {
			vaultfake.WriteJSON(w, http.StatusBadRequest, map[string]any{"errors": []string{"check-and-set parameter did not match the current version"}})
			return
		}
		f.marker, f.version = body.Data, f.version+1
		writeData(w, map[string]any{"version": f.version, "created_time": time.Now().UTC().Format(time.RFC3339Nano), "deletion_time": "", "destroyed": false})
	default:
		vaultfake.WriteJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
	}
}

func writeData(w http.ResponseWriter, data map[string]any) {
	vaultfake.WriteJSON(w, http.StatusOK, map[string]any{"data": data})
}

// snapshot returns the requests so far and the number of rotations.
func (f *fakeVault) snapshot() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...), f.rotations
}

func (f *fakeVault) password(role string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.roles[role].password
}

// fakeDB stands for the database: it accepts the passwords it was told about.
type fakeDB struct {
	mu       sync.Mutex
	accepted map[string]string // user -> password
	down     bool
	targets  []string
}

func (d *fakeDB) login(_ context.Context, tg *target, user, password string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets = append(d.targets, tg.String())
	if d.down {
		return fmt.Errorf("%w: user %q: dial tcp: connection refused", errUnreachable, user)
	}
	if d.accepted[user] != password {
		return fmt.Errorf("%w: user %q: SQLSTATE 28P01", errLoginRefused, user)
	}
	return nil
}

// syncDB makes the fake database accept what the fake Vault holds for every role.
func (d *fakeDB) syncDB(f *fakeVault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range f.roles {
		d.accepted[r.username] = r.password
	}
}

// testReq returns a request with an in-memory journal; failSave makes every save fail.
func testReq(ref events.CredentialRef, saves *[]rotators.State, failSave *bool) rotators.Request {
	return rotators.Request{
		ChangeID:   "CHG-UNIT",
		Credential: ref,
		Save: func(_ context.Context, st *rotators.State) error {
			if failSave != nil && *failSave {
				return errors.New("journal down")
			}
			b, _ := json.Marshal(st)
			var c rotators.State
			_ = json.Unmarshal(b, &c)
			*saves = append(*saves, c)
			return nil
		},
		Generate: func(context.Context) (string, error) { return "", errors.New("not used") },
		Now:      time.Now,
	}
}

// noSecrets fails the test if any canary password appears in text.
func noSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, "canary-") {
			t.Errorf("a password leaked: %q", s)
		}
	}
}
