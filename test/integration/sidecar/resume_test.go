package sidecar

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

// An agent killed after the files were written, or after the application was notified, is
// resumed by the next one from the journal: the application is notified exactly once, the
// old credential is retired only after the application confirmed, and the secret is rotated
// once.
func TestSidecarCrashDuringDeliveryResumes(t *testing.T) {
	v := harness.StartVault(t)
	token := v.AgentToken(t)
	for i, part := range []string{"written", "notified"} {
		t.Run(part, func(t *testing.T) {
			n := harness.StartNATS(t)
			bus := harness.WatchBus(t, n)
			const oldPassword = "canary-sidecar-crash-password-4b"
			path := "payments/db"
			if i > 0 {
				// A fresh Vault secret per case: delete the previous case's versions.
				if err := v.Root.KVv2("secret").DeleteMetadata(t.Context(), path); err != nil {
					t.Fatal(err)
				}
			}
			v.PutKV(t, path, map[string]any{"username": "payments_app", "password": oldPassword})
			dir := t.TempDir()
			a := &app{t: t, file: filepath.Join(dir, "db.env"), confirm: true}
			a.oldReadable = func() bool {
				meta, err := v.Root.KVv2("secret").GetMetadata(t.Context(), path)
				return err == nil && !meta.Versions["1"].Destroyed
			}
			srv := httptest.NewServer(a.handler())
			defer srv.Close()
			cfg := sidecarConfig(t, v, token, n, srv.URL, dir)
			cfg.AgentID = "payments-sidecar"
			env := harness.ProcessEnv(cfg,
				"ROTATION_AGENT_SIDECAR_APP=payments",
				"ROTATION_AGENT_SIDECAR_SINKS_FILE="+cfg.Sidecar.SinksFile,
				"ROTATION_AGENT_SIDECAR_NOTIFY=http",
				"ROTATION_AGENT_SIDECAR_NOTIFY_URL="+cfg.Sidecar.NotifyURL,
				"ROTATION_AGENT_SIDECAR_CONFIRM=health",
				"ROTATION_AGENT_SIDECAR_HEALTH_URL="+cfg.Sidecar.HealthURL,
				"ROTATION_AGENT_SIDECAR_CONFIRM_TIMEOUT=5s",
				"ROTATION_AGENT_SIDECAR_CONFIRM_INTERVAL=200ms",
			)
			changeID := "CHG-SC-CRASH-" + part
			crashing := harness.StartProcess(t, agentBinary, append(env, failpoint.EnvVar+"="+failpoint.AfterDelivery+part))
			crashing.WaitReady(t, 30*time.Second)
			bus.Publish(t, harness.ChangeEvent(t, changeID, sidecarRef(map[string]string{"overlap": "0s"})), "")
			if code := crashing.Wait(t, 30*time.Second); code != failpoint.ExitCode {
				t.Fatalf("agent exited %d, want the failpoint's %d; output:\n%s", code, failpoint.ExitCode, crashing.Output.String())
			}
			if _, err := os.Stat(a.file); err != nil {
				t.Fatalf("the file was not written before the crash: %v", err)
			}
			if oldVersionDestroyed(t, v) {
				t.Fatal("old version destroyed before the application confirmed")
			}

			restarted := harness.StartProcess(t, agentBinary, env)
			ev := bus.WaitEvidence(t, changeID, waitEvidence)
			validateEvidence(t, ev)
			c := ev.Data.Credentials[0]
			if c.Outcome != events.OutcomeRotated || c.OldCredential != "retired" || !c.Resumed || c.Delivery == nil || c.Delivery.ConfirmedAt == nil {
				t.Fatalf("evidence after restart = %+v / %+v", c, c.Delivery)
			}
			current := v.KV(t, path, 0)
			if current.VersionMetadata.Version != 2 {
				t.Errorf("secret at version %d, want 2: rotated more than once", current.VersionMetadata.Version)
			}
			a.mu.Lock()
			reloads, oldAtConfirm, appPassword := a.reloads, a.oldAtConfirm, a.password
			a.mu.Unlock()
			if reloads != 1 {
				t.Errorf("application notified %d times, want exactly once", reloads)
			}
			if oldAtConfirm == nil || !*oldAtConfirm {
				t.Error("the old version was destroyed before the application confirmed")
			}
			if !oldVersionDestroyed(t, v) {
				t.Error("old version not destroyed after the confirmation")
			}
			newPassword, _ := current.Data["password"].(string)
			if appPassword != newPassword {
				t.Error("the application does not use the new password")
			}
			_ = restarted.Cmd.Process.Signal(syscall.SIGTERM)
			if code := restarted.Wait(t, 30*time.Second); code != 0 {
				t.Errorf("restarted agent exited %d on SIGTERM; output:\n%s", code, restarted.Output.String())
			}
			drive.AssertNoLeak(t, map[string]string{"old password": oldPassword, "new password": newPassword, "token": token},
				map[string][]string{"agent output": {crashing.Output.String(), restarted.Output.String()}, "bus": bus.Payloads()})
		})
	}
}

// An application that misses the first delivery but comes back within the overlap window gets
// the credential again when the window ends, confirms it, and only then is the old one retired.
func TestSidecarRetriesDeliveryWhenTheOverlapEnds(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	bus := harness.WatchBus(t, n)
	token := v.AgentToken(t)
	v.PutKV(t, "payments/db", map[string]any{"username": "payments_app", "password": "canary-sidecar-overlap-old-77"})
	dir := t.TempDir()
	a := &app{t: t, file: filepath.Join(dir, "db.env"), confirm: true, ignore: 1}
	a.oldReadable = func() bool {
		meta, err := v.Root.KVv2("secret").GetMetadata(t.Context(), "payments/db")
		return err == nil && !meta.Versions["1"].Destroyed
	}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	cfg := sidecarConfig(t, v, token, n, srv.URL, dir)
	cfg.Sidecar.ConfirmTimeout = time.Second
	harness.StartAgent(t, cfg)

	bus.Publish(t, harness.ChangeEvent(t, "CHG-SC-OV", sidecarRef(map[string]string{"overlap": "4s"})), "")
	first := bus.WaitEvidence(t, "CHG-SC-OV", waitEvidence)
	validateEvidence(t, first)
	c := first.Data.Credentials[0]
	if c.Outcome != events.OutcomeRotated || c.OldCredential != "retire_pending" || c.Delivery == nil ||
		c.Delivery.ConfirmedAt != nil || c.Delivery.Error == "" {
		t.Fatalf("first evidence = %+v / %+v, want retire pending with an unconfirmed delivery", c, c.Delivery)
	}
	second := bus.WaitEvidenceCount(t, "CHG-SC-OV", 2, waitEvidence)[1] // the retirement
	validateEvidence(t, second)
	rc := second.Data.Credentials[0]
	if rc.OldCredential != "retired" || rc.Delivery == nil || rc.Delivery.ConfirmedAt == nil || rc.Delivery.Error != "" {
		t.Fatalf("retirement evidence = %+v / %+v", rc, rc.Delivery)
	}
	a.mu.Lock()
	reloads, oldAtConfirm := a.reloads, a.oldAtConfirm
	a.mu.Unlock()
	if reloads != 2 {
		t.Errorf("application notified %d times, want 2 (after promote, and again when the window ended)", reloads)
	}
	if oldAtConfirm == nil || !*oldAtConfirm || !oldVersionDestroyed(t, v) {
		t.Error("the old version must be destroyed after the confirmation, and only then")
	}
}
