package agent

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/schedule"
)

// startScheduledWork sets up the post-change reviews, the scheduler and the request/reply
// services (manual rotation, review attestations and listing). The returned function
// unsubscribes the services.
//
// A sidecar gets a scheduler that only queues its own deferred credentials: the request/reply
// services, post-change reviews, binding schedules and the drift check are the central
// agent's, and a sidecar joining them would answer requests from its own journal.
func startScheduledWork(nc *nats.Conn, p *pipeline, cfg Config, opts Options, kv jetstream.KeyValue) (*scheduler, func(), error) {
	if cfg.Sidecar.enabled() {
		return &scheduler{p: p, cfg: cfg.Schedule, deferredOnly: true}, func() {}, nil
	}
	authz, err := loadRotateAuthz(cfg.Manual.AuthFile)
	if err != nil {
		return nil, nil, err
	}
	deadlines, err := cfg.Review.deadlines()
	if err != nil {
		return nil, nil, err
	}
	reminders, err := cfg.Review.reminders()
	if err != nil {
		return nil, nil, err
	}
	p.reviews = &reviews{p: p, kv: kv, cfg: cfg.Review, deadlines: deadlines, reminders: reminders}
	s := &scheduler{p: p, reviews: p.reviews, cfg: cfg.Schedule, drift: opts.DriftChecker}
	if s.drift == nil && p.entitlements != nil {
		s.drift = evidenceDrift{p: p}
	}
	if s.drift == nil {
		s.drift = logOnlyDrift{log: p.log.WithField("component", "drift-check")}
	}
	if cfg.Schedule.DriftCheck != "" {
		if c, err := schedule.ParseCron(cfg.Schedule.DriftCheck); err == nil {
			s.plan = schedule.Plan{Cron: c}
		}
	}
	manual := &manualService{p: p, authz: authz, maxAge: cfg.Manual.MaxRequestAge}
	queue := cfg.NATS.Consumer
	var subs []*nats.Subscription
	stop := func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for subject, handler := range map[string]nats.MsgHandler{
		p.subjects.Rotate():       manual.serve,
		p.subjects.ReviewAttest(): p.reviews.serve,
		p.subjects.ReviewList():   p.reviews.serve,
	} {
		sub, err := nc.QueueSubscribe(subject, queue, handler)
		if err != nil {
			stop()
			return nil, nil, err
		}
		subs = append(subs, sub)
	}
	return s, stop, nil
}
