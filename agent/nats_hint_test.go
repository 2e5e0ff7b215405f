package agent

import (
	"errors"
	"strings"
	"testing"
)

func TestTLSClosedHint(t *testing.T) {
	tests := []struct {
		err  string
		hint bool
	}{
		{"nats: tls error: connection closed by remote after TLS handshake: write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe", true},
		{"remote error: tls: connection reset by peer", true},
		{"remote error: tls: certificate required", false},
		{"nats: no servers available for connection", false},
		{"nats: Authorization Violation", false},
	}
	for _, tt := range tests {
		got := tlsClosedHint(errors.New(tt.err))
		if (got != "") != tt.hint {
			t.Errorf("tlsClosedHint(%q) = %q, want a hint: %t", tt.err, got, tt.hint)
		}
		if tt.hint && !strings.Contains(got, "ROTATION_AGENT_NATS_CERT") {
			t.Errorf("hint %q does not name the setting", got)
		}
	}
}
