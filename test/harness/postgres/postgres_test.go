package postgres

import (
	"context"
	"os"
	"testing"
	"time"
)

// The harness gives a server the superuser can log in to with its password, that refuses a
// wrong password, that runs role changes, and whose files go away at the end.
func TestStart(t *testing.T) {
	var dir string
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		dir = s.Dir
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.CanLogin(ctx, s.Superuser, s.Password); err != nil {
			t.Fatalf("superuser login: %v", err)
		}
		err := s.CanLogin(ctx, s.Superuser, "wrong-"+s.Password)
		if err == nil || !IsAuthFailure(err) {
			t.Fatalf("login with a wrong password: %v, want an authentication failure", err)
		}
		s.CreateLoginRole(t, "app_user", "first-pw", false)
		if err := s.CanLogin(ctx, "app_user", "first-pw"); err != nil {
			t.Fatalf("new role login: %v", err)
		}
		before := s.PasswordHash(t, "app_user")
		s.SetPassword(t, "app_user", "second'pw")
		if err := s.CanLogin(ctx, "app_user", "first-pw"); !IsAuthFailure(err) {
			t.Errorf("old password after change: %v, want an authentication failure", err)
		}
		if err := s.CanLogin(ctx, "app_user", "second'pw"); err != nil {
			t.Errorf("new password after change: %v", err)
		}
		if after := s.PasswordHash(t, "app_user"); after == before || after == "" {
			t.Errorf("password verifier did not change (%q)", after)
		}
		if got := s.QueryString(t, "SHOW listen_addresses"); got != "127.0.0.1" {
			t.Errorf("listen_addresses = %q, want loopback only", got)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after the test: %v", dir, err)
	}
}
