package sidecar

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/delivery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// helperEnv makes the test binary play the application: "on-hup" is a process that reloads
// its credential file on SIGHUP.
const helperEnv = "SIDECAR_TEST_HELPER"

// commandArg, as the first argument, makes the test binary the reload command the agent runs
// (the command does not inherit the agent's environment, so it cannot learn this from
// helperEnv); the second argument names the file it records to.
const commandArg = "sidecar-test-command"

// runHelper is the test binary as the application; it returns the exit status.
func runHelper(mode string) int {
	out := os.Getenv("SIDECAR_TEST_OUT")
	switch mode {
	case "on-hup":
		// Write the pid file, then on every SIGHUP take the credential file up: record the
		// token next to it as the one in use (the test's health URL reports it).
		file := os.Getenv("SIDECAR_TEST_FILE")
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		if err := os.WriteFile(out+".pid", []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			return 2
		}
		for range hup {
			if _, err := os.ReadFile(file); err != nil {
				continue
			}
			if tok, err := os.ReadFile(delivery.VersionPath(file)); err == nil {
				_ = os.WriteFile(out, tok, 0o600)
			}
		}
		return 0
	}
	return 1
}

// runCommand is the test binary as the reload command: it checks the file holds a password
// line, then records what the agent passed (the notice and the arguments after out) in out
// and its whole environment in out.env. It returns the exit status.
func runCommand(out string, args []string) int {
	files := strings.Split(os.Getenv("ROTATION_FILES"), ":")
	raw, err := os.ReadFile(files[0])
	if err != nil || !strings.Contains(string(raw), "DB_PASSWORD=") {
		return 3
	}
	line := strings.Join([]string{os.Getenv("ROTATION_CREDENTIAL"), os.Getenv("ROTATION_DELIVERY_TOKEN"), strings.Join(args, " ")}, "|")
	if err := os.WriteFile(out, []byte(line), 0o600); err != nil {
		return 4
	}
	if err := os.WriteFile(out+".env", []byte(strings.Join(os.Environ(), "\n")), 0o600); err != nil {
		return 5
	}
	return 0
}

// The agent reaches a real application process: a SIGHUP to the process in a pid file
// (confirmed on the health URL once the process took the file up), or a reload command run
// without a shell (confirmed by its exit status).
func TestSidecarSignalAndCommandNotifiers(t *testing.T) {
	for _, notify := range []string{agent.NotifySignal, agent.NotifyCommand} {
		t.Run(notify, func(t *testing.T) {
			v := harness.StartVault(t)
			n := harness.StartNATS(t)
			bus := harness.WatchBus(t, n)
			token := v.AgentToken(t)
			v.PutKV(t, "payments/db", map[string]any{"username": "payments_app", "password": "canary-sidecar-notifier-old-5"})
			dir := t.TempDir()
			file := filepath.Join(dir, "db.env")
			out := filepath.Join(t.TempDir(), "in-use")

			health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				tok, _ := os.ReadFile(out)
				_, _ = fmt.Fprintf(w, "in use: %s", strings.TrimSpace(string(tok)))
			}))
			defer health.Close()
			cfg := sidecarConfig(t, v, token, n, health.URL, dir)
			cfg.Sidecar.Notify = notify
			switch notify {
			case agent.NotifySignal:
				app := exec.Command(os.Args[0])
				app.Env = append(os.Environ(), helperEnv+"=on-hup", "SIDECAR_TEST_OUT="+out, "SIDECAR_TEST_FILE="+file)
				if err := app.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { _ = app.Process.Kill(); _ = app.Wait() }()
				deadline := time.Now().Add(30 * time.Second)
				for _, err := os.Stat(out + ".pid"); err != nil; _, err = os.Stat(out + ".pid") {
					if time.Now().After(deadline) {
						t.Fatal("the application process did not start")
					}
					time.Sleep(20 * time.Millisecond)
				}
				cfg.Sidecar.NotifyPIDFile = out + ".pid"
				cfg.Sidecar.Confirm = agent.ConfirmByHealth // a signal cannot confirm
			case agent.NotifyCommand:
				cfg.Sidecar.NotifyCommand = []string{os.Args[0], commandArg, out, "reload", "--graceful"}
				// The agent's secrets in its environment, the way an operator sets them.
				t.Setenv("VAULT_TOKEN", token)
				t.Setenv("ROTATION_AGENT_VAULT_TOKEN", token)
				t.Setenv("ROTATION_AGENT_NATS_PASSWORD", "canary-sidecar-nats-password")
				cfg.Sidecar.Confirm = agent.ConfirmByHook
			}
			harness.StartAgent(t, cfg)

			bus.Publish(t, harness.ChangeEvent(t, "CHG-SC-N", sidecarRef(map[string]string{"overlap": "0s"})), "")
			ev := bus.WaitEvidence(t, "CHG-SC-N", waitEvidence)
			validateEvidence(t, ev)
			c := ev.Data.Credentials[0]
			if c.Outcome != events.OutcomeRotated || c.OldCredential != "retired" || c.Delivery == nil || c.Delivery.ConfirmedAt == nil || c.Delivery.Notify != notify {
				t.Fatalf("evidence = %+v / %+v", c, c.Delivery)
			}
			got, _ := os.ReadFile(out)
			want := c.Delivery.Token
			if notify == agent.NotifyCommand {
				want = "kv-v2:secret/payments/db|" + c.Delivery.Token + "|reload --graceful"
			}
			if strings.TrimSpace(string(got)) != want {
				t.Errorf("the application recorded %q, want %q", got, want)
			}
			if notify == agent.NotifyCommand {
				assertCommandEnv(t, out+".env", token)
			}
			if !oldVersionDestroyed(t, v) {
				t.Error("old version not retired after the confirmation")
			}
		})
	}
}

// assertCommandEnv checks the reload command's recorded environment: the notice and PATH, HOME
// and LANG at most, and neither the agent's Vault token nor any other agent setting.
func assertCommandEnv(t *testing.T, path, token string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the reload command did not record its environment: %v", err)
	}
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "ROTATION_CREDENTIAL": true, "ROTATION_FILES": true, "ROTATION_DELIVERY_TOKEN": true}
	for _, kv := range strings.Split(string(raw), "\n") {
		name, _, _ := strings.Cut(kv, "=")
		if !allowed[name] {
			t.Errorf("the reload command's environment holds %s", name)
		}
		if strings.Contains(kv, token) || strings.Contains(kv, "canary-sidecar-nats-password") {
			t.Errorf("the reload command's environment holds an agent secret in %s", name)
		}
	}
}
