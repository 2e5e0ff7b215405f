package agent

import (
	"io"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
)

// DialNATS connects a command-line client to the NATS servers of cfg with the agent's
// authentication and TLS settings (an embedded server is reached at its listen address).
func DialNATS(cfg Config, name string) (*nats.Conn, error) {
	urls := cfg.NATS.URL
	if cfg.NATS.Embedded {
		urls = []string{"nats://" + cfg.NATS.EmbeddedListen}
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	return connectNATS(cfg.NATS, urls, name, cfg.StartupTimeout, quiet)
}
