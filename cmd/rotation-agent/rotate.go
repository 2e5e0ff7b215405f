package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
)

// manyCredentials is the number of credentials from which --wait shows a progress bar (on a
// terminal) instead of a line per credential.
const manyCredentials = 5

// selectorFlag collects repeated --selector key=value[,value] flags.
type selectorFlag struct{ targets events.Targets }

func (s *selectorFlag) String() string { return "" }

// Set adds one key=value[,value] selector; keys may be singular (service, host, env).
func (s *selectorFlag) Set(v string) error {
	key, value, ok := strings.Cut(v, "=")
	if !ok || value == "" {
		return fmt.Errorf("%q is not key=value (for example service=payments)", v)
	}
	vals := strings.Split(value, ",")
	t := &s.targets
	switch strings.ToLower(key) {
	case "service", "services":
		t.Services = append(t.Services, vals...)
	case "host", "hosts":
		t.Hosts = append(t.Hosts, vals...)
	case "ci", "configuration_item", "configuration_items":
		t.ConfigurationItems = append(t.ConfigurationItems, vals...)
	case "env", "environment", "environments":
		t.Environments = append(t.Environments, vals...)
	case "owner", "owners":
		t.Owners = append(t.Owners, vals...)
	case "identity", "identities":
		t.Identities = append(t.Identities, vals...)
	default:
		return fmt.Errorf("unknown selector key %q (service, host, ci, env, owner, identity)", key)
	}
	return nil
}

// runRotate implements `rotation-agent rotate`: a signed request on the bus, and with --wait
// the progress and evidence of the rotation.
func runRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sel selectorFlag
	fs.Var(&sel, "selector", "key=value[,value] choosing bindings (service, host, ci, env, owner, identity); repeatable")
	reason := fs.String("reason", "", "why (kept in the evidence); required")
	kind := fs.String("kind", "", "only credentials of this kind")
	dryRun := fs.Bool("dry-run", false, "show what would be done; change nothing")
	wait := fs.Bool("wait", false, "show progress per credential and exit non-zero if any failed")
	emergency := fs.Bool("emergency", false, "rotate now even outside maintenance windows, and open a post-change review")
	requestID := fs.String("request-id", "", "id of the request (default: generated); the same id never rotates twice")
	seedFile := fs.String("nkey-seed", os.Getenv("ROTATION_AGENT_REQUEST_NKEY_SEED_FILE"), "file holding the requester's nkey user seed (default $ROTATION_AGENT_REQUEST_NKEY_SEED_FILE)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long --wait waits for the evidence")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *reason == "" || *seedFile == "" || describeTargets(sel.targets) == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rotation-agent: rotate needs --selector key=value, --reason TEXT and --nkey-seed FILE")
		return exitUsage
	}
	if *requestID == "" {
		*requestID = "req-" + time.Now().UTC().Format("20060102T150405") + "-" + strings.ToLower(nuid.Next()[:10])
	}
	seed, err := os.ReadFile(*seedFile) //nolint:gosec // the user names their own key file
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	seed = bytes.TrimSpace(seed)
	key, err := agent.NkeyPublicKey(seed)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	req := events.RotateRequest{RequestID: *requestID, RequesterKey: key, Selector: sel.targets, Kind: *kind,
		Reason: *reason, DryRun: *dryRun, Emergency: *emergency, IssuedAt: time.Now().UTC()}
	body, err := json.Marshal(req)
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	sig, err := agent.SignRotateRequest(seed, body)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	cfg, err := agent.Load()
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	nc, err := agent.DialNATS(cfg, "rotation-agent rotate")
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	defer nc.Close()
	subjects := events.Subjects{Prefix: cfg.SubjectPrefix}
	changeID := "manual:" + *requestID

	// Listen before asking, so no progress or evidence is missed.
	var w *watcher
	if *wait && !*dryRun {
		w, err = watch(ctx, nc, cfg.NATS.EvidenceStream, subjects, changeID)
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		defer w.stop()
	}
	msg := nats.NewMsg(subjects.Rotate())
	msg.Data = body
	msg.Header.Set(events.SignatureHeader, sig)
	resp, err := nc.RequestMsgWithContext(withTimeout(ctx, 30*time.Second), msg)
	if err != nil {
		return fail(stderr, exitFailed, fmt.Errorf("rotate request: %w", err))
	}
	var reply events.RotateReply
	if err := json.Unmarshal(resp.Data, &reply); err != nil {
		return fail(stderr, exitFailed, fmt.Errorf("unreadable reply: %w", err))
	}
	switch reply.Status {
	case events.RotateRefused, events.RotateInvalid:
		return fail(stderr, exitFailed, fmt.Errorf("request %s %s: %s", reply.RequestID, reply.Status, reply.Reason))
	case events.RotatePlanned:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CREDENTIAL\tACTION\tWOULD DO")
		failed := false
		for _, p := range reply.Plan {
			would := strings.Join(p.WouldDo, "; ")
			if p.Error != "" {
				would, failed = "cannot: "+p.Error, true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Credential, p.Action, would)
		}
		_ = tw.Flush()
		if failed {
			return exitFailed
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "accepted: change %s, %d credential(s)\n", reply.ChangeID, len(reply.Credentials))
	if w == nil {
		return exitOK
	}
	return w.report(withTimeout(ctx, *timeout), stdout, len(reply.Credentials))
}

func withTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

func describeTargets(t events.Targets) string {
	return strings.Join(append(append(append(append(append(append([]string{}, t.Services...), t.Hosts...), t.ConfigurationItems...), t.Environments...), t.Owners...), t.Identities...), ",")
}

// watcher follows the progress and the evidence of one change.
type watcher struct {
	progress chan events.Progress
	evidence chan events.Envelope[events.Evidence]
	stops    []func()
}

func watch(ctx context.Context, nc *nats.Conn, stream string, subjects events.Subjects, changeID string) (*watcher, error) {
	w := &watcher{progress: make(chan events.Progress, 1024), evidence: make(chan events.Envelope[events.Evidence], 16)}
	sub, err := nc.Subscribe(subjects.Progress(changeID), func(m *nats.Msg) {
		var p events.Progress
		if json.Unmarshal(m.Data, &p) == nil && p.ChangeID == changeID {
			select {
			case w.progress <- p:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	w.stops = append(w.stops, func() { _ = sub.Unsubscribe() })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	// An ordered consumer reads the evidence subject from its start: evidence published before
	// we listened (a request sent again) is seen too.
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.Evidence(changeID)}})
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("follow evidence: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var env events.Envelope[events.Evidence]
		if json.Unmarshal(m.Data(), &env) == nil && env.Data.ChangeID == changeID && !env.Data.IsReviewStep() {
			select {
			case w.evidence <- env:
			default:
			}
		}
	})
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("follow evidence: %w", err)
	}
	w.stops = append(w.stops, cc.Stop)
	return w, nil
}

func (w *watcher) stop() {
	for _, s := range w.stops {
		s()
	}
}

// report prints progress until the evidence arrives, then the outcome of every credential.
// It returns exitFailed when a credential failed or the evidence did not come in time.
func (w *watcher) report(ctx context.Context, stdout io.Writer, total int) int {
	var bar *progressbar.ProgressBar
	if f, ok := stdout.(*os.File); ok && total >= manyCredentials && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("rotating"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "no evidence yet; the rotation goes on in the agent")
			return exitFailed
		case p := <-w.progress:
			if bar != nil {
				_ = bar.Set(p.Done)
				continue
			}
			fmt.Fprintf(stdout, "[%d/%d] %s %s\n", p.Done, p.Total, p.Credential, p.Outcome)
		case env := <-w.evidence:
			if bar != nil {
				_ = bar.Finish()
			}
			return printEvidence(stdout, env)
		}
	}
}

// printEvidence shows the outcome of every credential and returns exitFailed if one failed.
func printEvidence(stdout io.Writer, env events.Envelope[events.Evidence]) int {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREDENTIAL\tOUTCOME\tDETAIL")
	code := exitOK
	for _, c := range env.Data.Credentials {
		detail := c.Error
		if c.DeferredUntil != nil {
			detail = "deferred until " + c.DeferredUntil.Format(time.RFC3339)
		}
		if c.Outcome == events.OutcomeFailed || c.Outcome == events.OutcomeNeedsReconcile {
			code = exitFailed
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Credential, c.Outcome, detail)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "change %s: %s\n", env.Data.ChangeID, env.Data.Status)
	return code
}
