package vaultcall

import (
	"errors"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// Refused is true for 4xx answers but 429, and for nothing else.
func TestRefused(t *testing.T) {
	for code, want := range map[int]bool{400: true, 403: true, 404: true, 429: false, 500: false, 503: false} {
		err := &vault.ResponseError{StatusCode: code}
		if Refused(err) != want || Status(err) != code {
			t.Errorf("%d: refused %v, status %d", code, Refused(err), Status(err))
		}
	}
	if Refused(errors.New("dial tcp: refused")) || Status(nil) != 0 {
		t.Error("an error that is not a response is not a refusal")
	}
}

// ClientAs sends the given token, or none, and keeps the namespace.
func TestClientAs(t *testing.T) {
	c, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("own")
	c.SetNamespace("team")
	as, err := ClientAs(c, "other")
	if err != nil || as.Token() != "other" || as.Namespace() != "team" || c.Token() != "own" {
		t.Fatalf("ClientAs: token %q namespace %q (own %q), %v", as.Token(), as.Namespace(), c.Token(), err)
	}
	if none, _ := ClientAs(c, ""); none.Token() != "" {
		t.Errorf("ClientAs with no token sends %q", none.Token())
	}
}
