// Package sidecar runs the agent in sidecar mode against a real in-process Vault core and a
// real NATS JetStream server, with an application (an HTTP server in the test) that reads the
// files the agent writes, and asserts on the files, on Vault's own state and on the evidence.
package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/delivery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

const waitEvidence = 60 * time.Second

// app is the application beside the sidecar. On POST /reload it reads its env file and the
// token next to it, like an application reloading its configuration; GET /health reports the
// token of the credential it uses. With confirm false it never takes the new credential up.
type app struct {
	t       *testing.T
	file    string
	confirm bool
	// ignore is how many of the first reloads the application answers without taking up the
	// new credential (it is still starting, say).
	ignore int
	// oldReadable tells, when the application first reports the new credential, whether the
	// old one still worked then (it must: the agent retires it only after this report).
	oldReadable func() bool

	mu           sync.Mutex
	reloads      int
	password     string
	token        string
	oldAtConfirm *bool
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		var n delivery.Notice
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		env, err1 := os.ReadFile(a.file)
		tok, err2 := os.ReadFile(delivery.VersionPath(a.file))
		if err1 != nil || err2 != nil {
			http.Error(w, "files not readable", http.StatusInternalServerError)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.reloads++
		if !a.confirm || a.reloads <= a.ignore {
			return // answers the hook but keeps using the old credential
		}
		for _, line := range strings.Split(string(env), "\n") {
			if v, ok := strings.CutPrefix(line, "DB_PASSWORD="); ok {
				a.password = v
			}
		}
		a.token = strings.TrimSpace(string(tok))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.token != "" && a.oldAtConfirm == nil {
			old := a.oldReadable()
			a.oldAtConfirm = &old
		}
		_, _ = fmt.Fprintf(w, `{"status":"ok","credential_token":%q}`, a.token)
	})
	return mux
}

// sidecarConfig is an agent configuration in sidecar mode for application "payments": an env
// file sink for the KV secret payments/db, an HTTP reload hook, confirmation on the health URL.
func sidecarConfig(t *testing.T, v *harness.Vault, token string, n *harness.NATS, appURL, dir string) agent.Config {
	t.Helper()
	return sidecarConfigWithSinks(t, v, token, n, appURL, fmt.Sprintf(`version: 1
sinks:
  - credential: kv-v2:secret/payments/db
    path: %s
    format: env
    fields:
      - {from: username, as: DB_USER}
      - {from: password, as: DB_PASSWORD}
`, filepath.Join(dir, "db.env")))
}

// sidecarConfigWithSinks is sidecarConfig with the sinks file given.
func sidecarConfigWithSinks(t *testing.T, v *harness.Vault, token string, n *harness.NATS, appURL, content string) agent.Config {
	t.Helper()
	sinks := filepath.Join(t.TempDir(), "sinks.yaml")
	if err := os.WriteFile(sinks, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.AgentConfig(t, v, token, n)
	cfg.AgentID = "payments-sidecar"
	cfg.RetireInterval = time.Second
	cfg.Sidecar.App = "payments"
	cfg.Sidecar.SinksFile = sinks
	cfg.Sidecar.Notify = agent.NotifyHTTP
	cfg.Sidecar.NotifyURL = appURL + "/reload"
	cfg.Sidecar.Confirm = agent.ConfirmByHealth
	cfg.Sidecar.HealthURL = appURL + "/health"
	cfg.Sidecar.ConfirmTimeout = 5 * time.Second
	cfg.Sidecar.ConfirmInterval = 200 * time.Millisecond
	return cfg
}

func sidecarRef(options map[string]string) events.CredentialRef {
	opts := map[string]string{"sidecar": "payments", "retire": "destroy"}
	for k, v := range options {
		opts[k] = v
	}
	return events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "payments/db", Fields: []string{"password"}, Options: opts}
}

func oldVersionDestroyed(t *testing.T, v *harness.Vault) bool {
	t.Helper()
	meta, err := v.Root.KVv2("secret").GetMetadata(context.Background(), "payments/db")
	if err != nil {
		t.Fatal(err)
	}
	return meta.Versions["1"].Destroyed
}

func validateEvidence(t *testing.T, env events.Envelope[events.Evidence]) {
	t.Helper()
	schema, err := events.Schema("schema/evidence.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	var doc any
	_ = json.Unmarshal(raw, &doc)
	if err := schema.Validate(doc); err != nil {
		t.Errorf("published evidence does not match its schema: %v\n%s", err, raw)
	}
}

// The sidecar writes the new password to the application's env file (mode 0600), tells the
// application, waits until the application reports it uses the new credential, and only then
// destroys the old version; the evidence records the delivery.
func TestSidecarDeliversAndRetiresAfterConfirmation(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	const oldPassword = "canary-sidecar-old-password-7c1e"
	v.PutKV(t, "payments/db", map[string]any{"username": "payments_app", "password": oldPassword})

	dir := t.TempDir()
	a := &app{t: t, file: filepath.Join(dir, "db.env"), confirm: true}
	a.oldReadable = func() bool {
		meta, err := v.Root.KVv2("secret").GetMetadata(context.Background(), "payments/db")
		return err == nil && !meta.Versions["1"].Destroyed
	}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	ra := harness.StartAgent(t, sidecarConfig(t, v, token, n, srv.URL, dir))

	bus.Publish(t, harness.ChangeEvent(t, "CHG-SC-1", sidecarRef(map[string]string{"overlap": "0s"})), "")
	ev := bus.WaitEvidence(t, "CHG-SC-1", waitEvidence)
	validateEvidence(t, ev)

	current := v.KV(t, "payments/db", 0)
	newPassword, _ := current.Data["password"].(string)
	if current.VersionMetadata.Version != 2 || newPassword == "" || newPassword == oldPassword {
		t.Fatalf("vault holds version %d; want a new password in version 2", current.VersionMetadata.Version)
	}
	// The file holds what Vault holds, readable by its owner only.
	raw, err := os.ReadFile(a.file)
	if err != nil {
		t.Fatal(err)
	}
	if want := "DB_USER=payments_app\nDB_PASSWORD=" + newPassword + "\n"; string(raw) != want {
		t.Errorf("env file does not hold the new credential from vault")
	}
	info, _ := os.Stat(a.file)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v, want 0600", info.Mode().Perm())
	}
	a.mu.Lock()
	appPassword, oldAtConfirm := a.password, a.oldAtConfirm
	a.mu.Unlock()
	if appPassword != newPassword {
		t.Errorf("the application did not load the new password on notification")
	}
	if oldAtConfirm == nil || !*oldAtConfirm {
		t.Errorf("the old version was destroyed before the application confirmed the new one")
	}

	if len(ev.Data.Credentials) != 1 {
		t.Fatalf("evidence has %d credentials, want 1", len(ev.Data.Credentials))
	}
	c := ev.Data.Credentials[0]
	d := c.Delivery
	if c.Outcome != events.OutcomeRotated || c.OldCredential != "retired" || d == nil {
		t.Fatalf("credential evidence = %+v, want rotated, retired, with a delivery", c)
	}
	if d.Application != "payments" || d.Notify != "http" || d.Confirmation != "health" || d.ConfirmedAt == nil ||
		d.WrittenAt == nil || d.NotifiedAt == nil || len(d.Files) != 1 || d.Files[0] != a.file || d.Error != "" {
		t.Errorf("delivery evidence = %+v", d)
	}
	if d.ConfirmedAt != nil && (c.RetiredAt == nil || c.RetiredAt.Before(*d.ConfirmedAt)) {
		t.Errorf("retired at %v, before the confirmation at %v", c.RetiredAt, d.ConfirmedAt)
	}
	if tok, _ := os.ReadFile(delivery.VersionPath(a.file)); strings.TrimSpace(string(tok)) != d.Token {
		t.Errorf("token file %q, evidence token %q", tok, d.Token)
	}
	if !oldVersionDestroyed(t, v) {
		t.Error("old version not destroyed after the confirmation")
	}
	if ev.Data.Agent.ID != "payments-sidecar" || !strings.HasSuffix(ev.ID, ":sidecar:payments") {
		t.Errorf("evidence id %q agent %q", ev.ID, ev.Data.Agent.ID)
	}
	assertMetric(t, ra, `rotation_agent_sidecar_deliveries_total{result="confirmed"} 1`)

	ra.Stop(t)
	drive.AssertNoLeak(t,
		map[string]string{"old password": oldPassword, "new password": newPassword, "agent token": token},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}

// An application that never takes the new credential up keeps its old one: the sidecar
// gives up after its confirm timeout, does not retire the old version, and says so.
func TestSidecarKeepsOldCredentialWithoutConfirmation(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	const oldPassword = "canary-sidecar-kept-password-19ad"
	v.PutKV(t, "payments/db", map[string]any{"username": "payments_app", "password": oldPassword})

	dir := t.TempDir()
	a := &app{t: t, file: filepath.Join(dir, "db.env"), confirm: false, oldReadable: func() bool { return true }}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	cfg := sidecarConfig(t, v, token, n, srv.URL, dir)
	cfg.Sidecar.ConfirmTimeout = 2 * time.Second
	ra := harness.StartAgent(t, cfg)

	bus.Publish(t, harness.ChangeEvent(t, "CHG-SC-2", sidecarRef(map[string]string{"overlap": "0s"})), "")
	ev := bus.WaitEvidence(t, "CHG-SC-2", waitEvidence)
	validateEvidence(t, ev)
	c := ev.Data.Credentials[0]
	if c.Outcome != events.OutcomeNeedsReconcile || c.OldCredential != events.OldCredentialKept || c.RetiredAt != nil {
		t.Fatalf("credential evidence = %+v, want needs_reconcile with the old credential kept", c)
	}
	if c.Delivery == nil || c.Delivery.ConfirmedAt != nil || !strings.Contains(c.Delivery.Error, "does not report the new credential") ||
		!strings.Contains(c.Error, "did not confirm") {
		t.Errorf("evidence does not say the application never confirmed: %+v / %+v", c, c.Delivery)
	}
	if oldVersionDestroyed(t, v) {
		t.Error("old version destroyed although the application never confirmed the new one")
	}
	if old := v.KV(t, "payments/db", 1); old.Data["password"] != oldPassword {
		t.Error("old password no longer readable")
	}
	a.mu.Lock()
	reloads := a.reloads
	a.mu.Unlock()
	if reloads != 1 {
		t.Errorf("application notified %d times, want 1 (one delivery)", reloads)
	}
	assertMetric(t, ra, `rotation_agent_sidecar_deliveries_total{result="unconfirmed"} 1`)
	newPassword, _ := v.KV(t, "payments/db", 0).Data["password"].(string)
	ra.Stop(t)
	drive.AssertNoLeak(t,
		map[string]string{"old password": oldPassword, "new password": newPassword, "agent token": token},
		map[string][]string{"agent log": {ra.Log.String()}, "bus": bus.Payloads()})
}

// A central agent and a sidecar on the same bus share one change: each acts only on its own
// credential and publishes its own evidence; neither takes the other's work.
func TestCentralAgentLeavesSidecarCredentialsAlone(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	v.PutKV(t, "payments/db", map[string]any{"username": "payments_app", "password": "canary-shared-old-1"})
	v.PutKV(t, "orders/api", map[string]any{"api_key": "canary-orders-old-key-2"})

	dir := t.TempDir()
	a := &app{t: t, file: filepath.Join(dir, "db.env"), confirm: true, oldReadable: func() bool { return true }}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	harness.StartAgent(t, sidecarConfig(t, v, token, n, srv.URL, dir))
	central := harness.AgentConfig(t, v, token, n)
	central.AgentID = "central"
	harness.StartAgent(t, central)

	orders := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "orders/api"}
	bus.Publish(t, harness.ChangeEvent(t, "CHG-SC-3", sidecarRef(map[string]string{"overlap": "0s"}), orders), "")
	byAgent := map[string][]string{}
	for _, ev := range bus.WaitEvidenceCount(t, "CHG-SC-3", 2, waitEvidence) { // one from each agent
		validateEvidence(t, ev)
		for _, c := range ev.Data.Credentials {
			if c.Outcome != events.OutcomeRotated {
				t.Errorf("%s: %s outcome %s (%s)", ev.Data.Agent.ID, c.Credential, c.Outcome, c.Error)
			}
			byAgent[ev.Data.Agent.ID] = append(byAgent[ev.Data.Agent.ID], c.Credential)
		}
	}
	if got := byAgent["central"]; len(got) != 1 || got[0] != "kv-v2:secret/orders/api" {
		t.Errorf("central agent acted on %v, want only orders/api", got)
	}
	if got := byAgent["payments-sidecar"]; len(got) != 1 || got[0] != "kv-v2:secret/payments/db" {
		t.Errorf("sidecar acted on %v, want only payments/db", got)
	}
	if v.KV(t, "payments/db", 0).VersionMetadata.Version != 2 || v.KV(t, "orders/api", 0).VersionMetadata.Version != 2 {
		t.Error("each secret must be rotated exactly once")
	}
}

// assertMetric fails the test unless the agent's /metrics holds line.
func assertMetric(t *testing.T, ra *harness.RunningAgent, line string) {
	t.Helper()
	resp, err := http.Get("http://" + ra.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), line+"\n") {
		t.Errorf("/metrics does not hold %s", line)
	}
}
