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
// its credential file on SIGHUP; "command" is a reload command the agent runs.
const helperEnv = "SIDECAR_TEST_HELPER"

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
	case "command":
		// Check the file holds a password line, then record what the agent passed.
		files := strings.Split(os.Getenv("ROTATION_FILES"), ":")
		raw, err := os.ReadFile(files[0])
		if err != nil || !strings.Contains(string(raw), "DB_PASSWORD=") {
			return 3
		}
		line := strings.Join([]string{os.Getenv("ROTATION_CREDENTIAL"), os.Getenv("ROTATION_DELIVERY_TOKEN"), strings.Join(os.Args[1:], " ")}, "|")
		if err := os.WriteFile(out, []byte(line), 0o600); err != nil {
			return 4
		}
		return 0
	}
	return 1
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
				// The child inherits the helper variable; this process read it at start only.
				t.Setenv(helperEnv, "command")
				t.Setenv("SIDECAR_TEST_OUT", out)
				cfg.Sidecar.NotifyCommand = []string{os.Args[0], "reload", "--graceful"}
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
			if !oldVersionDestroyed(t, v) {
				t.Error("old version not retired after the confirmation")
			}
		})
	}
}
