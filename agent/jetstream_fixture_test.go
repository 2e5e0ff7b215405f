package agent

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// embeddedJetStream starts the agent's embedded NATS server on a free loopback port, its store
// in a test directory, and returns a JetStream client of it with the configuration it runs
// with (the defaults otherwise). The server and the connection stop when the test ends.
func embeddedJetStream(t *testing.T) (jetstream.JetStream, NATSConfig) {
	t.Helper()
	cfg := Defaults().NATS
	cfg.EmbeddedListen, cfg.EmbeddedStoreDir = "127.0.0.1:-1", t.TempDir()
	url, stop, err := startEmbeddedNATS(cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, cfg
}
