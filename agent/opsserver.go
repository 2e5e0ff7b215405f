package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// readinessTimeout bounds one readiness check, so a hung Vault makes /readyz fail instead of
// hang.
const readinessTimeout = 3 * time.Second

// readinessCheck reports what keeps the agent from being ready, one short problem per
// dependency (never an error text that could carry a secret); nil problems mean ready.
type readinessCheck func(ctx context.Context) (vaultProblem, natsProblem string)

// opsServer serves /metrics, /healthz and /readyz for probes and Prometheus.
type opsServer struct {
	srv     *http.Server
	addr    string
	done    chan struct{}
	metrics *Metrics
	mu      sync.Mutex
	check   readinessCheck // nil until the agent consumes events, and again once it stops
	phase   string         // why the agent is not ready when check is nil
	phaseOf func() string  // when set, says why instead of phase
}

// startOpsServer listens on addr and serves until stop is called.
func startOpsServer(ctx context.Context, addr string, metrics *Metrics, log logrus.FieldLogger) (*opsServer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener (ROTATION_AGENT_METRICS_LISTEN=%s): %w", addr, err)
	}
	s := &opsServer{addr: ln.Addr().String(), done: make(chan struct{}), metrics: metrics, phase: "starting"}
	mux := http.NewServeMux()
	// A collector that fails (a /proc file hidden by a sandbox) must not fail the whole scrape.
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("metrics server stopped")
		}
	}()
	return s, nil
}

// ready makes /readyz run check from now on.
func (s *opsServer) ready(check readinessCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.check = check
}

// waiting makes /readyz report the agent as not ready, for the reason phase returns at each
// request, until ready or stopping is called.
func (s *opsServer) waiting(phase func() string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.check, s.phaseOf = nil, phase
}

// stopping makes /readyz report the agent as stopping.
func (s *opsServer) stopping() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.check, s.phase, s.phaseOf = nil, "stopping", nil
}

// stop closes the listener and waits, within timeout, for requests in flight.
func (s *opsServer) stop(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

func (s *opsServer) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	check, phase, phaseOf := s.check, s.phase, s.phaseOf
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if check == nil && phaseOf != nil {
		phase = phaseOf()
	}
	if check == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %s\n", phase)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
	defer cancel()
	vaultProblem, natsProblem := check(ctx)
	s.metrics.up(vaultProblem == "", natsProblem == "")
	status := http.StatusOK
	if vaultProblem != "" || natsProblem != "" {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "vault: %s\nnats: %s\n", orOK(vaultProblem), orOK(natsProblem))
}

func orOK(problem string) string {
	if problem == "" {
		return "ok"
	}
	return problem
}
