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
