package kvdeliver

import (
	"context"
	"net/http"
	"testing"

	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// WithFields copies: the data read from Vault is left as it was.
func TestWithFieldsCopies(t *testing.T) {
	data := map[string]any{"keep": "1", "old": "2", "replace": "3"}
	got := WithFields(data, map[string]any{"replace": "new", "add": "4"}, "old")
	want := map[string]any{"keep": "1", "replace": "new", "add": "4"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got[%s] = %v, want %v", k, got[k], v)
		}
	}
	if data["old"] != "2" || data["replace"] != "3" || data["add"] != nil {
		t.Errorf("the input was changed: %v", data)
	}
}

// A missing secret is version 0; an existing one reads its current version.
func TestRead(t *testing.T) {
	f, c := vaultfake.NewRoutes(t, "test-token")
	st, err := Read(context.Background(), c, "secret", "app")
	if err != nil || st.Version != 0 || st.Data != nil {
		t.Fatalf("missing secret: %+v, %v", st, err)
	}
	f.KVv2("secret", "app", 2, map[int]map[string]any{1: {"v": "one"}, 2: {"v": "two"}})
	st, err = Read(context.Background(), c, "secret", "app")
	if err != nil || st.Version != 2 || st.Data["v"] != "two" {
		t.Fatalf("current version: %+v, %v", st, err)
	}
}

// A check-and-set mismatch is permanent and says the secret changed; a 5xx may have been
// written and is retryable.
func TestWriteClassifies(t *testing.T) {
	f, c := vaultfake.NewRoutes(t, "test-token")
	f.On("PUT secret/data/app", vaultfake.Fail(http.StatusBadRequest, "check-and-set parameter did not match the current version"))
	if _, err := Write(context.Background(), c, "secret", "app", 1, map[string]any{"v": "x"}); err == nil || rotators.IsRetryable(err) {
		t.Errorf("cas mismatch: %v, want permanent", err)
	}
	f.On("PUT secret/data/app", vaultfake.Fail(http.StatusServiceUnavailable, "sealed"))
	if _, err := Write(context.Background(), c, "secret", "app", 1, map[string]any{"v": "x"}); err == nil || !rotators.IsRetryable(err) {
		t.Errorf("503: %v, want retryable", err)
	}
	f.On("PUT secret/data/app", vaultfake.OK(map[string]any{"version": 2}))
	if v, err := Write(context.Background(), c, "secret", "app", 1, map[string]any{"v": "x"}); err != nil || v != 2 {
		t.Errorf("write = %d, %v; want version 2", v, err)
	}
}
