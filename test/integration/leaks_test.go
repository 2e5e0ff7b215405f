package integration

import (
	"strings"
	"testing"
)

// assertNoLeak fails the test if any secret value appears in any of the places: logs,
// evidence, every message that crossed the bus.
func assertNoLeak(t *testing.T, secrets map[string]string, places map[string][]string) {
	t.Helper()
	checked := 0
	for name, secret := range secrets {
		if len(secret) < 8 {
			t.Fatalf("secret %s is too short to scan for reliably", name)
		}
		for where, texts := range places {
			for _, text := range texts {
				checked++
				if strings.Contains(text, secret) {
					t.Errorf("secret %s leaked into %s: %.200q", name, where, text)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("leak scan had nothing to scan")
	}
}
