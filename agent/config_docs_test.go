package agent

import (
	"os"
	"strings"
	"testing"
)

// Every setting the agent reads is documented in docs/configuration.md.
func TestEverySettingIsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	cfg := Defaults()
	fields := describe(&cfg)
	if len(fields) < 30 {
		t.Fatalf("describe listed only %d settings", len(fields))
	}
	for _, f := range fields {
		if !strings.Contains(doc, "`"+f.env+"`") {
			t.Errorf("%s is not documented in docs/configuration.md", f.env)
		}
	}
}

// A NATS URL that carries a password is refused, and the password is shown nowhere: not in
// the problem, not in `config check`.
func TestNATSURLCredentialsAreRefusedAndHidden(t *testing.T) {
	cfg := Defaults()
	cfg.Vault.Addr, cfg.Vault.Token = "https://vault.example:8200", "t"
	cfg.NATS.URL = []string{"nats://agent:canary-url-password@nats.example:4222"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "carries credentials") {
		t.Fatalf("Validate = %v, want the URL refused", err)
	}
	var out strings.Builder
	if err := cfg.PrintEffective(&out); err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"problem": err.Error(), "config check": out.String()} {
		if strings.Contains(text, "canary-url-password") {
			t.Errorf("the URL's password appears in the %s: %s", what, text)
		}
	}
}
