package agent

import (
	"encoding/json"
	"strings"
	"testing"
)

// Types a caller might log as a field; the canary sits in exported fields at every depth.
type (
	connInfo struct {
		Host     string
		Options  map[string]string
		Previous *connInfo
	}
	taggedInfo struct {
		DSN     string `json:"dsn"`
		Private string `json:"-"`
		Count   uint64 `json:"count"`
	}
	outcomeText string
)

func TestRedactionHookComposites(t *testing.T) {
	const canary = "canary-Composite-91d4"
	const token = "hvs.CAESIJ7cZk0aBcDeFgHiJkLmNoPq"
	tests := []struct {
		name  string
		value any
		want  string // the field as JSON in the log line
		// prefix: want is only the start (the %+v text of a function holds its address)
		prefix bool
	}{
		{"map", map[string]string{"dsn": "postgres://u:" + canary + "@db"}, `{"dsn":"postgres://u:[REDACTED]@db"}`, false},
		{"map with the canary as a key", map[string]int{canary: 1}, `{"[REDACTED]":1}`, false},
		{"map with a sensitive key", map[string]any{"password": "not-known-to-the-redactor", "user": "app"}, `{"password":"[REDACTED]","user":"app"}`, false},
		{"struct", connInfo{Host: "db", Options: map[string]string{"pw": canary}}, `{"Host":"db","Options":{"pw":"[REDACTED]"},"Previous":null}`, false},
		{"pointer to struct", &connInfo{Host: canary}, `{"Host":"[REDACTED]","Options":null,"Previous":null}`, false},
		{"nested pointer", connInfo{Host: "a", Previous: &connInfo{Host: "b " + canary}}, `{"Host":"a","Options":null,"Previous":{"Host":"b [REDACTED]","Options":null,"Previous":null}}`, false},
		{"struct with tags keeps big numbers", taggedInfo{DSN: canary, Private: "x", Count: 1<<63 + 5}, `{"count":9223372036854775813,"dsn":"[REDACTED]"}`, false},
		{"slice", []string{"ok", canary, "token " + token}, `["ok","[REDACTED]","token [REDACTED]"]`, false},
		{"array of structs", [2]connInfo{{Host: canary}, {Host: "x"}}, `[{"Host":"[REDACTED]","Options":null,"Previous":null},{"Host":"x","Options":null,"Previous":null}]`, false},
		{"slice of any", []any{1, true, canary, map[string]any{"k": []string{canary}}}, `[1,true,"[REDACTED]",{"k":["[REDACTED]"]}]`, false},
		{"pointer to string", func() any { s := canary; return &s }(), `"[REDACTED]"`, false},
		{"byte slice", []byte("bytes " + canary), `"bytes [REDACTED]"`, false},
		{"named string type", outcomeText("failed: " + canary), `"failed: [REDACTED]"`, false},
		{"not JSON-representable", map[string]any{"f": func() {}, "s": canary}, `"map[f:`, true},
		{"number", 42, `42`, false},
		{"boolean", true, `true`, false},
		{"nil", nil, `null`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, r, buf := testLogger(t)
			r.Add(canary)
			l.WithField("detail", tc.value).Info("composite field")
			if strings.Contains(buf.String(), canary) || strings.Contains(buf.String(), token) {
				t.Fatalf("a secret appears in the log:\n%s", buf)
			}
			oneLine(t, buf)
			var line map[string]json.RawMessage
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			got := line["detail"]
			if !strings.HasPrefix(string(got), tc.want) || (!tc.prefix && string(got) != tc.want) {
				t.Errorf("detail = %s, want %s", got, tc.want)
			}
		})
	}
}

// The hook works on its own copy: the caller's map is left as it was.
func TestRedactionHookLeavesCallerValuesAlone(t *testing.T) {
	const canary = "canary-Caller-3b8e"
	l, r, _ := testLogger(t)
	r.Add(canary)
	m := map[string]any{"inner": []any{canary}}
	l.WithField("detail", m).Info("x")
	if m["inner"].([]any)[0] != canary {
		t.Errorf("the caller's map was changed: %v", m)
	}
}
