package approle

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// handler answers one Vault request (its query and JSON body) with a status and a JSON body.
type handler func(q url.Values, body map[string]any) (int, any)

// fakeVault answers the routes a test registers ("PUT auth/approle/login", "LIST ...") and
// 404 to anything else, recording every request.
type fakeVault struct {
	mu     sync.Mutex
	routes map[string]handler
	calls  []string
}

func newFakeVault(t *testing.T) (*fakeVault, *vault.Client) {
	t.Helper()
	f := &fakeVault{routes: map[string]handler{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	conf := vault.DefaultConfig()
	conf.Address = srv.URL
	conf.MaxRetries = 0
	client, err := vault.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("agent-token")
	return f, client
}

func (f *fakeVault) on(route string, h handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

func (f *fakeVault) count(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == route {
			n++
		}
	}
	return n
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if r.URL.Query().Get("list") == "true" || method == "LIST" {
		method = "LIST"
	}
	if method == http.MethodPost {
		method = http.MethodPut
	}
	route := method + " " + strings.TrimPrefix(r.URL.Path, "/v1/")
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.calls = append(f.calls, route)
	h := f.routes[route]
	f.mu.Unlock()
	status, out := http.StatusNotFound, any(map[string]any{"errors": []string{}})
	if h != nil {
		status, out = h(r.URL.Query(), body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if out != nil {
		_ = json.NewEncoder(w).Encode(out)
	}
}

func ok(data map[string]any) handler {
	return func(url.Values, map[string]any) (int, any) { return http.StatusOK, map[string]any{"data": data} }
}

func fail(status int, msg string) handler {
	return func(url.Values, map[string]any) (int, any) { return status, map[string]any{"errors": []string{msg}} }
}

// kvAt serves a KV v2 secret at secret/apps/payments whose current version is current.
func (f *fakeVault) kvAt(current int, versions map[int]map[string]any) {
	f.on("GET secret/metadata/apps/payments", ok(map[string]any{"current_version": current, "versions": map[string]any{}}))
	f.on("GET secret/data/apps/payments", func(q url.Values, _ map[string]any) (int, any) {
		v := current
		if n, err := strconv.Atoi(q.Get("version")); err == nil && n > 0 {
			v = n
		}
		return http.StatusOK, map[string]any{"data": map[string]any{"data": versions[v], "metadata": map[string]any{"version": v}}}
	})
}
