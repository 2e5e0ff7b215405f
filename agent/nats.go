package agent

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
)

// startEmbeddedNATS starts an in-process NATS server with JetStream, the single-node default
// that needs no external NATS. It returns the client URL and a stop function.
func startEmbeddedNATS(cfg NATSConfig, timeout time.Duration) (string, func(), error) {
	host, portText, err := net.SplitHostPort(cfg.EmbeddedListen)
	if err != nil {
		return "", nil, fmt.Errorf("embedded NATS listen address %q: %w", cfg.EmbeddedListen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", nil, fmt.Errorf("embedded NATS listen port %q: %w", portText, err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "rotation-agent-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.EmbeddedStoreDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return "", nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(timeout) {
		srv.Shutdown()
		return "", nil, fmt.Errorf("embedded NATS did not start listening on %s within %s", cfg.EmbeddedListen, timeout)
	}
	stop := func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	return srv.ClientURL(), stop, nil
}

// connectNATS connects to urls with the configured authentication and TLS. Losing the
// connection later is logged and reconnected forever; only the first connection must succeed.
func connectNATS(cfg NATSConfig, urls []string, name string, timeout time.Duration, log logrus.FieldLogger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.WithError(err).Warn("nats disconnected; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.WithField("server", nc.ConnectedUrlRedacted()).Info("nats reconnected")
		}),
		nats.ClosedHandler(func(*nats.Conn) { log.Info("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			entry := log.WithError(err)
			if sub != nil {
				entry = entry.WithField("subject", sub.Subject)
			}
			entry.Warn("nats asynchronous error")
		}),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NkeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed: %w", err)
		}
		opts = append(opts, opt)
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.CACert != "" {
		opts = append(opts, nats.RootCAs(cfg.CACert))
	}
	if cfg.Cert != "" {
		opts = append(opts, nats.ClientCert(cfg.Cert, cfg.Key))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		shown := make([]string, len(urls))
		for i, u := range urls {
			shown[i] = redactURL(u)
		}
		return nil, fmt.Errorf("nats at %s: %w%s", strings.Join(shown, ","), err, tlsClosedHint(err))
	}
	return nc, nil
}

// tlsClosedHint explains a connection the server closed right after the TLS handshake. With
// TLS 1.3 the server checks the client's certificate after the client has finished its side of
// the handshake, so a refused (or missing) client certificate may reach the client as its alert
// ("tls: certificate required") or only as a closed connection, depending on timing.
func tlsClosedHint(err error) string {
	msg := err.Error()
	closed := strings.Contains(msg, "after TLS handshake") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset")
	if !strings.Contains(msg, "tls") || !closed {
		return ""
	}
	return " (the server closed the connection after the TLS handshake: it may require a client certificate, " +
		"ROTATION_AGENT_NATS_CERT and ROTATION_AGENT_NATS_KEY, or refuse the one given)"
}
