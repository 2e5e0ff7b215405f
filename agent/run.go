// Package agent runs rotation-agent: it reads change events from NATS JetStream, rotates the
// credentials they name through Vault, and publishes evidence. Run is the whole lifecycle, so
// the command-line program and the tests embed the same agent.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/entitlements"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// Version is the agent's version, set at build time with -ldflags "-X ...agent.Version=v1.2.3".
var Version = "dev"

// Options are what an embedding program may set beside the configuration.
type Options struct {
	// LogOutput receives the JSON log; standard error when nil.
	LogOutput io.Writer
	// Ready, when set, is called once the agent consumes events, with the NATS URL it uses
	// (useful with an embedded server).
	Ready func(natsURL string)
	// Up, when set, is called once the agent is up (logged in to Vault, connected to NATS, its
	// request services subscribed, /healthz served), just before it waits for the first refresh
	// of every discovery source, with the sources it still waits for (none when it is about to
	// consume). Ready follows once it consumes events. main tells systemd it started here, so a
	// discovery source that keeps failing leaves the agent running and not ready rather than
	// failing its start.
	Up func(waitingFor []string)
	// Reload, when set, asks for the inventory to be read again (main sends SIGHUP here).
	Reload <-chan struct{}
	// Listening, when set, is called with the address the HTTP server for /metrics, /healthz
	// and /readyz listens on (useful with port 0), before the agent contacts Vault.
	Listening func(addr string)
	// Stopping, when set, is called once when the agent begins to stop (main tells systemd).
	Stopping func()
	// Clock, when set, replaces the wall clock for schedules, maintenance windows and review
	// deadlines (tests move it by hand).
	Clock clock.Clock
	// DriftChecker, when set, is the entitlement comparison the drift-check schedule runs;
	// by default the check only logs how many identities carry approved entitlements.
	DriftChecker DriftChecker
}

// Run runs the agent until ctx ends, then stops within the configured shutdown timeout. It
// returns an error when start-up fails (bad configuration, Vault or NATS unreachable) or when
// the agent cannot go on; a stop through ctx returns nil.
func Run(ctx context.Context, cfg Config, opts Options) error {
	if err := cfg.unreadSettings(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withSidecarDefaults()
	out := opts.LogOutput
	if out == nil {
		out = os.Stderr
	}
	redactor := NewRedactor()
	for _, s := range []string{cfg.Vault.Token, cfg.NATS.Password, cfg.NATS.Token} {
		redactor.Add(s)
	}
	logger, err := NewLogger(out, cfg.LogLevel, redactor)
	if err != nil {
		return err
	}
	log := logger.WithFields(logrus.Fields{"agent_id": cfg.AgentID, "version": Version})
	for _, w := range cfg.Warnings() {
		log.WithField("setting", w.Setting).Warn(w.Text)
	}

	metrics := NewMetrics()
	var ops *opsServer
	if cfg.MetricsListen != "" {
		if ops, err = startOpsServer(ctx, cfg.MetricsListen, metrics, log.WithField("component", "metrics")); err != nil {
			return err
		}
		defer ops.stop(cfg.ShutdownTimeout)
		if opts.Listening != nil {
			opts.Listening(ops.addr)
		}
	}

	startCtx, cancelStart := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancelStart()

	vs, secret, err := openVault(startCtx, cfg.Vault, log.WithField("component", "vault"), redactor)
	if err != nil {
		return err
	}
	log.WithField("vault_addr", cfg.Vault.Addr).WithField("auth_method", cfg.Vault.AuthMethod).Info("vault login succeeded")

	urls := cfg.NATS.URL
	if cfg.NATS.Embedded {
		url, stop, err := startEmbeddedNATS(cfg.NATS, cfg.StartupTimeout)
		if err != nil {
			return err
		}
		defer stop()
		urls = []string{url}
		log.WithField("nats_url", url).Info("embedded nats server started")
	}
	nc, err := connectNATS(cfg.NATS, urls, "rotation-agent "+cfg.AgentID, cfg.StartupTimeout, log.WithField("component", "nats"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	subjects := events.Subjects{Prefix: cfg.SubjectPrefix}
	res, err := provision(startCtx, js, cfg.NATS, subjects, cfg.Sidecar.enabled(), log.WithField("component", "nats"))
	if err != nil {
		return err
	}
	// An operator-managed consumer's own ack wait and delivery limit are what JetStream
	// applies: progress reports and the last delivery follow them.
	cfg.NATS.AckWait = res.settings.ackWait
	registry, err := newRegistry(vs.client)
	if err != nil {
		return err
	}
	sc, err := newSidecar(cfg.Sidecar, vs.client, redactor, log.WithField("component", "sidecar"), metrics)
	if err != nil {
		return err
	}
	cat, err := newCatalog(cfg.InventoryFile, registry.Kinds(), log.WithField("component", "inventory"))
	if err != nil {
		return err
	}
	signer, err := NewSigner(cfg.Evidence, vs.client)
	if err != nil {
		return err
	}
	if err := checkSigner(startCtx, cfg.Evidence, signer, log.WithField("component", "evidence")); err != nil {
		return err
	}
	p := &pipeline{
		js:             js,
		journal:        &journal{kv: res.journal},
		registry:       registry,
		catalog:        cat,
		locks:          newLocks(res.journal, cfg.AgentID, cfg.LockTTL),
		subjects:       subjects,
		agent:          events.AgentInfo{ID: cfg.AgentID, Version: Version},
		redactor:       redactor,
		log:            log,
		maxBytes:       cfg.MaxEventBytes,
		maxDeliver:     res.settings.maxDeliver,
		generator:      rotators.Generator{Client: vs.client, Length: cfg.Password.Length, Charset: cfg.Password.Charset},
		defaultOverlap: cfg.Overlap,
		retry:          newBackoff(2*time.Second, 2*time.Minute),
		vaultWait:      newBackoff(500*time.Millisecond, 5*time.Second),
		lockWait:       newBackoff(time.Second, time.Second),
		metrics:        metrics,
		clock:          opts.Clock,
		sealer: &sealer{js: js, kv: res.journal, signer: signer, subjects: subjects, stream: cfg.NATS.EvidenceStream, agentID: cfg.AgentID,
			log: log.WithField("component", "evidence")},
		entitlements: &entitlements.Checker{Client: vs.client, Remediate: cfg.Evidence.RemediateEntitlements, Probe: cfg.Evidence.ProbeCapabilities, Secrets: redactor},
		sidecar:      sc,
	}
	if p.clock == nil {
		p.clock = clock.Real{}
	}
	sched, stopServices, err := startScheduledWork(nc, p, cfg, opts, res.journal)
	if err != nil {
		return err
	}
	defer stopServices()
	if !cfg.Sidecar.enabled() {
		// The evidence service reads the central journal; a sidecar's would answer wrongly.
		svc, err := startEvidenceService(nc, &evidenceService{js: js, stream: cfg.NATS.EvidenceStream, subjects: subjects,
			journal: p.journal, log: log.WithField("component", "evidence-service"), clock: p.clock})
		if err != nil {
			return err
		}
		defer func() { _ = svc.Stop() }()
	}

	deadLetters, err := p.watchDeadLetters(nc, cfg.NATS.ChangeStream, cfg.NATS.Consumer)
	if err != nil {
		return fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	defer func() { _ = deadLetters.Unsubscribe() }()
	// The server learns of the subscriptions above before anyone is told the agent is ready,
	// so a request sent then finds its responder.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("nats: send subscriptions: %w", err)
	}

	// Every background goroutine is owned by bgCtx, which ends when Run returns for any
	// reason; Run then waits for them, so a stop is bounded and leaves nothing running.
	var wg sync.WaitGroup
	defer wg.Wait()
	bgCtx, cancelBg := context.WithCancel(context.Background())
	defer cancelBg()
	var discovering *vaultsource.Cache
	if cfg.DiscoveryFile != "" {
		cache, done, err := startDiscovery(bgCtx, cfg.DiscoveryFile, vs.client, cat)
		if err != nil {
			return err
		}
		discovering = cache
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-done
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		vs.keepAlive(bgCtx, secret)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.retireLoop(bgCtx, cfg.RetireInterval)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		cat.watch(bgCtx, cfg.InventoryReloadInterval, opts.Reload)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.countJournalLoop(bgCtx, cfg.RetireInterval)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		sched.run(bgCtx)
	}()

	if opts.Up != nil {
		var pending []string
		if discovering != nil {
			pending = discovering.Pending()
		}
		opts.Up(pending)
	}
	if waitForDiscovery(ctx, discovering, ops, log.WithField("component", "discovery")) {
		started := log.WithFields(logrus.Fields{"subject": subjects.ChangeCompleted(), "consumer": cfg.NATS.Consumer, "kinds": registry.Kinds()})
		if ops != nil {
			ops.ready(readiness(vs, nc))
			started = started.WithField("metrics_addr", ops.addr)
		}
		started.Info("agent started; consuming change events")
		if opts.Ready != nil {
			opts.Ready(nc.ConnectedUrlRedacted())
		}
		err = consume(ctx, res.consumer, p, cfg, log, vs.healthy.Load)
	}
	log.Info("agent stopping")
	if ops != nil {
		ops.stopping()
	}
	if opts.Stopping != nil {
		opts.Stopping()
	}
	if drainErr := nc.Drain(); drainErr != nil && !errors.Is(drainErr, nats.ErrConnectionClosed) {
		log.WithError(drainErr).Warn("nats drain failed")
	}
	// Drain is asynchronous: let in-flight handlers (dead-letter records) finish, within bounds.
	for deadline := time.Now().Add(cfg.ShutdownTimeout); !nc.IsClosed() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// consume feeds delivered messages to the pipeline one at a time until ctx ends, pausing while
// vaultUp reports the Vault session cannot log in. A message in
// hand when ctx ends gets up to ShutdownTimeout to finish; after that its work is cancelled and
// JetStream redelivers it, and the journal resumes it.
func consume(ctx context.Context, cons jetstream.Consumer, p *pipeline, cfg Config, log logrus.FieldLogger, vaultUp func() bool) error {
	iter, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("consume %s: %w", cfg.NATS.Consumer, err)
	}
	defer iter.Stop()
	for {
		// While the agent cannot log in to Vault it takes no work: changes wait in the stream
		// without spending their deliveries.
		for !vaultUp() {
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
		}
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return errors.New("message iterator closed unexpectedly")
		}
		if err != nil {
			log.WithError(err).Warn("fetch from consumer failed; retrying")
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		work(ctx, msg, p, cfg)
	}
}

// work runs one message with a context that outlives ctx by ShutdownTimeout, telling JetStream
// the message is in progress so a long rotation is not redelivered to another replica.
func work(ctx context.Context, msg jetstream.Msg, p *pipeline, cfg Config) {
	workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan struct{})
	go func() {
		ticker := time.NewTicker(cfg.NATS.AckWait / 3)
		defer ticker.Stop()
		var deadline <-chan time.Time
		stopping := ctx.Done()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				_ = msg.InProgress()
			case <-stopping:
				stopping = nil
				deadline = time.After(cfg.ShutdownTimeout)
			case <-deadline:
				cancel()
				return
			}
		}
	}()
	defer close(done)
	p.handle(workCtx, msg)
}
