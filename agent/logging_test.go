package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// testLogger returns a JSON logger at debug level writing into the returned buffer.
func testLogger(t *testing.T) (*logrus.Logger, *Redactor, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	r := NewRedactor()
	l, err := NewLogger(&buf, "debug", r)
	if err != nil {
		t.Fatalf("NewLogger: %v", err)
	}
	return l, r, &buf
}

// logLines parses every JSON line written to buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// oneLine parses buf, which must hold exactly one log line.
func oneLine(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := logLines(t, buf)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), buf)
	}
	return lines[0]
}

// stringerValue would be marshalled field by field (canary included) if the hook did not
// replace it by its redacted String().
type stringerValue struct{ Conn string }

func (s stringerValue) String() string { return "connection " + s.Conn }

func TestRedactorKnownValueNeverLogged(t *testing.T) {
	const canary = "canary-Secret-7f3a9c"
	tests := []struct {
		name  string
		log   func(l *logrus.Logger)
		key   string // field to check; "msg" for the message
		wantV string
	}{
		{"message", func(l *logrus.Logger) { l.Infof("logging in with %s now", canary) }, "msg", "logging in with [REDACTED] now"},
		{"string field", func(l *logrus.Logger) { l.WithField("detail", "value="+canary+";").Info("x") }, "detail", "value=[REDACTED];"},
		{"error field", func(l *logrus.Logger) {
			l.WithError(fmt.Errorf("login: %w", errors.New("bad secret "+canary))).Warn("login failed")
		}, "error", "login: bad secret [REDACTED]"},
		{"stringer field", func(l *logrus.Logger) { l.WithField("conn", stringerValue{Conn: canary}).Info("x") }, "conn", "connection [REDACTED]"},
		{"stringer pointer field", func(l *logrus.Logger) { l.WithField("conn", &stringerValue{Conn: canary}).Info("x") }, "conn", "connection [REDACTED]"},
		{"entry fields", func(l *logrus.Logger) {
			l.WithFields(logrus.Fields{"a": canary, "b": "ok"}).Error(canary)
		}, "a", "[REDACTED]"},
		{"whole value twice", func(l *logrus.Logger) { l.WithField("detail", canary+canary).Info("x") }, "detail", "[REDACTED][REDACTED]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, r, buf := testLogger(t)
			r.Add(canary)
			tc.log(l)
			if strings.Contains(buf.String(), canary) {
				t.Fatalf("the secret appears in the log:\n%s", buf)
			}
			line := oneLine(t, buf)
			if got := line[tc.key]; got != tc.wantV {
				t.Errorf("%s = %#v, want %q", tc.key, got, tc.wantV)
			}
		})
	}
}

func TestRedactorSensitiveFieldNames(t *testing.T) {
	tests := []struct {
		key      string
		value    any
		redacted bool
	}{
		{"password", "hunter2-ordinary", true},
		{"Password", "hunter2-ordinary", true},
		{"token", "plain-looking", true},
		{"client_token", "plain-looking", true},
		{"vault_token", "plain-looking", true},
		{"nats_token", "plain-looking", true},
		{"nats_password", "plain-looking", true},
		{"secret", "plain-looking", true},
		{"value", "plain-looking", true},
		{"credential_value", "plain-looking", true},
		{"seed", "SUAxyz", true},
		{"private_key", "-----BEGIN", true},
		{"authorization", "Bearer x", true},
		{"password", 12345678, true},
		{"token", errors.New("an error holding the token"), true},
		// Ordinary fields keep their values.
		{"change_id", "CHG0001234", false},
		{"credential", "kv-v2:secret/app/db", false},
		{"password_length", 32, false},
		{"tokens_used", 3, false},
		{"auth_method", "token", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			l, _, buf := testLogger(t)
			l.WithField(tc.key, tc.value).Info("field test")
			line := oneLine(t, buf)
			got := line[tc.key]
			if tc.redacted {
				if got != redactedText {
					t.Errorf("field %q = %#v, want %q", tc.key, got, redactedText)
				}
				return
			}
			want := fmt.Sprint(tc.value)
			if fmt.Sprint(got) != want {
				t.Errorf("field %q = %#v, want it unchanged (%v)", tc.key, got, want)
			}
		})
	}
}

func TestRedactorVaultTokenShapes(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"service token", "token hvs.CAESIJ7cZk0aBcDeFgHiJkLmNoPq here", "token [REDACTED] here"},
		{"service token 24 chars", "hvs.abcdefghijklmnopqrstuvwx", "[REDACTED]"},
		{"batch token", "hvb.AAAAAQJ8Z0aBcDeFgHiJkLmNoPq_-x", "[REDACTED]"},
		{"recovery token", "hvr.AAAAAQJ8Z0aBcDeFgHiJkLmNoPq", "[REDACTED]"},
		{"legacy token", "using s.AbCdEfGhIjKlMnOpQrStUvWx.", "using [REDACTED]."},
		{"in json", `{"client_token":"hvs.CAESIJ7cZk0aBcDeFgHiJkLmNoPq"}`, `{"client_token":"[REDACTED]"}`},
		{"ordinary text", "rotating credential kv-v2:secret/app/db (change CHG0001)", "rotating credential kv-v2:secret/app/db (change CHG0001)"},
		{"short hvs", "hvs.short", "hvs.short"},
		{"legacy too short", "s.AbCdEfGhIjKlMnOpQrStUvW", "s.AbCdEfGhIjKlMnOpQrStUvW"},
		{"legacy too long", "s.AbCdEfGhIjKlMnOpQrStUvWxY", "s.AbCdEfGhIjKlMnOpQrStUvWxY"},
		{"not at word start", "xs.AbCdEfGhIjKlMnOpQrStUvWx", "xs.AbCdEfGhIjKlMnOpQrStUvWx"},
		{"dotted names", "rotation.changes.completed", "rotation.changes.completed"},
	}
	r := NewRedactor()
	for _, tc := range tests {
		if got := r.String(tc.in); got != tc.want {
			t.Errorf("%s: String(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}

	// Through the logger, unknown tokens are removed from every place.
	const token = "hvs.CAESIJ7cZk0aBcDeFgHiJkLmNoPq"
	l, _, buf := testLogger(t)
	l.WithField("detail", "got "+token).WithError(errors.New("lookup " + token)).Warn("token " + token)
	if strings.Contains(buf.String(), token) {
		t.Fatalf("an unknown Vault token appears in the log:\n%s", buf)
	}
	line := oneLine(t, buf)
	if line["msg"] != "token [REDACTED]" || line["detail"] != "got [REDACTED]" || line["error"] != "lookup [REDACTED]" {
		t.Errorf("unexpected redaction: %v", line)
	}
}

func TestRedactorForget(t *testing.T) {
	const value = "rotated-away-value-1234"
	l, r, buf := testLogger(t)
	r.Add(value)
	l.Info("before " + value)
	r.Forget(value)
	l.Info("after " + value)
	lines := logLines(t, buf)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2", len(lines))
	}
	if lines[0]["msg"] != "before [REDACTED]" {
		t.Errorf("while known: msg = %q", lines[0]["msg"])
	}
	if lines[1]["msg"] != "after "+value {
		t.Errorf("after Forget: msg = %q, want the value in clear", lines[1]["msg"])
	}
	r.Forget("never-added") // no panic, no effect
}

func TestRedactorIgnoresShortValues(t *testing.T) {
	tests := []struct {
		value    string
		redacted bool
	}{
		{"", false},
		{"a", false},
		{"admin", false}, // 5 bytes: would mangle ordinary words
		{"admin1", true}, // 6 bytes: the minimum
		{"longer-secret", true},
	}
	for _, tc := range tests {
		r := NewRedactor()
		r.Add(tc.value)
		text := "user admin logged in with [" + tc.value + "]"
		got := r.String(text)
		if tc.redacted {
			if strings.Contains(got, "["+tc.value+"]") {
				t.Errorf("Add(%q): String(%q) = %q, want it redacted", tc.value, text, got)
			}
		} else if got != text {
			t.Errorf("Add(%q): String(%q) = %q, want it unchanged", tc.value, text, got)
		}
	}
}

func TestNewLoggerJSONShape(t *testing.T) {
	l, _, buf := testLogger(t)
	l.WithFields(logrus.Fields{FieldChangeID: "CHG1", FieldCredential: "kv-v2:secret/x", "attempt": 3}).Info("credential rotated")
	l.Warn("vault login failed")
	l.Debug("debug line")
	lines := logLines(t, buf)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), buf)
	}
	wantLevels := []string{"info", "warning", "debug"}
	wantMsgs := []string{"credential rotated", "vault login failed", "debug line"}
	for i, line := range lines {
		if line["level"] != wantLevels[i] {
			t.Errorf("line %d: level = %v, want %s", i, line["level"], wantLevels[i])
		}
		if line["msg"] != wantMsgs[i] {
			t.Errorf("line %d: msg = %v, want %s", i, line["msg"], wantMsgs[i])
		}
		if _, ok := line["time"].(string); !ok {
			t.Errorf("line %d has no time: %v", i, line)
		}
		for k := range line {
			if k != strings.ToLower(k) {
				t.Errorf("line %d: key %q is not lower case", i, k)
			}
		}
	}
	if lines[0][FieldChangeID] != "CHG1" || lines[0][FieldCredential] != "kv-v2:secret/x" || lines[0]["attempt"] != float64(3) {
		t.Errorf("fields not kept: %v", lines[0])
	}
}

func TestNewLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger(&buf, "warn", NewRedactor())
	if err != nil {
		t.Fatalf("NewLogger: %v", err)
	}
	l.Info("hidden")
	l.Error("shown")
	lines := logLines(t, &buf)
	if len(lines) != 1 || lines[0]["msg"] != "shown" || lines[0]["level"] != "error" {
		t.Errorf("at warn level got %v, want only the error line", lines)
	}
	if _, err := NewLogger(&buf, "chatty", NewRedactor()); err == nil {
		t.Error("NewLogger with an unknown level: no error")
	}
}

// A known value that contains another known value is removed whole, whatever the order in
// which they were added.
func TestRedactorRemovesNestedValuesWhole(t *testing.T) {
	for i := 0; i < 50; i++ {
		r := NewRedactor()
		r.Add("SECRET")
		r.Add("SECRETTAIL-abcdef")
		r.Add("prefix-SECRET")
		got := r.String("a=SECRETTAIL-abcdef b=prefix-SECRET c=SECRET")
		if strings.Contains(got, "TAIL") || strings.Contains(got, "prefix") || strings.Contains(got, "SECRET") {
			t.Fatalf("partial leak: %q", got)
		}
	}
}
