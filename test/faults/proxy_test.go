package faults

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"

	"github.com/rotation-agent/rotation-agent/test/harness"
)

// Modes of the fault proxy.
const (
	proxyHealthy = iota
	// proxyUnavailable answers 503 with Retry-After without forwarding, as a sealed Vault or an
	// overloaded load balancer does.
	proxyUnavailable
	// proxyRateLimited answers 429 with Retry-After without forwarding, as a Vault rate limit
	// quota does.
	proxyRateLimited
	// proxyAnswerLost forwards writes and then answers 504, as a gateway that timed out after
	// Vault committed: the agent must find its write already done and not write again.
	proxyAnswerLost
)

// vaultProxy stands in front of the test Vault and injects faults on demand.
type vaultProxy struct {
	URL     string
	mode    atomic.Int32
	faulted atomic.Int64
}

func startVaultProxy(t *testing.T, v *harness.Vault) *vaultProxy {
	t.Helper()
	target, err := url.Parse(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(v.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	p := &vaultProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load() {
		case proxyUnavailable:
			p.faulted.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":["Vault is sealed"]}`, http.StatusServiceUnavailable)
			return
		case proxyRateLimited:
			p.faulted.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":["request path: rate limit quota exceeded"]}`, http.StatusTooManyRequests)
			return
		case proxyAnswerLost:
			if r.Method != http.MethodGet && r.Method != "LIST" {
				p.faulted.Add(1)
				rp.ServeHTTP(httptest.NewRecorder(), r)
				http.Error(w, `{"errors":["upstream timed out"]}`, http.StatusGatewayTimeout)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}
