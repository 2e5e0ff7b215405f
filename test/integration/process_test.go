package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// processEnv configures an agent process through its environment, signing evidence with the
// test key; extra settings come last and win.
func processEnv(v *harness.Vault, token string, n *harness.NATS, extra ...string) []string {
	cfg := harness.AgentConfigWithKey(v, token, n, evidenceKeyFile)
	cfg.AgentID = "process-agent"
	return harness.ProcessEnv(cfg, extra...)
}

// A crash at any journal step, or right after Vault accepted the write, is resumed by the next
// agent: the change gets evidence and the secret is rotated exactly once.
func TestCrashAtEveryStepRotatesExactlyOnce(t *testing.T) {
	points := []string{
		failpoint.AfterJournal + "apply", // intent to write recorded, nothing written
		failpoint.AfterVaultWrite,        // Vault accepted the write, the result is not recorded
		failpoint.AfterStep + "apply",    // the write is recorded, not verified
		failpoint.AfterStep + "promote",  // promoted, no evidence published
	}
	v := harness.StartVault(t)
	token := v.AgentToken(t)
	for i, point := range points {
		t.Run(point, func(t *testing.T) {
			n := harness.StartNATS(t)
			bus := harness.WatchBus(t, n)
			path := "crash/" + strings.ReplaceAll(point, "-", "")
			const oldValue = "canary-crash-value-9f8e7d"
			v.PutKV(t, path, map[string]any{"password": oldValue})
			changeID := "CHG-CRASH-" + string(rune('A'+i))

			crashing := harness.StartProcess(t, agentBinary, processEnv(v, token, n, failpoint.EnvVar+"="+point))
			crashing.WaitReady(t, 30*time.Second)
			bus.Publish(t, harness.ChangeEvent(t, changeID, kvRef(path)), changeID)
			if code := crashing.Wait(t, 30*time.Second); code != failpoint.ExitCode {
				t.Fatalf("agent exited %d, want the failpoint's %d; output:\n%s", code, failpoint.ExitCode, crashing.Output.String())
			}
			if got := len(bus.Evidence(t, changeID)); got != 0 {
				t.Fatalf("evidence published before the crash: %d", got)
			}

			restarted := harness.StartProcess(t, agentBinary, processEnv(v, token, n))
			ev := bus.WaitEvidence(t, changeID, 60*time.Second)
			c := ev.Data.Credentials[0]
			if c.Outcome != "rotated" || versionOf(t, c.Before) != 1 || versionOf(t, c.After) != 2 {
				t.Errorf("evidence after restart = %+v, want rotated 1 -> 2", c)
			}
			if !c.Resumed || !c.Verified {
				t.Errorf("evidence does not say the rotation was resumed and verified: %+v", c)
			}
			current := v.KV(t, path, 0)
			if current.VersionMetadata.Version != 2 {
				t.Errorf("secret at version %d after crash and restart, want 2: rotated more than once", current.VersionMetadata.Version)
			}
			if current.Data["password"] == oldValue {
				t.Errorf("secret was not rotated")
			}
			_ = restarted.Cmd.Process.Signal(interruptSignal)
			if code := restarted.Wait(t, 30*time.Second); code != 0 {
				t.Errorf("restarted agent exited %d on SIGTERM, want 0; output:\n%s", code, restarted.Output.String())
			}
			assertNoLeak(t, map[string]string{"old value": oldValue, "new value": current.Data["password"].(string), "token": token},
				map[string][]string{"agent output": {crashing.Output.String(), restarted.Output.String()}, "bus": bus.Payloads()})
		})
	}
}

// Start-up problems are one clear line each and a non-zero exit, never a stack trace.
func TestStartupErrorsAreClear(t *testing.T) {
	v := harness.StartVault(t)
	n := harness.StartNATS(t)
	token := v.AgentToken(t)
	cases := []struct {
		name    string
		env     []string
		code    int
		mention string
	}{
		{"wrong config value", processEnv(v, token, n, "ROTATION_AGENT_NATS_ACK_WAIT=soon"), 2, "ROTATION_AGENT_NATS_ACK_WAIT"},
		{"invalid config", processEnv(v, token, n, "ROTATION_AGENT_VAULT_AUTH_METHOD=password"), 2, "ROTATION_AGENT_VAULT_AUTH_METHOD"},
		{"vault unreachable", processEnv(v, token, n, "ROTATION_AGENT_VAULT_ADDR=https://127.0.0.1:1", "ROTATION_AGENT_STARTUP_TIMEOUT=3s"), 1, "vault at https://127.0.0.1:1"},
		{"vault rejects token", processEnv(v, "hvs.not-a-real-token-000000000000", n), 1, "permission denied"},
		// The default signer, without the transit key: the line says what to create.
		{"no evidence signing key", processEnv(v, token, n, "ROTATION_AGENT_EVIDENCE_SIGNER=transit"), 1, "vault write transit/keys/rotation-agent-evidence type=ed25519"},
		{"nats unreachable", processEnv(v, token, n, "ROTATION_AGENT_NATS_URL=nats://127.0.0.1:1", "ROTATION_AGENT_STARTUP_TIMEOUT=3s"), 1, "nats at nats://127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := harness.StartProcess(t, agentBinary, tc.env)
			code := p.Wait(t, 30*time.Second)
			out := p.Output.String()
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			var errLines []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(line, "rotation-agent: ") {
					errLines = append(errLines, line)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.mention) {
				t.Errorf("want one error line mentioning %q, got %q", tc.mention, errLines)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Errorf("output has a stack trace:\n%s", out)
			}
			if strings.Contains(out, token) {
				t.Errorf("output holds the Vault token")
			}
		})
	}
}
