package harness

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATSCluster is a cluster of in-process NATS servers with JetStream, each storing in its own
// directory, so a test can stop one node and start it again with its data.
type NATSCluster struct {
	Nodes []*NATS
	t     testing.TB
}

// StartNATSCluster starts size clustered JetStream servers on loopback and waits until
// JetStream has a meta leader. They stop when the test ends.
func StartNATSCluster(t testing.TB, size int) *NATSCluster {
	t.Helper()
	clientPorts, routePorts := freePorts(t, size), freePorts(t, size)
	routes := make([]*url.URL, size)
	for i := range routes {
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", routePorts[i])}
	}
	c := &NATSCluster{t: t}
	for i := 0; i < size; i++ {
		opts := server.Options{
			ServerName: fmt.Sprintf("node-%d", i+1),
			Host:       "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "rotation-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  routes,
		}
		n := &NATS{opts: opts, t: t, URL: fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i])}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		n.startAsync()
	}
	for _, n := range c.Nodes {
		n.waitReady()
		t.Cleanup(n.Stop)
	}
	c.WaitJetStream(30 * time.Second)
	return c
}

// URLs is the comma-separated client URL list of every node, as a client configuration takes it.
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Connect returns a client connection to the cluster, closed when the test ends; it
// reconnects to another node when its node stops.
func (c *NATSCluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Stop stops node i, as a crashed or rebooted NATS host would.
func (c *NATSCluster) Stop(i int) { c.Nodes[i].Stop() }

// Start starts node i again on the same ports with its JetStream data.
func (c *NATSCluster) Start(i int) {
	c.Nodes[i].startAsync()
	c.Nodes[i].waitReady()
}

// WaitJetStream waits until one running node leads JetStream's meta group and every running
// node is current with it.
func (c *NATSCluster) WaitJetStream(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !c.jetStreamSettled() {
		if time.Now().After(deadline) {
			c.t.Fatalf("jetstream cluster not settled after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *NATSCluster) jetStreamSettled() bool {
	leader := false
	for _, n := range c.Nodes {
		if n.Server == nil || !n.Server.Running() {
			continue
		}
		if !n.Server.JetStreamIsCurrent() {
			return false
		}
		leader = leader || n.Server.JetStreamIsLeader()
	}
	return leader
}

// StreamLeader returns the index of the node leading stream in the global account, or -1.
func (c *NATSCluster) StreamLeader(stream string) int {
	for i, n := range c.Nodes {
		if n.Server != nil && n.Server.Running() && n.Server.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

func (n *NATS) startAsync() {
	n.t.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	n.Server = srv
	go srv.Start()
}

func (n *NATS) waitReady() {
	n.t.Helper()
	if !n.Server.ReadyForConnections(30 * time.Second) {
		n.t.Fatalf("nats server %s did not start", n.opts.ServerName)
	}
}

// freePorts returns count loopback ports that were free a moment ago.
func freePorts(t testing.TB, count int) []int {
	t.Helper()
	ports := make([]int, count)
	listeners := make([]net.Listener, count)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		listeners[i], ports[i] = l, l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range listeners {
		_ = l.Close()
	}
	return ports
}
