package delivery

import (
	"context"
	"encoding/json"
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
)

// commandArg, as the first argument, makes the test binary a notify command: it writes its
// environment and remaining arguments to the file named by the second argument and exits with
// the status in the third. (A notify command does not inherit the test's environment.)
const commandArg = "delivery-test-command"

// The test binary doubles as the application: with DELIVERY_TEST_APP set it plays the part
// named there, so the notifiers act on a real process.
func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == commandArg {
		raw, _ := json.Marshal(commandRun{Env: os.Environ(), Args: os.Args[4:]})
		_ = os.WriteFile(os.Args[2], raw, 0o600)
		code, _ := strconv.Atoi(os.Args[3])
		os.Exit(code)
	}
	switch os.Getenv("DELIVERY_TEST_APP") {
	case "":
		os.Exit(m.Run())
	case "reload-on-hup":
		// Write "reloaded" to the file on SIGHUP; announce readiness by writing the pid file.
		out := os.Getenv("DELIVERY_TEST_OUT")
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		_ = os.WriteFile(out+".pid", []byte(strconv.Itoa(os.Getpid())), 0o600)
		select {
		case <-ch:
			_ = os.WriteFile(out, []byte("reloaded"), 0o600)
			os.Exit(0)
		case <-time.After(time.Minute):
			os.Exit(3)
		}
	}
}

// commandRun is what the test binary as a notify command saw.
type commandRun struct {
	Env  []string
	Args []string
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := os.ReadFile(path)
		if err == nil && len(raw) > 0 {
			return string(raw)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSignalReachesTheProcessOfThePIDFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DELIVERY_TEST_APP=reload-on-hup", "DELIVERY_TEST_OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFile(t, out+".pid")
	n := Signal{Signal: syscall.SIGHUP, PIDFile: out + ".pid"}
	if n.Confirms() {
		t.Error("a signal cannot confirm anything")
	}
	if err := n.Notify(context.Background(), Notice{}); err != nil {
		t.Fatal(err)
	}
	if got := waitFile(t, out); got != "reloaded" {
		t.Errorf("application wrote %q", got)
	}
}

func TestSignalFindsTheProcessByName(t *testing.T) {
	// A fake /proc: the name lookup reads <proc>/<pid>/comm.
	proc := t.TempDir()
	out := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DELIVERY_TEST_APP=reload-on-hup", "DELIVERY_TEST_OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFile(t, out+".pid")
	dir := filepath.Join(proc, strconv.Itoa(cmd.Process.Pid))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "comm"), []byte("payments-api\n"), 0o600)
	if err := (Signal{Signal: syscall.SIGHUP, Process: "other", Proc: proc}).Notify(context.Background(), Notice{}); err == nil {
		t.Error("a process name nobody has was signalled")
	}
	if err := (Signal{Signal: syscall.SIGHUP, Process: "payments-api", Proc: proc}).Notify(context.Background(), Notice{}); err != nil {
		t.Fatal(err)
	}
	if got := waitFile(t, out); got != "reloaded" {
		t.Errorf("application wrote %q", got)
	}
}

func TestCommandRunsWithoutShellAndReportsItsExitStatus(t *testing.T) {
	for _, code := range []int{0, 7} {
		t.Run(fmt.Sprint("exit ", code), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			c := Command{Path: os.Args[0], Args: []string{commandArg, out, strconv.Itoa(code), "a b", "$HOME"}}
			err := c.Notify(context.Background(), Notice{Credential: "kv-v2:secret/a", Files: []string{"/run/a", "/run/b"}, Token: "rd-1"})
			if code == 0 && err != nil || code != 0 && (err == nil || !strings.Contains(err.Error(), "exit status 7")) {
				t.Errorf("Notify = %v", err)
			}
			var run commandRun
			if err := json.Unmarshal([]byte(waitFile(t, out)), &run); err != nil {
				t.Fatal(err)
			}
			// Arguments arrive as given: no shell split "a b" or expanded $HOME.
			if strings.Join(run.Args, ",") != "a b,$HOME" {
				t.Errorf("command got arguments %q", run.Args)
			}
			env := envMap(run.Env)
			for name, want := range map[string]string{"ROTATION_CREDENTIAL": "kv-v2:secret/a", "ROTATION_FILES": "/run/a:/run/b", "ROTATION_DELIVERY_TOKEN": "rd-1"} {
				if env[name] != want {
					t.Errorf("command saw %s=%q, want %q", name, env[name], want)
				}
			}
		})
	}
}

// The agent's environment holds its secrets; a notify command (the application's reload
// script) gets PATH, HOME and LANG from it and nothing else.
func TestCommandDoesNotInheritTheAgentsSecrets(t *testing.T) {
	secrets := map[string]string{
		"VAULT_TOKEN":                                  "hvs.canary-vault-token",
		"ROTATION_AGENT_VAULT_TOKEN":                   "hvs.canary-agent-token",
		"ROTATION_AGENT_NATS_PASSWORD":                 "canary-nats-password",
		"ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_FILE": "/run/credentials/canary-secret-id",
		"NATS_TOKEN":                                   "canary-nats-token",
	}
	for name, v := range secrets {
		t.Setenv(name, v)
	}
	t.Setenv("PATH", "/usr/bin:/bin")
	t.Setenv("HOME", "/var/lib/app")
	t.Setenv("LANG", "C.UTF-8")
	out := filepath.Join(t.TempDir(), "out")
	c := Command{Path: os.Args[0], Args: []string{commandArg, out, "0"}}
	if err := c.Notify(context.Background(), Notice{Credential: "kv-v2:secret/a", Token: "rd-1"}); err != nil {
		t.Fatal(err)
	}
	var run commandRun
	if err := json.Unmarshal([]byte(waitFile(t, out)), &run); err != nil {
		t.Fatal(err)
	}
	for _, kv := range run.Env {
		for name, v := range secrets {
			if strings.Contains(kv, v) {
				t.Errorf("the command's environment holds %s's value: %q", name, kv)
			}
		}
	}
	env := envMap(run.Env)
	want := map[string]string{
		"PATH": "/usr/bin:/bin", "HOME": "/var/lib/app", "LANG": "C.UTF-8",
		"ROTATION_CREDENTIAL": "kv-v2:secret/a", "ROTATION_FILES": "", "ROTATION_DELIVERY_TOKEN": "rd-1",
	}
	for name := range env {
		if _, ok := want[name]; !ok {
			t.Errorf("the command's environment holds %s", name)
		}
	}
	for name, v := range want {
		if got, ok := env[name]; !ok || got != v {
			t.Errorf("the command saw %s=%q (set %v), want %q", name, got, ok, v)
		}
	}
}

// envMap turns NAME=value entries into a map.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		name, v, _ := strings.Cut(kv, "=")
		m[name] = v
	}
	return m
}

func TestHTTPHookAndHealth(t *testing.T) {
	var got Notice
	inUse := ""
	app := http.NewServeMux()
	app.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil || got.Token == "" {
			http.Error(w, "bad notice", http.StatusBadRequest)
			return
		}
		inUse = got.Token
	})
	app.HandleFunc("POST /broken", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "nope", http.StatusServiceUnavailable) })
	app.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, `{"credential_version":%q}`, inUse)
	})
	srv := httptest.NewServer(app)
	defer srv.Close()
	ctx := context.Background()

	health := Health{URL: srv.URL + "/health"}
	if ok, err := health.InUse(ctx, "rd-42"); ok || err != nil {
		t.Errorf("before the hook: InUse = %v, %v; want false, nil", ok, err)
	}
	if err := (HTTPHook{URL: srv.URL + "/broken"}).Notify(ctx, Notice{Token: "rd-42"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a failing hook: %v", err)
	}
	hook := HTTPHook{URL: srv.URL + "/reload"}
	if err := hook.Notify(ctx, Notice{Credential: "kv-v2:secret/a", Files: []string{"/run/a"}, Token: "rd-42"}); err != nil {
		t.Fatal(err)
	}
	if got.Credential != "kv-v2:secret/a" || len(got.Files) != 1 {
		t.Errorf("hook got %+v", got)
	}
	if ok, err := health.InUse(ctx, "rd-42"); !ok || err != nil {
		t.Errorf("after the hook: InUse = %v, %v", ok, err)
	}
	if _, err := (Health{URL: srv.URL + "/missing"}).InUse(ctx, "rd-42"); err == nil {
		t.Error("a 404 health URL was taken as an answer")
	}
}

func TestParseSignal(t *testing.T) {
	for name, want := range map[string]syscall.Signal{"HUP": syscall.SIGHUP, "sigusr1": syscall.SIGUSR1, "SIGTERM": syscall.SIGTERM} {
		if got, err := ParseSignal(name); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := ParseSignal("KILL"); err == nil {
		t.Error("KILL accepted")
	}
}
