package database

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func TestNewTarget(t *testing.T) {
	ref := func(opts map[string]string) events.CredentialRef {
		return events.CredentialRef{Kind: KindStaticRole, Mount: "database", Path: "app", Options: opts}
	}
	pg := func(url string) connConfig {
		return connConfig{name: "pg", pluginName: postgresPlugin, connectionURL: url}
	}
	tests := []struct {
		name    string
		ref     events.CredentialRef
		cfg     connConfig
		want    string
		wantErr string
	}{
		{"templated url", ref(nil), pg("postgresql://{{username}}:{{password}}@db:5433/orders?sslmode=disable"), `database "orders" at db:5433`, ""},
		{"redacted url", ref(nil), pg("postgres://vault:xxxxx@db/orders"), `database "orders" at db:5432`, ""},
		{"key value", ref(nil), pg("host=db port=6000 user={{username}} password={{password}} dbname=orders"), `database "orders" at db:6000`, ""},
		{"host and port override", ref(map[string]string{OptionVerifyHost: "10.1.1.1", OptionVerifyPort: "15432"}),
			pg("postgresql://{{username}}:{{password}}@db:5433/orders"), `database "orders" at 10.1.1.1:15432`, ""},
		{"bad port", ref(map[string]string{OptionVerifyPort: "http"}), pg("postgresql://db/orders"), "", "not a port number"},
		{"zero port", ref(map[string]string{OptionVerifyPort: "0"}), pg("postgresql://db/orders"), "", "not a port number"},
		{"mysql", ref(nil), connConfig{name: "my", pluginName: "mysql-database-plugin", connectionURL: "{{username}}:{{password}}@tcp(db)/"}, "", "postgresql-database-plugin databases only"},
		{"no url", ref(nil), pg(""), "", "no connection_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := newTarget(tc.ref, tc.cfg)
			if tc.wantErr != "" {
				if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("newTarget = %v, want a permanent error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tg.String(); got != tc.want {
				t.Errorf("target = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLoginError(t *testing.T) {
	const pw = "canary-login-password-1"
	refused := loginError(fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}), "app", pw)
	if !errors.Is(refused, errLoginRefused) || errors.Is(refused, errUnreachable) {
		t.Errorf("28P01 = %v, want refused", refused)
	}
	other := loginError(fmt.Errorf("dial tcp: connection refused (tried %s)", pw), "app", pw)
	if !errors.Is(other, errUnreachable) || strings.Contains(other.Error(), pw) {
		t.Errorf("network error = %v, want unreachable without the password", other)
	}
	db := loginError(&pgconn.PgError{Code: "3D000", Message: "database does not exist"}, "app", pw)
	if errors.Is(db, errLoginRefused) {
		t.Errorf("a missing database is not a refused password: %v", db)
	}
}
