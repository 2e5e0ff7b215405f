package drive

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Calls counts the requests Vault answered for a client, by method and path. It is safe for
// concurrent use.
type Calls struct {
	mu sync.Mutex
	n  map[string]int
}

// Count returns how many requests to path Vault answered with any of the write methods (PUT
// and POST) or, for other methods, with method; path has no /v1/ prefix.
func (c *Calls) Count(method, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if method == http.MethodPut || method == http.MethodPost {
		return c.n[http.MethodPut+" "+path] + c.n[http.MethodPost+" "+path]
	}
	return c.n[method+" "+path]
}

type countingTransport struct {
	next http.RoundTripper
	c    *Calls
}

// RoundTrip counts the requests Vault answered.
func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		t.c.mu.Lock()
		t.c.n[r.Method+" "+strings.TrimPrefix(r.URL.Path, "/v1/")]++
		t.c.mu.Unlock()
	}
	return resp, err
}

// CountingClient returns a client like Client that sends token and counts the requests Vault
// answered.
func CountingClient(t testing.TB, v *harness.Vault, token string) (*vaultapi.Client, *Calls) {
	t.Helper()
	cfg := ClientConfig(t, v)
	calls := &Calls{n: map[string]int{}}
	cfg.HttpClient.Transport = &countingTransport{next: cfg.HttpClient.Transport, c: calls}
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	c.SetToken(token)
	return c, calls
}
