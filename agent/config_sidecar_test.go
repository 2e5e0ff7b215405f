package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sidecarTestConfig(t *testing.T) Config {
	t.Helper()
	sinks := filepath.Join(t.TempDir(), "sinks.yaml")
	err := os.WriteFile(sinks, []byte("version: 1\nsinks:\n  - credential: kv-v2:secret/a\n    path: /run/app/a.env\n    format: env\n    fields: [{from: password, as: A}]\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Vault.Addr, cfg.Vault.Token = "https://vault.example:8200", "t"
	cfg.Sidecar.App = "payments"
	cfg.Sidecar.SinksFile = sinks
	cfg.Sidecar.Notify = NotifyHTTP
	cfg.Sidecar.NotifyURL = "http://127.0.0.1:8080/reload"
	return cfg
}

func TestSidecarConfigValidation(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // problems named; none when empty
	}{
		{"http hook confirms", func(*Config) {}, nil},
		{"signal with health", func(c *Config) {
			c.Sidecar.Notify, c.Sidecar.NotifyPIDFile = NotifySignal, "/run/app.pid"
			c.Sidecar.Confirm, c.Sidecar.HealthURL = ConfirmByHealth, "http://127.0.0.1:8080/healthz"
		}, nil},
		{"signal cannot confirm", func(c *Config) { c.Sidecar.Notify, c.Sidecar.NotifyProcess = NotifySignal, "app" }, []string{"SIDECAR_CONFIRM"}},
		{"signal needs one target", func(c *Config) {
			c.Sidecar.Notify, c.Sidecar.Confirm, c.Sidecar.HealthURL = NotifySignal, ConfirmByHealth, "http://h/x"
		}, []string{"SIDECAR_NOTIFY_PID_FILE"}},
		{"bad signal", func(c *Config) {
			c.Sidecar.Notify, c.Sidecar.NotifySignal, c.Sidecar.NotifyPIDFile = NotifySignal, "KILL", "/p"
			c.Sidecar.Confirm, c.Sidecar.HealthURL = ConfirmByHealth, "http://h/x"
		}, []string{"SIDECAR_NOTIFY_SIGNAL"}},
		{"command through a shell path", func(c *Config) { c.Sidecar.Notify, c.Sidecar.NotifyCommand = NotifyCommand, []string{"reload.sh"} }, []string{"SIDECAR_NOTIFY_COMMAND"}},
		{"everything wrong at once", func(c *Config) {
			c.Sidecar.App, c.Sidecar.SinksFile, c.Sidecar.Notify = "pay ments", "", "email"
			c.Sidecar.Confirm, c.Sidecar.ConfirmTimeout = "health", 0
		}, []string{"SIDECAR_APP", "SIDECAR_SINKS_FILE", "SIDECAR_NOTIFY:", "SIDECAR_HEALTH_URL", "SIDECAR_CONFIRM_TIMEOUT"}},
		{"bad sinks file", func(c *Config) { _ = os.WriteFile(c.Sidecar.SinksFile, []byte("version: 2\n"), 0o600) }, []string{"SIDECAR_SINKS_FILE", "version must be 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sidecarTestConfig(t)
			tc.change(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems %q do not name %s", err, w)
				}
			}
		})
	}
}

// A sidecar gets a consumer and a journal bucket of its own unless they were set; the
// central agent's defaults are left alone.
func TestSidecarDefaultsOwnConsumerAndJournal(t *testing.T) {
	cfg := sidecarTestConfig(t).withSidecarDefaults()
	if cfg.NATS.Consumer != "rotation-agent-sidecar-payments" || cfg.NATS.JournalBucket != "ROTATION_JOURNAL_SIDECAR_PAYMENTS" {
		t.Errorf("consumer %q bucket %q", cfg.NATS.Consumer, cfg.NATS.JournalBucket)
	}
	set := sidecarTestConfig(t)
	set.NATS.Consumer, set.NATS.JournalBucket = "mine", "MINE"
	if got := set.withSidecarDefaults(); got.NATS.Consumer != "mine" || got.NATS.JournalBucket != "MINE" {
		t.Errorf("explicit names replaced: %q %q", got.NATS.Consumer, got.NATS.JournalBucket)
	}
	central := Defaults()
	if got := central.withSidecarDefaults(); got.NATS.Consumer != "rotation-agent" || got.NATS.JournalBucket != "ROTATION_JOURNAL" {
		t.Errorf("central agent's names changed: %q %q", got.NATS.Consumer, got.NATS.JournalBucket)
	}
}
