package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cleanEnv unsets every ROTATION_AGENT_* and VAULT_* variable for the test (restored after it),
// so the machine's own settings do not change what the command sees.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ROTATION_AGENT_") || strings.HasPrefix(name, "VAULT_") {
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// validEnv sets the smallest environment `config check` accepts.
func validEnv(t *testing.T) {
	t.Helper()
	cleanEnv(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:8200")
	t.Setenv("VAULT_TOKEN", "some-canary-token")
	// Any free port, so tests running side by side do not share the default one.
	t.Setenv("ROTATION_AGENT_METRICS_LISTEN", "127.0.0.1:0")
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = runCLI(ctx, args, &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// checkErrorLines asserts every line of stderr is a "rotation-agent: " line and none is a
// stack trace.
func checkErrorLines(t *testing.T, stderr string) []string {
	t.Helper()
	ls := lines(stderr)
	if len(ls) == 0 {
		t.Fatal("nothing on standard error")
	}
	for _, l := range ls {
		if !strings.HasPrefix(l, "rotation-agent: ") {
			t.Errorf("standard error line without the rotation-agent: prefix: %q", l)
		}
	}
	for _, bad := range []string{"goroutine ", "panic", ".go:"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("standard error looks like a crash (%q):\n%s", bad, stderr)
		}
	}
	return ls
}

// problemLines drops a bare "invalid configuration:" heading line, if the command prints one,
// leaving the lines that each report one problem.
func problemLines(ls []string) []string {
	var out []string
	for _, l := range ls {
		if strings.TrimSpace(strings.TrimPrefix(l, "rotation-agent: ")) != "invalid configuration:" {
			out = append(out, l)
		}
	}
	return out
}

// wantProblemLinesOnce checks stderr as checkErrorLines does and asserts that it reports
// exactly len(want) problems, one a line, and that each entry of want is in exactly one line.
func wantProblemLinesOnce(t *testing.T, stderr string, want []string) {
	t.Helper()
	ls := problemLines(checkErrorLines(t, stderr))
	if len(ls) != len(want) {
		t.Errorf("got %d problem lines, want %d:\n%s", len(ls), len(want), stderr)
	}
	for _, p := range want {
		n := 0
		for _, l := range ls {
			if strings.Contains(l, p) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines report %q, want 1:\n%s", n, p, stderr)
		}
	}
}

func TestUsageAndVersion(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no arguments", nil, exitUsage, "", "usage: rotation-agent <command>"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `rotation-agent: unknown command "frobnicate"`},
		{"config without check", []string{"config"}, exitUsage, "", "usage: rotation-agent"},
		{"config with other subcommand", []string{"config", "show"}, exitUsage, "", "usage: rotation-agent"},
		{"version", []string{"version"}, exitOK, "rotation-agent ", ""},
		{"--version", []string{"--version"}, exitOK, "rotation-agent ", ""},
		{"-v", []string{"-v"}, exitOK, "rotation-agent ", ""},
		{"help", []string{"help"}, exitOK, "usage: rotation-agent <command>", ""},
		{"-h", []string{"-h"}, exitOK, "config check", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if tc.wantStdout == "" && stdout != "" {
				t.Errorf("unexpected standard output:\n%s", stdout)
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("standard output lacks %q:\n%s", tc.wantStdout, stdout)
			}
			if tc.wantStderr == "" && stderr != "" {
				t.Errorf("unexpected standard error:\n%s", stderr)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("standard error lacks %q:\n%s", tc.wantStderr, stderr)
			}
		})
	}
}

func TestVersionLine(t *testing.T) {
	code, stdout, _ := run(t, "version")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	ls := lines(stdout)
	if len(ls) != 1 || !strings.HasPrefix(ls[0], "rotation-agent dev (go") {
		t.Errorf("version output %q, want one line \"rotation-agent dev (go...)\"", stdout)
	}
}

func TestConfigCheckMissingVaultAddr(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		wantProblems []string
	}{
		{"token set", map[string]string{"VAULT_TOKEN": "some-canary-token"}, []string{"ROTATION_AGENT_VAULT_ADDR (or VAULT_ADDR): required"}},
		{"nothing set", nil, []string{"ROTATION_AGENT_VAULT_ADDR (or VAULT_ADDR): required", "ROTATION_AGENT_VAULT_TOKEN (or VAULT_TOKEN)"}},
		{"VAULT_ADDR set but empty", map[string]string{"VAULT_ADDR": "", "VAULT_TOKEN": "some-canary-token"}, []string{"ROTATION_AGENT_VAULT_ADDR (or VAULT_ADDR): required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := run(t, "config", "check")
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			for _, want := range []string{"ROTATION_AGENT_VAULT_ADDR=\n", "ROTATION_AGENT_LOG_LEVEL=info\n", "ROTATION_AGENT_NATS_URL=nats://127.0.0.1:4222\n"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("standard output lacks the effective setting %q:\n%s", want, stdout)
				}
			}
			if strings.Contains(stdout, "configuration is valid") {
				t.Error("an invalid configuration was called valid")
			}
			if strings.Contains(stdout+stderr, "some-canary-token") {
				t.Error("the Vault token was printed")
			}
			wantProblemLinesOnce(t, stderr, tc.wantProblems)
		})
	}
}

func TestConfigCheckValid(t *testing.T) {
	validEnv(t)
	code, stdout, stderr := run(t, "config", "check")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("unexpected standard error:\n%s", stderr)
	}
	if strings.Contains(stdout, "some-canary-token") {
		t.Errorf("the Vault token appears in the output:\n%s", stdout)
	}
	for _, want := range []string{
		"ROTATION_AGENT_VAULT_ADDR=http://127.0.0.1:8200\n",
		"ROTATION_AGENT_VAULT_TOKEN=****** (set)\n",
		"configuration is valid\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("standard output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestConfigCheckTokenFile(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("hvs.CAESIFromAVaultAgentSinkXXXXXXXX\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:8200")
	t.Setenv("ROTATION_AGENT_VAULT_TOKEN_FILE", path)
	code, stdout, stderr := run(t, "config", "check")
	if code != exitOK {
		t.Errorf("exit code %d, want 0 for token-file auth; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "ROTATION_AGENT_VAULT_TOKEN_FILE="+path+"\n") {
		t.Errorf("standard output lacks the token file path:\n%s", stdout)
	}
	if strings.Contains(stdout+stderr, "FromAVaultAgentSink") {
		t.Error("the token read from the file was printed")
	}
}

func TestConfigCheckMissingSecretFile(t *testing.T) {
	validEnv(t)
	missing := filepath.Join(t.TempDir(), "nats-password")
	t.Setenv("ROTATION_AGENT_NATS_USER", "agent")
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD_FILE", missing)
	code, stdout, stderr := run(t, "config", "check")
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stdout, "ROTATION_AGENT_NATS_USER=agent\n") {
		t.Errorf("the effective configuration was not printed:\n%s", stdout)
	}
	ls := checkErrorLines(t, stderr)
	if len(ls) != 1 || !strings.Contains(ls[0], "ROTATION_AGENT_NATS_PASSWORD_FILE") || !strings.Contains(ls[0], missing) {
		t.Errorf("want one line naming ROTATION_AGENT_NATS_PASSWORD_FILE and the path, got:\n%s", stderr)
	}
}

func TestRunBadDuration(t *testing.T) {
	validEnv(t)
	t.Setenv("ROTATION_AGENT_NATS_ACK_WAIT", "abc")
	code, stdout, stderr := run(t, "run")
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if stdout != "" {
		t.Errorf("unexpected standard output:\n%s", stdout)
	}
	ls := checkErrorLines(t, stderr)
	if len(ls) != 1 {
		t.Errorf("got %d error lines, want 1:\n%s", len(ls), stderr)
	}
	for _, want := range []string{"ROTATION_AGENT_NATS_ACK_WAIT", `"abc"`} {
		if !strings.Contains(ls[0], want) {
			t.Errorf("error line %q lacks %s", ls[0], want)
		}
	}
}

func TestRunInvalidConfiguration(t *testing.T) {
	validEnv(t)
	t.Setenv("ROTATION_AGENT_LOG_LEVEL", "chatty")
	t.Setenv("ROTATION_AGENT_NATS_REPLICAS", "9")
	code, _, stderr := run(t, "run")
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	ls := problemLines(checkErrorLines(t, stderr))
	if len(ls) != 2 {
		t.Errorf("got %d problem lines, want 2:\n%s", len(ls), stderr)
	}
	for _, want := range []string{"ROTATION_AGENT_LOG_LEVEL", "ROTATION_AGENT_NATS_REPLICAS"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("standard error does not name %s:\n%s", want, stderr)
		}
	}
}

// Values that do not parse and values that parse but are wrong are all reported at once, by
// both commands; config check prints the settings the agent would use and marks the others.
func TestConfigProblemsOfEveryKindAtOnce(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nats-password")
	tests := []struct {
		name         string
		env          map[string]string
		wantProblems []string
		wantPrinted  []string
	}{
		{"parse and validation problems",
			map[string]string{"ROTATION_AGENT_NATS_ACK_WAIT": "soon", "ROTATION_AGENT_LOG_LEVEL": "chatty", "ROTATION_AGENT_NATS_REPLICAS": "9"},
			[]string{`ROTATION_AGENT_NATS_ACK_WAIT: "soon" is not a valid duration`, `ROTATION_AGENT_LOG_LEVEL: "chatty" is not a log level`, "ROTATION_AGENT_NATS_REPLICAS: 9 is out of range"},
			[]string{"ROTATION_AGENT_NATS_ACK_WAIT=(unusable: see the problems reported)\n", "ROTATION_AGENT_NATS_MAX_DELIVER=10\n",
				"ROTATION_AGENT_EVIDENCE_SIGNER=transit\n", "ROTATION_AGENT_VAULT_ADDR=http://127.0.0.1:8200\n", "ROTATION_AGENT_NATS_REPLICAS=9\n"}},
		{"missing secret file and a bad value",
			map[string]string{"ROTATION_AGENT_NATS_USER": "agent", "ROTATION_AGENT_NATS_PASSWORD_FILE": missing, "ROTATION_AGENT_LOG_LEVEL": "chatty"},
			[]string{"ROTATION_AGENT_NATS_PASSWORD_FILE: open " + missing, `ROTATION_AGENT_LOG_LEVEL: "chatty" is not a log level`},
			[]string{"ROTATION_AGENT_NATS_PASSWORD=(unusable: see the problems reported)\n", "ROTATION_AGENT_NATS_USER=agent\n"}},
	}
	for _, tc := range tests {
		for _, command := range [][]string{{"config", "check"}, {"run"}} {
			t.Run(tc.name+"/"+strings.Join(command, " "), func(t *testing.T) {
				validEnv(t)
				for k, v := range tc.env {
					t.Setenv(k, v)
				}
				code, stdout, stderr := run(t, command...)
				if code != exitUsage {
					t.Errorf("exit code %d, want %d", code, exitUsage)
				}
				wantProblemLinesOnce(t, stderr, tc.wantProblems)
				if strings.Contains(stdout+stderr, "some-canary-token") {
					t.Error("the Vault token was printed")
				}
				if command[0] == "run" {
					if stdout != "" {
						t.Errorf("unexpected standard output:\n%s", stdout)
					}
					return
				}
				if strings.Contains(stdout, "configuration is valid") {
					t.Error("an invalid configuration was called valid")
				}
				for _, want := range tc.wantPrinted {
					if !strings.Contains(stdout, want) {
						t.Errorf("standard output lacks %q:\n%s", want, stdout)
					}
				}
				if strings.Contains(stdout, "ROTATION_AGENT_AGENT_ID=\n") {
					t.Errorf("the agent id is empty:\n%s", stdout)
				}
			})
		}
	}
}

// Too few deliveries for the fresh-round and needs_reconcile logic is accepted with a warning:
// printed by config check, logged by run before anything else.
func TestMaxDeliverTooLowWarns(t *testing.T) {
	t.Run("config check", func(t *testing.T) {
		validEnv(t)
		t.Setenv("ROTATION_AGENT_NATS_MAX_DELIVER", "3")
		code, stdout, stderr := run(t, "config", "check")
		if code != exitOK {
			t.Errorf("exit code %d, want 0; stderr:\n%s", code, stderr)
		}
		ls := checkErrorLines(t, stderr)
		if len(ls) != 1 || !strings.HasPrefix(ls[0], "rotation-agent: warning: ROTATION_AGENT_NATS_MAX_DELIVER: 3 deliveries") ||
			!strings.Contains(ls[0], "needs_reconcile") {
			t.Errorf("want one warning line about ROTATION_AGENT_NATS_MAX_DELIVER, got:\n%s", stderr)
		}
		if !strings.Contains(stdout, "configuration is valid") {
			t.Errorf("a configuration with a warning was not called valid:\n%s", stdout)
		}
	})
	t.Run("run", func(t *testing.T) {
		validEnv(t)
		t.Setenv("ROTATION_AGENT_NATS_MAX_DELIVER", "3")
		t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
		t.Setenv("ROTATION_AGENT_STARTUP_TIMEOUT", "3s")
		code, _, stderr := run(t, "run")
		if code != exitFailed {
			t.Errorf("exit code %d, want %d (Vault is unreachable)", code, exitFailed)
		}
		var warned bool
		for _, l := range lines(stderr) {
			var entry map[string]any
			if json.Unmarshal([]byte(l), &entry) == nil && entry["level"] == "warning" &&
				entry["setting"] == "ROTATION_AGENT_NATS_MAX_DELIVER" && strings.Contains(entry["msg"].(string), "needs_reconcile") {
				warned = true
			}
		}
		if !warned {
			t.Errorf("run did not log the warning:\n%s", stderr)
		}
	})
}

func TestRunVaultUnreachable(t *testing.T) {
	validEnv(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("ROTATION_AGENT_STARTUP_TIMEOUT", "3s")
	t.Setenv("ROTATION_AGENT_VAULT_TIMEOUT", "3s")
	start := time.Now()
	code, stdout, stderr := run(t, "run")
	if code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %v to give up on an unreachable Vault", el)
	}
	if stdout != "" {
		t.Errorf("unexpected standard output:\n%s", stdout)
	}
	ls := checkErrorLines(t, stderr)
	if len(ls) != 1 {
		t.Errorf("got %d error lines, want 1:\n%s", len(ls), stderr)
	}
	if !strings.Contains(ls[0], "vault at http://127.0.0.1:1") {
		t.Errorf("error line %q does not name the Vault address", ls[0])
	}
	if strings.Contains(stderr, "some-canary-token") {
		t.Error("the Vault token was printed")
	}
}

func TestRunVaultRefusesToken(t *testing.T) {
	var lookups atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/auth/token/lookup-self" {
			lookups.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
	}))
	defer srv.Close()
	validEnv(t)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("ROTATION_AGENT_STARTUP_TIMEOUT", "3s")
	code, stdout, stderr := run(t, "run")
	if code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d token lookups, want 1", n)
	}
	if stdout != "" {
		t.Errorf("unexpected standard output:\n%s", stdout)
	}
	ls := checkErrorLines(t, stderr)
	if !strings.Contains(ls[0], "vault at "+srv.URL) {
		t.Errorf("first error line %q does not name the Vault address", ls[0])
	}
	if !strings.Contains(stderr, "permission denied") {
		t.Errorf("standard error does not say why:\n%s", stderr)
	}
	if strings.Contains(stderr, "some-canary-token") {
		t.Error("the Vault token was printed")
	}
}

func TestFail(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"one line", errors.New("boom"), "rotation-agent: boom\n"},
		{"several lines", errors.New("invalid configuration:\nA: bad\nB: worse"),
			"rotation-agent: invalid configuration:\nrotation-agent: A: bad\nrotation-agent: B: worse\n"},
		{"blank and padded lines", errors.New("  first  \n\n\t\nsecond\n"), "rotation-agent: first\nrotation-agent: second\n"},
		{"joined", errors.Join(errors.New("x"), errors.New("y")), "rotation-agent: x\nrotation-agent: y\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if code := fail(&buf, 7, tc.err); code != 7 {
				t.Errorf("fail returned %d, want the given code 7", code)
			}
			if buf.String() != tc.want {
				t.Errorf("fail wrote %q, want %q", buf.String(), tc.want)
			}
		})
	}
}
