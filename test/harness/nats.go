package harness

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is a running in-process NATS server with JetStream.
type NATS struct {
	URL    string
	Server *server.Server
	// ClientOptions are what Connect (and so WatchBus) authenticates and sets up TLS with, for
	// a server that requires it.
	ClientOptions []nats.Option
	opts          server.Options
	t             testing.TB
}

// StartNATS starts a NATS server with JetStream on a free loopback port, storing in a
// temporary directory. It stops when the test ends.
func StartNATS(t testing.TB) *NATS { return StartNATSWith(t, nil) }

// StartNATSWith is StartNATS with the server options adjusted by configure (authentication,
// for example).
func StartNATSWith(t testing.TB, configure func(*server.Options)) *NATS {
	t.Helper()
	opts := server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	if configure != nil {
		configure(&opts)
	}
	n := &NATS{opts: opts, t: t}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Start starts the server (again, after Stop) on the same port with the same JetStream data.
// Call it from the test goroutine: it fails the test if the server does not start.
func (n *NATS) Start() {
	n.t.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats server did not start")
	}
	n.Server = srv
	if n.URL == "" {
		n.URL = srv.ClientURL()
		n.opts.Port = srv.Addr().(*net.TCPAddr).Port // a restart listens where clients expect it
	}
}

// Stop shuts the server down and waits until it has stopped, as an operator stopping NATS
// would. Stopping a stopped server does nothing.
func (n *NATS) Stop() {
	if n.Server != nil {
		n.Server.Shutdown()
		n.Server.WaitForShutdown()
	}
}

// Restart stops the server and starts it again on the same port with the same JetStream data,
// after down has passed, as an operator restarting NATS would.
func (n *NATS) Restart(down time.Duration) {
	n.t.Helper()
	n.Stop()
	time.Sleep(down)
	n.Start()
}

// Connect returns a client connection, made with ClientOptions, closed when the test ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.URL, n.ClientOptions...)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
