package discovery

import (
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/events"
)

const timedInventory = `version: 1
bindings:
  - name: payments-db
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/db}
    max_age: 720h
    maintenance_windows:
      - start: "0 2 * * SAT"
        duration: 4h
    blackouts:
      - from: 2026-12-24T00:00:00Z
        to: 2026-12-27T00:00:00Z
  - name: break-glass-admin
    select: {services: [vault-admin]}
    credential: {kind: kv-v2, mount: secret, path: breakglass/admin}
    break_glass: true
    schedule: "@daily"
`

func TestInventoryTimingFields(t *testing.T) {
	bs, err := ParseInventory("inv.yaml", []byte(timedInventory), nil)
	if err != nil {
		t.Fatal(err)
	}
	pay, bg := bs[0], bs[1]
	if pay.MaxAge != 720*time.Hour || pay.Plan().MaxAge != 720*time.Hour || pay.Plan().Cron != nil {
		t.Errorf("max_age not read: %+v", pay.Plan())
	}
	if pay.Window == nil || len(pay.Window.Open) != 1 || len(pay.Window.Blackouts) != 1 {
		t.Fatalf("window not read: %+v", pay.Window)
	}
	if pay.Window.Allowed(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) || !pay.Window.Allowed(time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)) {
		t.Error("window does not follow its cron start and duration")
	}
	if !bg.BreakGlass || bg.Plan().Cron == nil || bg.Window != nil {
		t.Errorf("break-glass binding read as %+v", bg)
	}
}

func TestInventoryTimingErrors(t *testing.T) {
	tests := map[string]string{
		"both schedules":  "schedule: \"@daily\"\n    max_age: 24h",
		"bad max age":     "max_age: soon",
		"bad break glass": "break_glass: maybe",
		"window no dur":   "maintenance_windows:\n      - start: \"0 2 * * *\"",
		"window bad cron": "maintenance_windows:\n      - {start: \"every day\", duration: 1h}",
		"blackout order":  "blackouts:\n      - {from: 2026-12-27T00:00:00Z, to: 2026-12-24T00:00:00Z}",
		"blackout time":   "blackouts:\n      - {from: tomorrow, to: 2026-12-24T00:00:00Z}",
	}
	for name, extra := range tests {
		inv := "version: 1\nbindings:\n  - name: b\n    select: {services: [a]}\n    credential: {kind: kv-v2, mount: secret, path: a}\n    " + extra + "\n"
		_, err := ParseInventory("inv.yaml", []byte(inv), nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "inv.yaml:") {
			t.Errorf("%s: error %q names no line", name, err)
		}
	}
}

func TestResolveBreakGlassAndWindows(t *testing.T) {
	bs, err := ParseInventory("inv.yaml", []byte(timedInventory), nil)
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(bs)
	normal := ix.Resolve(events.Change{Type: events.ChangeNormal, Targets: events.Targets{Services: []string{"payments"}}})
	if len(normal) != 1 || normal[0].Window == nil {
		t.Fatalf("normal change: %+v, want the payments credential with its window", normal)
	}
	emergency := ix.Resolve(events.Change{Type: events.ChangeEmergency, Targets: events.Targets{Services: []string{"payments"}}})
	if len(emergency) != 2 || emergency[1].Credential.Path != "breakglass/admin" || !strings.Contains(emergency[1].Reason, "break-glass") {
		t.Fatalf("emergency change: %+v, want the break-glass credential too", emergency)
	}
	named := ix.Resolve(events.Change{Credentials: []events.CredentialRef{{Kind: "kv-v2", Mount: "secret", Path: "payments/db"}}})
	if len(named) != 1 || named[0].Window == nil {
		t.Errorf("a credential named in an event keeps its binding's window: %+v", named)
	}
}
