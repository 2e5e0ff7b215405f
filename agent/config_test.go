package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clearConfigEnv removes every variable Load could read, so ambient settings of the machine
// running the tests cannot leak in. The original values come back when the test ends.
func clearConfigEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") || strings.HasPrefix(name, "VAULT_") || strings.HasPrefix(name, "-_") {
			t.Setenv(name, "") // registers the restore
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeFile writes content to a new file in a test directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// joined returns the individual errors of an errors.Join result.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return []error{err}
}

// wantEachProblemOnce fails the test unless err joins exactly len(want) problems and each
// entry of want is said by exactly one of them; says tells whether a problem says an entry.
func wantEachProblemOnce(t *testing.T, err error, want []string, says func(problem, entry string) bool) {
	t.Helper()
	errs := joined(err)
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for _, w := range want {
		n := 0
		for _, e := range errs {
			if says(e.Error(), w) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d problems say %q, want 1:\n%v", n, w, err)
		}
	}
}

// hostName is the agent id Load falls back to: the host name, or rotation-agent without one.
func hostName() string {
	host, err := os.Hostname()
	if err != nil {
		return "rotation-agent"
	}
	return host
}

func TestDefaults(t *testing.T) {
	clearConfigEnv(t)
	// Defaults must not read the environment.
	t.Setenv("ROTATION_AGENT_LOG_LEVEL", "debug")
	t.Setenv("ROTATION_AGENT_NATS_REPLICAS", "3")
	t.Setenv("VAULT_ADDR", "http://vault.example:8200")

	cfg := Defaults()
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"AgentID", cfg.AgentID, ""},
		{"LogLevel", cfg.LogLevel, "info"},
		{"SubjectPrefix", cfg.SubjectPrefix, "rotation"},
		{"MaxEventBytes", cfg.MaxEventBytes, 65536},
		{"ShutdownTimeout", cfg.ShutdownTimeout, 30 * time.Second},
		{"StartupTimeout", cfg.StartupTimeout, 15 * time.Second},
		{"MetricsListen", cfg.MetricsListen, "127.0.0.1:9464"},
		{"Password.Length", cfg.Password.Length, 32},
		{"Password.Charset", cfg.Password.Charset, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"},
		{"Vault.Addr", cfg.Vault.Addr, ""},
		{"Vault.Token", cfg.Vault.Token, ""},
		{"Vault.AuthMethod", cfg.Vault.AuthMethod, AuthToken},
		{"Vault.AppRoleMount", cfg.Vault.AppRoleMount, "approle"},
		{"Vault.AppRoleSecretIDWrapped", cfg.Vault.AppRoleSecretIDWrapped, false},
		{"Vault.KubernetesMount", cfg.Vault.KubernetesMount, "kubernetes"},
		{"Vault.KubernetesTokenFile", cfg.Vault.KubernetesTokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token"},
		{"Vault.Timeout", cfg.Vault.Timeout, 30 * time.Second},
		{"NATS.URL", cfg.NATS.URL, []string{"nats://127.0.0.1:4222"}},
		{"NATS.Embedded", cfg.NATS.Embedded, false},
		{"NATS.EmbeddedListen", cfg.NATS.EmbeddedListen, "127.0.0.1:4222"},
		{"NATS.EmbeddedStoreDir", cfg.NATS.EmbeddedStoreDir, "/var/lib/rotation-agent/jetstream"},
		{"NATS.ChangeStream", cfg.NATS.ChangeStream, "ROTATION_CHANGES"},
		{"NATS.EvidenceStream", cfg.NATS.EvidenceStream, "ROTATION_EVIDENCE"},
		{"NATS.JournalBucket", cfg.NATS.JournalBucket, "ROTATION_JOURNAL"},
		{"NATS.BindStreams", cfg.NATS.BindStreams, false},
		{"NATS.Replicas", cfg.NATS.Replicas, 1},
		{"NATS.Consumer", cfg.NATS.Consumer, "rotation-agent"},
		{"NATS.AckWait", cfg.NATS.AckWait, 2 * time.Minute},
		{"NATS.MaxDeliver", cfg.NATS.MaxDeliver, 10},
		{"NATS.DuplicateWindow", cfg.NATS.DuplicateWindow, 2 * time.Minute},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("Defaults().%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadEmptyEnvironmentIsDefaultsWithHostName(t *testing.T) {
	clearConfigEnv(t)
	cfg, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Defaults()
	want.AgentID = hostName()
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load() with no variables set =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestLoadReadsPrefixedVariables(t *testing.T) {
	tests := []struct {
		env   string
		value string
		check func(Config) any
		want  any
	}{
		{"ROTATION_AGENT_AGENT_ID", "agent-7", func(c Config) any { return c.AgentID }, "agent-7"},
		{"ROTATION_AGENT_LOG_LEVEL", "debug", func(c Config) any { return c.LogLevel }, "debug"},
		{"ROTATION_AGENT_SUBJECT_PREFIX", "acme.rot", func(c Config) any { return c.SubjectPrefix }, "acme.rot"},
		{"ROTATION_AGENT_MAX_EVENT_BYTES", "2048", func(c Config) any { return c.MaxEventBytes }, 2048},
		{"ROTATION_AGENT_SHUTDOWN_TIMEOUT", "45s", func(c Config) any { return c.ShutdownTimeout }, 45 * time.Second},
		{"ROTATION_AGENT_STARTUP_TIMEOUT", "1m30s", func(c Config) any { return c.StartupTimeout }, 90 * time.Second},
		{"ROTATION_AGENT_PASSWORD_LENGTH", "48", func(c Config) any { return c.Password.Length }, 48},
		{"ROTATION_AGENT_PASSWORD_CHARSET", "0123456789abcdef", func(c Config) any { return c.Password.Charset }, "0123456789abcdef"},
		{"ROTATION_AGENT_VAULT_ADDR", "https://vault.example:8200", func(c Config) any { return c.Vault.Addr }, "https://vault.example:8200"},
		{"ROTATION_AGENT_VAULT_CA_CERT", "/etc/ca.pem", func(c Config) any { return c.Vault.CACert }, "/etc/ca.pem"},
		{"ROTATION_AGENT_VAULT_TLS_SERVER_NAME", "vault.internal", func(c Config) any { return c.Vault.TLSServerName }, "vault.internal"},
		{"ROTATION_AGENT_VAULT_AUTH_METHOD", "approle", func(c Config) any { return c.Vault.AuthMethod }, "approle"},
		{"ROTATION_AGENT_VAULT_APP_ROLE_ROLE_ID", "role-1", func(c Config) any { return c.Vault.AppRoleRoleID }, "role-1"},
		{"ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_FILE", "/run/sid", func(c Config) any { return c.Vault.AppRoleSecretIDFile }, "/run/sid"},
		{"ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_WRAPPED", "true", func(c Config) any { return c.Vault.AppRoleSecretIDWrapped }, true},
		{"ROTATION_AGENT_VAULT_KUBERNETES_ROLE", "rot", func(c Config) any { return c.Vault.KubernetesRole }, "rot"},
		{"ROTATION_AGENT_VAULT_TIMEOUT", "5s", func(c Config) any { return c.Vault.Timeout }, 5 * time.Second},
		{"ROTATION_AGENT_NATS_URL", "nats://a:4222,tls://b:4223", func(c Config) any { return c.NATS.URL }, []string{"nats://a:4222", "tls://b:4223"}},
		{"ROTATION_AGENT_NATS_EMBEDDED", "true", func(c Config) any { return c.NATS.Embedded }, true},
		{"ROTATION_AGENT_NATS_PASSWORD", "direct-pass", func(c Config) any { return c.NATS.Password }, "direct-pass"},
		{"ROTATION_AGENT_NATS_REPLICAS", "3", func(c Config) any { return c.NATS.Replicas }, 3},
		{"ROTATION_AGENT_NATS_ACK_WAIT", "90s", func(c Config) any { return c.NATS.AckWait }, 90 * time.Second},
		{"ROTATION_AGENT_NATS_MAX_DELIVER", "4", func(c Config) any { return c.NATS.MaxDeliver }, 4},
		{"ROTATION_AGENT_NATS_BIND_STREAMS", "true", func(c Config) any { return c.NATS.BindStreams }, true},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(tc.env, tc.value)
			cfg, err := Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.check(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s=%q: got %#v, want %#v", tc.env, tc.value, got, tc.want)
			}
		})
	}
}

func TestLoadBadValueNamesTheVariable(t *testing.T) {
	tests := []struct{ env, value string }{
		{"ROTATION_AGENT_NATS_ACK_WAIT", "abc"},
		{"ROTATION_AGENT_MAX_EVENT_BYTES", "lots"},
		{"ROTATION_AGENT_NATS_EMBEDDED", "perhaps"},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(tc.env, tc.value)
			_, err := Load()
			if err == nil {
				t.Fatalf("Load with %s=%q: no error", tc.env, tc.value)
			}
			if !strings.Contains(err.Error(), tc.env) {
				t.Errorf("error %q does not name %s", err, tc.env)
			}
		})
	}
}

// One value that does not parse neither hides the others nor leaves later settings without
// their defaults or fall-backs.
func TestLoadReportsEverySettingItCannotRead(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("ROTATION_AGENT_NATS_ACK_WAIT", "soon")
	t.Setenv("ROTATION_AGENT_MAX_EVENT_BYTES", "lots")
	t.Setenv("ROTATION_AGENT_NATS_EMBEDDED", "perhaps")
	t.Setenv("ROTATION_AGENT_NATS_REPLICAS", "3")
	t.Setenv("ROTATION_AGENT_LOG_LEVEL", "debug")
	t.Setenv("VAULT_ADDR", "http://vault.example:8200")
	cfg, err := Load()
	wantEachProblemOnce(t, err, []string{
		`ROTATION_AGENT_NATS_ACK_WAIT: "soon" is not a valid duration`,
		`ROTATION_AGENT_MAX_EVENT_BYTES: "lots" is not a valid whole number`,
		`ROTATION_AGENT_NATS_EMBEDDED: "perhaps" is not a valid boolean`,
	}, strings.Contains)
	def := Defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"NATS.AckWait (unparsable: default)", cfg.NATS.AckWait, def.NATS.AckWait},
		{"MaxEventBytes (unparsable: default)", cfg.MaxEventBytes, def.MaxEventBytes},
		{"NATS.Replicas (set after the bad ones)", cfg.NATS.Replicas, 3},
		{"LogLevel", cfg.LogLevel, "debug"},
		{"NATS.MaxDeliver (default)", cfg.NATS.MaxDeliver, def.NATS.MaxDeliver},
		{"Evidence.Signer (default)", cfg.Evidence.Signer, def.Evidence.Signer},
		{"Vault.Addr (VAULT_ADDR fall-back)", cfg.Vault.Addr, "http://vault.example:8200"},
		{"AgentID (host name)", cfg.AgentID, hostName()},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// LoadAndValidate lists the settings that do not parse and the problems Validate finds in the
// rest, each once.
func TestLoadAndValidateReportsParseAndValidationProblems(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:8200")
	t.Setenv("VAULT_TOKEN", "canary-vault-token-5d2e")
	t.Setenv("ROTATION_AGENT_NATS_ACK_WAIT", "soon")
	t.Setenv("ROTATION_AGENT_LOG_LEVEL", "chatty")
	t.Setenv("ROTATION_AGENT_NATS_REPLICAS", "9")
	t.Setenv("ROTATION_AGENT_NATS_MAX_DELIVER", "never")
	_, err := LoadAndValidate()
	wantEachProblemOnce(t, err, []string{
		"ROTATION_AGENT_NATS_ACK_WAIT: \"soon\"",
		"ROTATION_AGENT_NATS_MAX_DELIVER: \"never\"",
		"ROTATION_AGENT_LOG_LEVEL: \"chatty\" is not a log level",
		"ROTATION_AGENT_NATS_REPLICAS: 9 is out of range",
	}, strings.Contains)
	if strings.Contains(err.Error(), "canary-vault-token") {
		t.Errorf("the Vault token appears in the problems: %v", err)
	}
}

// An unreadable NAME_FILE is reported with the other problems and does not cause false ones:
// the secret was given, only its file is wrong.
func TestLoadAndValidateMissingSecretFileHidesNothing(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:8200")
	t.Setenv("VAULT_TOKEN", "canary-vault-token-5d2e")
	t.Setenv("ROTATION_AGENT_NATS_USER", "agent")
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD_FILE", filepath.Join(t.TempDir(), "nope"))
	t.Setenv("ROTATION_AGENT_LOG_LEVEL", "chatty")
	t.Setenv("ROTATION_AGENT_NATS_ACK_WAIT", "soon")
	_, err := LoadAndValidate()
	errs := joined(err)
	want := []string{"ROTATION_AGENT_NATS_ACK_WAIT", "ROTATION_AGENT_NATS_PASSWORD_FILE", "ROTATION_AGENT_LOG_LEVEL"}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d (no false NATS_USER/NATS_PASSWORD problem):\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d = %q, want it to name %s", i, errs[i], w)
		}
	}
}

// A value that does not parse is named, and shown only when the setting is not secret.
func TestReadSettingHidesSecretValues(t *testing.T) {
	clearConfigEnv(t)
	const canary = "canary-not-a-number-4e1b"
	tests := []struct {
		secret      bool
		wantValue   bool
		wantMessage string
	}{
		{false, true, "ROTATION_AGENT_TEST_NUMBER: \"" + canary + "\" is not a valid whole number"},
		{true, false, "ROTATION_AGENT_TEST_NUMBER: the value is not a valid whole number"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("secret=%v", tc.secret), func(t *testing.T) {
			t.Setenv("ROTATION_AGENT_TEST_NUMBER", canary)
			n := 7
			err := readSetting(configField{env: "ROTATION_AGENT_TEST_NUMBER", value: reflect.ValueOf(&n).Elem(), secret: tc.secret})
			if err == nil || !strings.Contains(err.Error(), tc.wantMessage) {
				t.Fatalf("readSetting = %v, want %q", err, tc.wantMessage)
			}
			if got := strings.Contains(err.Error(), canary); got != tc.wantValue {
				t.Errorf("error %q shows the value: %v, want %v", err, got, tc.wantValue)
			}
			if n != 7 {
				t.Errorf("the field changed to %d on a parse error", n)
			}
		})
	}
}

func TestLoadVaultFallbacks(t *testing.T) {
	tests := []struct {
		std, own string
		get      func(Config) string
	}{
		{"VAULT_ADDR", "ROTATION_AGENT_VAULT_ADDR", func(c Config) string { return c.Vault.Addr }},
		{"VAULT_TOKEN", "ROTATION_AGENT_VAULT_TOKEN", func(c Config) string { return c.Vault.Token }},
		{"VAULT_CACERT", "ROTATION_AGENT_VAULT_CA_CERT", func(c Config) string { return c.Vault.CACert }},
		{"VAULT_NAMESPACE", "ROTATION_AGENT_VAULT_NAMESPACE", func(c Config) string { return c.Vault.Namespace }},
		{"VAULT_TLS_SERVER_NAME", "ROTATION_AGENT_VAULT_TLS_SERVER_NAME", func(c Config) string { return c.Vault.TLSServerName }},
	}
	for _, tc := range tests {
		t.Run(tc.std+"/only standard", func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(tc.std, "from-standard-variable")
			cfg, err := Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.get(cfg); got != "from-standard-variable" {
				t.Errorf("with only %s set: got %q, want the %s value", tc.std, got, tc.std)
			}
		})
		t.Run(tc.std+"/both", func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(tc.std, "from-standard-variable")
			t.Setenv(tc.own, "from-own-variable")
			cfg, err := Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.get(cfg); got != "from-own-variable" {
				t.Errorf("with %s and %s set: got %q, want the %s value", tc.std, tc.own, got, tc.own)
			}
		})
		t.Run(tc.std+"/neither", func(t *testing.T) {
			clearConfigEnv(t)
			cfg, err := Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.get(cfg); got != "" {
				t.Errorf("with neither set: got %q, want empty", got)
			}
		})
	}
}

func TestLoadSecretFileVariants(t *testing.T) {
	tests := []struct {
		env     string
		content string
		get     func(Config) string
		want    string
	}{
		{"ROTATION_AGENT_NATS_PASSWORD", "pass-from-file\n", func(c Config) string { return c.NATS.Password }, "pass-from-file"},
		{"ROTATION_AGENT_NATS_PASSWORD", "pass-crlf\r\n", func(c Config) string { return c.NATS.Password }, "pass-crlf"},
		{"ROTATION_AGENT_NATS_PASSWORD", "no-newline", func(c Config) string { return c.NATS.Password }, "no-newline"},
		{"ROTATION_AGENT_NATS_TOKEN", "nats-token-from-file\n\n", func(c Config) string { return c.NATS.Token }, "nats-token-from-file"},
	}
	for _, tc := range tests {
		t.Run(tc.env+"_FILE/"+strings.TrimSpace(tc.content), func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(tc.env+"_FILE", writeFile(t, "secret", tc.content))
			cfg, err := Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.get(cfg); got != tc.want {
				t.Errorf("%s_FILE holding %q: got %q, want %q", tc.env, tc.content, got, tc.want)
			}
		})
	}
}

func TestLoadSecretFileMissingIsReported(t *testing.T) {
	clearConfigEnv(t)
	missing := filepath.Join(t.TempDir(), "does-not-exist")
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD_FILE", missing)
	t.Setenv("ROTATION_AGENT_NATS_TOKEN_FILE", missing)
	t.Setenv("ROTATION_AGENT_LOG_LEVEL", "debug")
	cfg, err := Load()
	if err == nil {
		t.Fatal("Load with missing secret files: no error")
	}
	errs := joined(err)
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want one per missing file: %v", len(errs), err)
	}
	for _, name := range []string{"ROTATION_AGENT_NATS_PASSWORD_FILE", "ROTATION_AGENT_NATS_TOKEN_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
	// The rest of the configuration is still loaded, so config check can print it.
	if cfg.LogLevel != "debug" {
		t.Errorf("LogLevel = %q after a file error, want debug", cfg.LogLevel)
	}
}

func TestLoadEmptySecretFileVariableIsIgnored(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD", "direct")
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD_FILE", "")
	cfg, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.NATS.Password != "direct" {
		t.Errorf("NATS.Password = %q, want the direct value", cfg.NATS.Password)
	}
}

func TestLoadDoesNotReadVaultTokenFile(t *testing.T) {
	t.Run("existing file", func(t *testing.T) {
		clearConfigEnv(t)
		path := writeFile(t, "token", "hvs.CAESIFromTheTokenFileXXXXXXXXXX\n")
		t.Setenv("ROTATION_AGENT_VAULT_TOKEN_FILE", path)
		cfg, err := Load()
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if cfg.Vault.Token != "" {
			t.Errorf("Vault.Token = %q: the token file was read at load; it must be re-read at every login", cfg.Vault.Token)
		}
		if cfg.Vault.TokenFile != path {
			t.Errorf("Vault.TokenFile = %q, want %q", cfg.Vault.TokenFile, path)
		}
	})
	t.Run("token file auth validates", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("VAULT_ADDR", "http://127.0.0.1:8200")
		t.Setenv("ROTATION_AGENT_VAULT_TOKEN_FILE", writeFile(t, "token", "hvs.CAESIFromTheTokenFileXXXXXXXXXX\n"))
		cfg, err := Load()
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate of a token-file configuration: %v", err)
		}
	})
	t.Run("missing file is not a load error", func(t *testing.T) {
		clearConfigEnv(t)
		t.Setenv("ROTATION_AGENT_VAULT_TOKEN_FILE", filepath.Join(t.TempDir(), "later"))
		if _, err := Load(); err != nil {
			t.Errorf("Load: %v; the token file may appear later (Vault Agent sink)", err)
		}
	})
}

// validConfig is a configuration Validate accepts.
func validConfig() Config {
	cfg := Defaults()
	cfg.AgentID = "test-agent"
	cfg.Vault.Addr = "http://127.0.0.1:8200"
	cfg.Vault.Token = "test-vault-token"
	return cfg
}

func TestValidateAcceptsValidConfig(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	cfg := validConfig()
	cfg.LogLevel = "loud"
	cfg.SubjectPrefix = "has space"
	cfg.MaxEventBytes = 10
	cfg.ShutdownTimeout = 0
	cfg.StartupTimeout = -time.Second
	cfg.Password.Length = 4
	cfg.Password.Charset = "abc"
	cfg.Vault.Addr = ""
	cfg.Vault.Timeout = 0
	cfg.Vault.AuthMethod = "ldap"
	cfg.NATS.URL = []string{"http://nats.example:4222"}
	cfg.NATS.User = "alice"
	cfg.NATS.ChangeStream = "bad.name"
	cfg.NATS.Replicas = 9
	cfg.NATS.AckWait = 0
	cfg.NATS.MaxDeliver = 0
	cfg.NATS.DuplicateWindow = 0

	want := []string{
		"ROTATION_AGENT_LOG_LEVEL",
		"ROTATION_AGENT_SUBJECT_PREFIX",
		"ROTATION_AGENT_MAX_EVENT_BYTES",
		"ROTATION_AGENT_SHUTDOWN_TIMEOUT",
		"ROTATION_AGENT_STARTUP_TIMEOUT",
		"ROTATION_AGENT_PASSWORD_LENGTH",
		"ROTATION_AGENT_PASSWORD_CHARSET",
		"ROTATION_AGENT_VAULT_ADDR",
		"ROTATION_AGENT_VAULT_TIMEOUT",
		"ROTATION_AGENT_VAULT_AUTH_METHOD",
		"ROTATION_AGENT_NATS_URL",
		"ROTATION_AGENT_NATS_USER",
		"ROTATION_AGENT_NATS_CHANGE_STREAM",
		"ROTATION_AGENT_NATS_REPLICAS",
		"ROTATION_AGENT_NATS_ACK_WAIT",
		"ROTATION_AGENT_NATS_MAX_DELIVER",
		"ROTATION_AGENT_NATS_DUPLICATE_WINDOW",
	}
	err := cfg.Validate()
	wantEachProblemOnce(t, err, want, func(problem, name string) bool {
		return strings.Contains(problem, name+":") || strings.Contains(problem, name+" ")
	})
	// One problem per line, so the command line can print each on its own.
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("joined error has %d lines for %d problems", len(lines), len(want))
	}
}

func TestValidateAuthMethods(t *testing.T) {
	tokenFile := writeFile(t, "token", "hvs.x")
	secretIDFile := writeFile(t, "secret-id", "sid")
	saTokenFile := writeFile(t, "sa-token", "eyJhbGciOiJSUzI1NiJ9.sa.sig")
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		edit func(*VaultConfig)
		want []string // env names, one per expected problem; empty means valid
	}{
		{"token with token", func(v *VaultConfig) { v.Token = "t-123456" }, nil},
		{"token with token file", func(v *VaultConfig) { v.Token = ""; v.TokenFile = tokenFile }, nil},
		{"token with neither", func(v *VaultConfig) { v.Token = "" }, []string{"ROTATION_AGENT_VAULT_TOKEN"}},
		{"token with both", func(v *VaultConfig) { v.TokenFile = tokenFile }, []string{"ROTATION_AGENT_VAULT_TOKEN_FILE"}},
		{"token file missing", func(v *VaultConfig) { v.Token = ""; v.TokenFile = missing }, []string{"ROTATION_AGENT_VAULT_TOKEN_FILE"}},
		{"approle complete", func(v *VaultConfig) {
			v.AuthMethod, v.Token, v.AppRoleRoleID, v.AppRoleSecretIDFile = AuthAppRole, "", "role", secretIDFile
		}, nil},
		{"approle without anything", func(v *VaultConfig) { v.AuthMethod, v.Token = AuthAppRole, "" },
			[]string{"ROTATION_AGENT_VAULT_APP_ROLE_ROLE_ID", "ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_FILE"}},
		{"approle without role id", func(v *VaultConfig) { v.AuthMethod, v.AppRoleSecretIDFile = AuthAppRole, secretIDFile },
			[]string{"ROTATION_AGENT_VAULT_APP_ROLE_ROLE_ID"}},
		{"approle secret id file missing", func(v *VaultConfig) {
			v.AuthMethod, v.AppRoleRoleID, v.AppRoleSecretIDFile = AuthAppRole, "role", missing
		}, []string{"ROTATION_AGENT_VAULT_APP_ROLE_SECRET_ID_FILE"}},
		{"kubernetes with role", func(v *VaultConfig) {
			v.AuthMethod, v.Token, v.KubernetesRole, v.KubernetesTokenFile = AuthKubernetes, "", "rot", saTokenFile
		}, nil},
		{"kubernetes without role", func(v *VaultConfig) { v.AuthMethod, v.KubernetesTokenFile = AuthKubernetes, saTokenFile },
			[]string{"ROTATION_AGENT_VAULT_KUBERNETES_ROLE"}},
		{"kubernetes token file missing", func(v *VaultConfig) {
			v.AuthMethod, v.KubernetesRole, v.KubernetesTokenFile = AuthKubernetes, "rot", missing
		}, []string{"ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE: the service account token cannot be read"}},
		{"kubernetes token file under a file", func(v *VaultConfig) {
			v.AuthMethod, v.KubernetesRole, v.KubernetesTokenFile = AuthKubernetes, "rot", filepath.Join(saTokenFile, "token")
		}, []string{"ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE: the service account token cannot be read"}},
		{"kubernetes token file is a directory", func(v *VaultConfig) {
			v.AuthMethod, v.KubernetesRole, v.KubernetesTokenFile = AuthKubernetes, "rot", filepath.Dir(saTokenFile)
		}, []string{"ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE: the service account token cannot be read"}},
		{"kubernetes token file empty", func(v *VaultConfig) {
			v.AuthMethod, v.KubernetesRole, v.KubernetesTokenFile = AuthKubernetes, "rot", ""
		}, []string{"ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE: required"}},
		{"kubernetes with nothing", func(v *VaultConfig) { v.AuthMethod, v.KubernetesTokenFile = AuthKubernetes, missing },
			[]string{"ROTATION_AGENT_VAULT_KUBERNETES_ROLE", "ROTATION_AGENT_VAULT_KUBERNETES_TOKEN_FILE"}},
		{"unknown method", func(v *VaultConfig) { v.AuthMethod = "userpass" }, []string{"ROTATION_AGENT_VAULT_AUTH_METHOD"}},
		{"empty method", func(v *VaultConfig) { v.AuthMethod = "" }, []string{"ROTATION_AGENT_VAULT_AUTH_METHOD"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.edit(&cfg.Vault)
			err := cfg.Validate()
			errs := joined(err)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d problems, want %d: %v", len(errs), len(tc.want), err)
			}
			for i, name := range tc.want {
				if !strings.Contains(errs[i].Error(), name) {
					t.Errorf("problem %q does not name %s", errs[i], name)
				}
			}
		})
	}
}

func TestValidateSingleBadValues(t *testing.T) {
	existing := writeFile(t, "creds", "x")
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		edit func(*Config)
		want string // env name in the one expected problem; empty means valid
	}{
		{"log level warn", func(c *Config) { c.LogLevel = "warn" }, ""},
		{"log level bogus", func(c *Config) { c.LogLevel = "verbose" }, "ROTATION_AGENT_LOG_LEVEL"},
		{"subject prefix dotted", func(c *Config) { c.SubjectPrefix = "acme.rotation" }, ""},
		{"subject prefix empty", func(c *Config) { c.SubjectPrefix = "" }, "ROTATION_AGENT_SUBJECT_PREFIX"},
		{"subject prefix wildcard *", func(c *Config) { c.SubjectPrefix = "a.*" }, "ROTATION_AGENT_SUBJECT_PREFIX"},
		{"subject prefix wildcard >", func(c *Config) { c.SubjectPrefix = "a.>" }, "ROTATION_AGENT_SUBJECT_PREFIX"},
		{"subject prefix leading dot", func(c *Config) { c.SubjectPrefix = ".a" }, "ROTATION_AGENT_SUBJECT_PREFIX"},
		{"subject prefix trailing dot", func(c *Config) { c.SubjectPrefix = "a." }, "ROTATION_AGENT_SUBJECT_PREFIX"},
		{"subject prefix tab", func(c *Config) { c.SubjectPrefix = "a\tb" }, "ROTATION_AGENT_SUBJECT_PREFIX"},
		{"max event bytes lower bound", func(c *Config) { c.MaxEventBytes = 1024 }, ""},
		{"max event bytes upper bound", func(c *Config) { c.MaxEventBytes = 8 << 20 }, ""},
		{"max event bytes too small", func(c *Config) { c.MaxEventBytes = 1023 }, "ROTATION_AGENT_MAX_EVENT_BYTES"},
		{"max event bytes too large", func(c *Config) { c.MaxEventBytes = 8<<20 + 1 }, "ROTATION_AGENT_MAX_EVENT_BYTES"},
		{"shutdown timeout zero", func(c *Config) { c.ShutdownTimeout = 0 }, "ROTATION_AGENT_SHUTDOWN_TIMEOUT"},
		{"startup timeout negative", func(c *Config) { c.StartupTimeout = -1 }, "ROTATION_AGENT_STARTUP_TIMEOUT"},
		{"metrics listen all interfaces", func(c *Config) { c.MetricsListen = ":9464" }, ""},
		{"metrics listen off", func(c *Config) { c.MetricsListen = "" }, ""},
		{"metrics listen no port", func(c *Config) { c.MetricsListen = "127.0.0.1" }, "ROTATION_AGENT_METRICS_LISTEN"},
		{"metrics listen bad port", func(c *Config) { c.MetricsListen = "127.0.0.1:http" }, "ROTATION_AGENT_METRICS_LISTEN"},
		{"metrics listen port too large", func(c *Config) { c.MetricsListen = "127.0.0.1:70000" }, "ROTATION_AGENT_METRICS_LISTEN"},
		{"password length 16", func(c *Config) { c.Password.Length = 16 }, ""},
		{"password length 15", func(c *Config) { c.Password.Length = 15 }, "ROTATION_AGENT_PASSWORD_LENGTH"},
		{"password length 1025", func(c *Config) { c.Password.Length = 1025 }, "ROTATION_AGENT_PASSWORD_LENGTH"},
		{"charset 10 distinct", func(c *Config) { c.Password.Charset = "0123456789" }, ""},
		{"charset 9 distinct with repeats", func(c *Config) { c.Password.Charset = "012345678888888" }, "ROTATION_AGENT_PASSWORD_CHARSET"},
		{"vault https", func(c *Config) { c.Vault.Addr = "https://vault.example" }, ""},
		{"vault addr ftp", func(c *Config) { c.Vault.Addr = "ftp://vault.example" }, "ROTATION_AGENT_VAULT_ADDR"},
		{"vault addr no scheme", func(c *Config) { c.Vault.Addr = "vault.example:8200" }, "ROTATION_AGENT_VAULT_ADDR"},
		{"vault addr no host", func(c *Config) { c.Vault.Addr = "http://" }, "ROTATION_AGENT_VAULT_ADDR"},
		{"vault ca cert missing", func(c *Config) { c.Vault.CACert = missing }, "ROTATION_AGENT_VAULT_CA_CERT"},
		{"vault ca cert present", func(c *Config) { c.Vault.CACert = existing }, ""},
		{"vault timeout zero", func(c *Config) { c.Vault.Timeout = 0 }, "ROTATION_AGENT_VAULT_TIMEOUT"},
		{"nats urls all schemes", func(c *Config) {
			c.NATS.URL = []string{"nats://a:1", "tls://b:2", "ws://c:3", "wss://d:4"}
		}, ""},
		{"nats url none", func(c *Config) { c.NATS.URL = nil }, "ROTATION_AGENT_NATS_URL"},
		{"nats url http", func(c *Config) { c.NATS.URL = []string{"http://a:4222"} }, "ROTATION_AGENT_NATS_URL"},
		{"nats url no host", func(c *Config) { c.NATS.URL = []string{"nats://"} }, "ROTATION_AGENT_NATS_URL"},
		{"embedded ignores urls", func(c *Config) { c.NATS.Embedded, c.NATS.URL = true, nil }, ""},
		{"embedded without store dir", func(c *Config) { c.NATS.Embedded, c.NATS.EmbeddedStoreDir = true, "" }, "ROTATION_AGENT_NATS_EMBEDDED_STORE_DIR"},
		{"nats two auth methods", func(c *Config) { c.NATS.CredsFile, c.NATS.Token = existing, "nats-token" }, "ROTATION_AGENT_NATS_CREDS_FILE"},
		{"nats user and password", func(c *Config) { c.NATS.User, c.NATS.Password = "u", "p" }, ""},
		{"nats password without user", func(c *Config) { c.NATS.Password = "p" }, "ROTATION_AGENT_NATS_USER"},
		{"nats cert without key", func(c *Config) { c.NATS.Cert = existing }, "ROTATION_AGENT_NATS_KEY"},
		{"nats creds file missing", func(c *Config) { c.NATS.CredsFile = missing }, "ROTATION_AGENT_NATS_CREDS_FILE"},
		{"nats nkey seed file missing", func(c *Config) { c.NATS.NkeySeedFile = missing }, "ROTATION_AGENT_NATS_NKEY_SEED_FILE"},
		{"nats ca cert missing", func(c *Config) { c.NATS.CACert = missing }, "ROTATION_AGENT_NATS_CA_CERT"},
		{"same streams", func(c *Config) { c.NATS.EvidenceStream = c.NATS.ChangeStream }, "ROTATION_AGENT_NATS_EVIDENCE_STREAM"},
		{"evidence stream bad name", func(c *Config) { c.NATS.EvidenceStream = "EVI DENCE" }, "ROTATION_AGENT_NATS_EVIDENCE_STREAM"},
		{"journal bucket empty", func(c *Config) { c.NATS.JournalBucket = "" }, "ROTATION_AGENT_NATS_JOURNAL_BUCKET"},
		{"consumer with dot", func(c *Config) { c.NATS.Consumer = "rotation.agent" }, "ROTATION_AGENT_NATS_CONSUMER"},
		{"replicas 5", func(c *Config) { c.NATS.Replicas = 5 }, ""},
		{"replicas 0", func(c *Config) { c.NATS.Replicas = 0 }, "ROTATION_AGENT_NATS_REPLICAS"},
		{"replicas 6", func(c *Config) { c.NATS.Replicas = 6 }, "ROTATION_AGENT_NATS_REPLICAS"},
		{"ack wait 1s", func(c *Config) { c.NATS.AckWait = time.Second }, ""},
		{"ack wait under 1s", func(c *Config) { c.NATS.AckWait = 999 * time.Millisecond }, "ROTATION_AGENT_NATS_ACK_WAIT"},
		{"max deliver 0", func(c *Config) { c.NATS.MaxDeliver = 0 }, "ROTATION_AGENT_NATS_MAX_DELIVER"},
		{"duplicate window under 1s", func(c *Config) { c.NATS.DuplicateWindow = 500 * time.Millisecond }, "ROTATION_AGENT_NATS_DUPLICATE_WINDOW"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want no problem", err)
				}
				return
			}
			errs := joined(err)
			if len(errs) != 1 {
				t.Fatalf("got %d problems, want 1 naming %s: %v", len(errs), tc.want, err)
			}
			if !strings.Contains(errs[0].Error(), tc.want) {
				t.Errorf("problem %q does not name %s", errs[0], tc.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		"AgentID":                "AGENT_ID",
		"LogLevel":               "LOG_LEVEL",
		"CACert":                 "CA_CERT",
		"TLSServerName":          "TLS_SERVER_NAME",
		"AppRoleSecretIDFile":    "APP_ROLE_SECRET_ID_FILE",
		"AppRoleSecretIDWrapped": "APP_ROLE_SECRET_ID_WRAPPED",
		"URL":                    "URL",
		"NkeySeedFile":           "NKEY_SEED_FILE",
		"MaxEventBytes":          "MAX_EVENT_BYTES",
		"NATS":                   "NATS",
	}
	for in, want := range tests {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDescribeNamesAreTheVariablesLoadReads proves the names config check prints (and the
// NAME_FILE variants built from them) are the names envconfig reads: setting each printed
// variable changes exactly its field.
func TestDescribeNamesAreTheVariablesLoadReads(t *testing.T) {
	def := Defaults()
	fields := describe(&def)
	if len(fields) < 40 {
		t.Fatalf("describe lists %d fields; expected every leaf of Config", len(fields))
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f.env] {
			t.Errorf("%s is listed twice", f.env)
		}
		seen[f.env] = true
	}
	for i, f := range fields {
		var sample string
		var want func(v reflect.Value) bool
		switch f.value.Kind() {
		case reflect.String:
			sample = "sample-" + strings.ToLower(f.env)
			want = func(v reflect.Value) bool { return v.String() == sample }
		case reflect.Int:
			sample = "4242"
			want = func(v reflect.Value) bool { return v.Int() == 4242 }
		case reflect.Int64: // time.Duration
			sample = "4242s"
			want = func(v reflect.Value) bool { return time.Duration(v.Int()) == 4242*time.Second }
		case reflect.Bool:
			if f.value.Bool() {
				sample = "false"
			} else {
				sample = "true"
			}
			want = func(v reflect.Value) bool { return v.Bool() != f.value.Bool() }
		case reflect.Slice:
			sample = "nats://sample-a:1,nats://sample-b:2"
			want = func(v reflect.Value) bool {
				return reflect.DeepEqual(v.Interface(), []string{"nats://sample-a:1", "nats://sample-b:2"})
			}
		default:
			t.Fatalf("%s: unhandled kind %s", f.env, f.value.Kind())
		}
		t.Run(f.env, func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(f.env, sample)
			cfg, err := Load()
			if err != nil {
				t.Fatalf("Load with %s=%s: %v", f.env, sample, err)
			}
			got := describe(&cfg)
			if len(got) != len(fields) {
				t.Fatalf("describe lists %d fields after Load, %d before", len(got), len(fields))
			}
			if !want(got[i].value) {
				t.Errorf("%s=%s did not set its field: got %v", f.env, sample, got[i].value.Interface())
			}
		})
	}
}

func TestDescribeSecretFields(t *testing.T) {
	cfg := Defaults()
	secret := map[string]bool{}
	fileSibling := map[string]bool{}
	for _, f := range describe(&cfg) {
		if f.secret {
			secret[f.env] = true
		}
		if f.hasFileSibling {
			fileSibling[f.env] = true
		}
	}
	wantSecret := map[string]bool{
		"ROTATION_AGENT_VAULT_TOKEN":   true,
		"ROTATION_AGENT_NATS_PASSWORD": true,
		"ROTATION_AGENT_NATS_TOKEN":    true,
	}
	if !reflect.DeepEqual(secret, wantSecret) {
		t.Errorf("secret fields = %v, want %v", secret, wantSecret)
	}
	// The Vault token has its own TokenFile setting (re-read at login), so no NAME_FILE variant.
	if !reflect.DeepEqual(fileSibling, map[string]bool{"ROTATION_AGENT_VAULT_TOKEN": true}) {
		t.Errorf("fields with a _FILE sibling = %v, want only ROTATION_AGENT_VAULT_TOKEN", fileSibling)
	}
}

func TestPrintEffective(t *testing.T) {
	const (
		vaultToken = "canary-vault-token-8c1f"
		natsPass   = "canary-nats-pass-2b7e"
	)
	cfg := validConfig()
	cfg.Vault.Token = vaultToken
	cfg.NATS.User = "alice"
	cfg.NATS.Password = natsPass
	cfg.NATS.URL = []string{"nats://a:4222", "nats://b:4222"}

	var buf bytes.Buffer
	if err := cfg.PrintEffective(&buf); err != nil {
		t.Fatalf("PrintEffective: %v", err)
	}
	out := buf.String()
	for _, secret := range []string{vaultToken, natsPass} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains the secret %q:\n%s", secret, out)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if n := len(describe(&cfg)); len(lines) != n {
		t.Errorf("printed %d lines, want one per setting (%d)", len(lines), n)
	}
	for _, want := range []string{
		"ROTATION_AGENT_VAULT_TOKEN=****** (set)",
		"ROTATION_AGENT_NATS_PASSWORD=****** (set)",
		"ROTATION_AGENT_NATS_TOKEN=(unset)",
		"ROTATION_AGENT_AGENT_ID=test-agent",
		"ROTATION_AGENT_VAULT_ADDR=http://127.0.0.1:8200",
		"ROTATION_AGENT_VAULT_TOKEN_FILE=",
		"ROTATION_AGENT_NATS_USER=alice",
		"ROTATION_AGENT_NATS_URL=nats://a:4222,nats://b:4222",
		"ROTATION_AGENT_NATS_ACK_WAIT=2m0s",
		"ROTATION_AGENT_NATS_EMBEDDED=false",
		"ROTATION_AGENT_MAX_EVENT_BYTES=65536",
		"ROTATION_AGENT_PASSWORD_LENGTH=32",
	} {
		found := false
		for _, l := range lines {
			if l == want {
				found = true
			}
		}
		if !found {
			t.Errorf("output lacks the line %q:\n%s", want, out)
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, EnvPrefix+"_") || !strings.Contains(l, "=") {
			t.Errorf("line %q is not NAME=value", l)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPrintEffectiveReportsWriteError(t *testing.T) {
	if err := validConfig().PrintEffective(failingWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("PrintEffective to a failing writer = %v, want the write error", err)
	}
}

// A setting Load could not read is printed as unusable, not as a value the agent would use.
func TestPrintEffectiveMarksUnreadSettings(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("ROTATION_AGENT_NATS_ACK_WAIT", "soon")
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD_FILE", filepath.Join(t.TempDir(), "nope"))
	t.Setenv("ROTATION_AGENT_NATS_REPLICAS", "3")
	cfg, err := Load()
	if err == nil {
		t.Fatal("Load: no error")
	}
	var buf bytes.Buffer
	if err := cfg.PrintEffective(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ROTATION_AGENT_NATS_ACK_WAIT=" + unusableText + "\n",
		"ROTATION_AGENT_NATS_PASSWORD=" + unusableText + "\n",
		"ROTATION_AGENT_NATS_REPLICAS=3\n",
		"ROTATION_AGENT_NATS_MAX_DELIVER=10\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}

// An embedding program that ignores Load's error cannot run with the defaults that stand in
// for the settings Load could not read.
func TestRunRefusesAConfigurationLoadCouldNotRead(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "canary-vault-token-5d2e")
	t.Setenv("ROTATION_AGENT_NATS_ACK_WAIT", "soon")
	t.Setenv("ROTATION_AGENT_NATS_PASSWORD_FILE", filepath.Join(t.TempDir(), "nope"))
	cfg, err := Load()
	if err == nil {
		t.Fatal("Load: no error")
	}
	err = Run(context.Background(), cfg, Options{LogOutput: io.Discard})
	want := "invalid configuration: ROTATION_AGENT_NATS_ACK_WAIT, ROTATION_AGENT_NATS_PASSWORD could not be read"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Run = %v, want %q", err, want)
	}
}
