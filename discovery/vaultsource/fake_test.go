package vaultsource

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// fakeVault answers Vault API requests from a table of routes, keyed "METHOD path" with the
// path after /v1/ (LIST requests arrive as GET ?list=true and are keyed "LIST path", writes
// are keyed "PUT path"). A missing route answers 404.
type fakeVault struct {
	t      *testing.T
	mu     sync.Mutex
	routes map[string]reply
	calls  map[string]int
}

// reply is a status and a JSON body; data is wrapped as {"data": ...} unless errs is set.
type reply struct {
	status int
	data   any
	errs   []string
}

func newFake(t *testing.T) (*fakeVault, *vault.Client) {
	t.Helper()
	f := &fakeVault{t: t, routes: map[string]reply{}, calls: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := vault.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("fake-token-for-tests")
	return f, c
}

func (f *fakeVault) set(key string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[key] = r
}

func (f *fakeVault) ok(key string, data any) { f.set(key, reply{status: 200, data: data}) }

func (f *fakeVault) fail(key string, status int, msg string) {
	f.set(key, reply{status: status, errs: []string{msg}})
}

func (f *fakeVault) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

// ServeHTTP answers from the routes.
func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" || method == "LIST" {
		method = "LIST"
	}
	if method == http.MethodPost {
		method = http.MethodPut
	}
	key := method + " " + path
	if method == http.MethodPut && r.Body != nil {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, field := range []string{"accessor", "secret_id_accessor"} {
			if v, ok := body[field].(string); ok {
				key += " " + v
			}
		}
	}
	f.mu.Lock()
	f.calls[key]++
	rep, ok := f.routes[key]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[]}`))
		return
	}
	w.WriteHeader(rep.status)
	if rep.errs != nil {
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": rep.errs})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": rep.data})
}

// keys is a LIST answer.
func keys(k ...string) map[string]any { return map[string]any{"keys": k} }

// kvMeta is a KV v2 metadata answer for a live version 1 with custom metadata.
func kvMeta(custom map[string]any) map[string]any {
	return map[string]any{
		"current_version": 1,
		"custom_metadata": custom,
		"versions":        map[string]any{"1": map[string]any{"deletion_time": "", "destroyed": false}},
	}
}
