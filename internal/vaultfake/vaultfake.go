// Package vaultfake provides fake Vault HTTP servers for unit tests of rotators and discovery
// sources. It is imported only by _test.go files.
//
// Client starts any http.Handler as a fake Vault and returns an API client for it. Routes is a
// ready handler that answers requests from a table of routes keyed "METHOD path" and records
// every request; packages whose fakes keep their own state serve it with their own handler and
// use Client, Key and WriteJSON.
package vaultfake

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

// Client serves h on a new httptest server, closed when the test ends, and returns a Vault
// API client for it that sends token and never retries.
func Client(t testing.TB, h http.Handler, token string) *vault.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	conf := vault.DefaultConfig()
	if conf.Error != nil {
		t.Fatal(conf.Error)
	}
	conf.Address = srv.URL
	conf.MaxRetries = 0
	c, err := vault.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// Key returns the route key of a request: "METHOD path", with the path after /v1/. A list
// request (method LIST, or GET with list=true) is keyed LIST and a POST is keyed PUT, as the
// Vault API client sends writes either way.
func Key(r *http.Request) string {
	method := r.Method
	if r.URL.Query().Get("list") == "true" || method == "LIST" {
		method = "LIST"
	}
	if method == http.MethodPost {
		method = http.MethodPut
	}
	return method + " " + strings.TrimPrefix(r.URL.Path, "/v1/")
}

// WriteJSON answers with status and body encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

// Handler answers one Vault request, given its query and JSON body, with a status and a body
// to encode as JSON (none when nil).
type Handler func(q url.Values, body map[string]any) (int, any)

// OK answers 200 with data as the response's data.
func OK(data map[string]any) Handler {
	return func(url.Values, map[string]any) (int, any) { return http.StatusOK, map[string]any{"data": data} }
}

// Fail answers status with msg as the response's only error.
func Fail(status int, msg string) Handler {
	return func(url.Values, map[string]any) (int, any) { return status, map[string]any{"errors": []string{msg}} }
}

// Routes is a fake Vault that answers the routes a test registers with On (keyed as Key
// keys requests, such as "PUT auth/approle/login" or "LIST auth/token/accessors") and 404 to
// anything else. It records the key of every request. It is safe for concurrent use.
type Routes struct {
	mu     sync.Mutex
	routes map[string]Handler
	calls  []string
}

// NewRoutes starts a Routes fake with no routes and returns it with a client for it that
// sends token.
func NewRoutes(t testing.TB, token string) (*Routes, *vault.Client) {
	t.Helper()
	f := &Routes{routes: map[string]Handler{}}
	return f, Client(t, f, token)
}

// On answers route with h from now on, replacing any earlier handler for it.
func (f *Routes) On(route string, h Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

// Count returns how many requests route received.
func (f *Routes) Count(route string) int {
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

// Calls returns the keys of all requests so far, in order.
func (f *Routes) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// ServeHTTP records the request and answers it from the registered routes.
func (f *Routes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := Key(r)
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
	WriteJSON(w, status, out)
}

// KVv2 serves a KV v2 secret at mount/path whose current version is current, with the data
// of each version in versions (a version missing there has no data). Reads of a given version
// (?version=n) get that version.
func (f *Routes) KVv2(mount, path string, current int, versions map[int]map[string]any) {
	f.On("GET "+mount+"/metadata/"+path, OK(map[string]any{"current_version": current, "versions": map[string]any{}}))
	f.On("GET "+mount+"/data/"+path, func(q url.Values, _ map[string]any) (int, any) {
		v := current
		if n, err := strconv.Atoi(q.Get("version")); err == nil && n > 0 {
			v = n
		}
		return http.StatusOK, map[string]any{"data": map[string]any{"data": versions[v], "metadata": map[string]any{"version": v}}}
	})
}
