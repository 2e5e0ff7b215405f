// Command demo runs rotation-agent end to end on one machine: a real Vault dev server (the
// vault binary built from the Vault module), the agent with its embedded NATS JetStream
// server, sample change events, and the evidence the agent publishes back.
//
//	go run ./demo -vault bin/vault
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/fixtures"
	"github.com/rotation-agent/rotation-agent/test/harness/evidencekey"
	"github.com/rotation-agent/rotation-agent/test/harness/postgres"
)

func main() {
	vaultBin := flag.String("vault", "bin/vault", "path to the vault binary")
	policyFile := flag.String("policy", "../docs/vault-policy.hcl", "the agent's Vault policy")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *vaultBin, *policyFile); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, vaultBin, policyFile string) error {
	work, err := os.MkdirTemp("", "rotation-agent-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("starting a real Vault dev server (%s)", vaultBin)
	v, stopVault, err := startVault(ctx, vaultBin, work)
	if err != nil {
		return err
	}
	defer stopVault()
	step("starting PostgreSQL for the database secrets engine")
	pg, err := postgres.Launch()
	if err != nil {
		return err
	}
	defer func() { _ = pg.Stop() }()
	all := append(fixtures.Vault(), fixtures.Database(pg)...)
	all = append(all, fixtures.Identity()...)
	refs := make([]events.CredentialRef, len(all))
	for i, f := range all {
		if refs[i], err = f.Seed(ctx, v); err != nil {
			return fmt.Errorf("seed %s: %w", f.Name, err)
		}
		fmt.Printf("    seeded %s\n", f.Name)
	}
	agentToken, err := agentToken(ctx, v, policyFile)
	if err != nil {
		return err
	}
	step("the agent gets a token bound to %s only", policyFile)

	natsPort, err := freePort(ctx)
	if err != nil {
		return err
	}
	cfg := agent.Defaults()
	cfg.AgentID = "demo-agent"
	cfg.Vault.Addr = v.Address()
	cfg.Vault.Token = agentToken
	cfg.NATS.Embedded = true
	cfg.NATS.EmbeddedListen = fmt.Sprintf("127.0.0.1:%d", natsPort)
	cfg.NATS.EmbeddedStoreDir = filepath.Join(work, "jetstream")
	cfg.MetricsListen = "127.0.0.1:0" // any free port; the demo does not scrape it
	cfg.Evidence.Signer, cfg.Evidence.KeyFile = agent.SignerFile, filepath.Join(work, "evidence-key.pem")
	if err := evidencekey.Write(cfg.Evidence.KeyFile); err != nil {
		return err
	}
	logPath := filepath.Join(work, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	ready := make(chan string, 1)
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- agent.Run(agentCtx, cfg, agent.Options{LogOutput: logFile, Ready: func(url string) { ready <- url }})
	}()
	var natsURL string
	var evidence events.Evidence
	select {
	case natsURL = <-ready:
	case err := <-agentDone:
		return fmt.Errorf("agent did not start: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	step("agent running with an embedded NATS JetStream server at %s", natsURL)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	received := make(chan *nats.Msg, 16)
	subjects := events.Subjects{Prefix: cfg.SubjectPrefix}
	for _, s := range []string{subjects.EvidenceWildcard(), subjects.Rejections()} {
		if _, err := nc.ChanSubscribe(s, received); err != nil {
			return err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	changes := []struct {
		note    string
		payload []byte
	}{
		{fmt.Sprintf("normal change CHG-DEMO-1001 naming %d credentials, one of each kind", len(refs)), changeEvent("CHG-DEMO-1001", events.ChangeNormal, refs...)},
		{"standard change CHG-DEMO-1002 that touches no credential", changeEvent("CHG-DEMO-1002", events.ChangeStandard)},
		{"a malformed message", []byte(`{"specversion":"1.0","id":`)},
		{"CHG-DEMO-1001 again, re-sent by the bridge", changeEvent("CHG-DEMO-1001", events.ChangeNormal, refs...)},
	}
	for i, c := range changes {
		step("publishing %s", c.note)
		if _, err := js.Publish(ctx, subjects.ChangeCompleted(), c.payload, jetstream.WithMsgID(fmt.Sprintf("demo-%d", i))); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		select {
		case m := <-received:
			if err := printRecord(m); err != nil {
				return err
			}
			if i == 0 {
				var env events.Envelope[events.Evidence]
				if err := json.Unmarshal(m.Data, &env); err != nil {
					return err
				}
				evidence = env.Data
			}
		case <-ctx.Done():
			return fmt.Errorf("no evidence for %s: %w (agent log: %s)", c.note, ctx.Err(), logPath)
		}
	}

	step("checking every credential against Vault and its real target")
	if evidence.Status != events.StatusReconciled || len(evidence.Credentials) != len(all) {
		return fmt.Errorf("CHG-DEMO-1001: status %s with %d credentials, want reconciled with %d", evidence.Status, len(evidence.Credentials), len(all))
	}
	for i, f := range all {
		summary, err := f.Check(ctx, v, refs[i], evidence.Credentials[i])
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		fmt.Printf("    %-22s %s\n", evidence.Credentials[i].Kind, summary)
	}
	stopAgent()
	if err := <-agentDone; err != nil {
		return fmt.Errorf("agent stopped with error: %w", err)
	}
	step("done: every change has evidence, every credential was rotated or revoked once and verified")
	return nil
}

func step(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }

func changeEvent(id string, typ events.ChangeType, creds ...events.CredentialRef) []byte {
	now := time.Now().UTC()
	raw, _ := json.Marshal(events.ChangeEvent{
		SpecVersion: events.SpecVersion, ID: "evt-" + id + "-" + randomHex(4), Source: "itsm://demo",
		Type: events.TypeChangeCompleted, Subject: id, Time: now, DataContentType: "application/json",
		Data: events.Change{
			ID: id, Type: typ, State: "implemented", Summary: "demo change", CompletedAt: now,
			Requester: events.Person{ID: "u-1001", Name: "Dana Ops"}, Approvers: []events.Person{{ID: "u-2002", Name: "Change Board"}},
			Targets: events.Targets{Services: []string{"payments"}}, Credentials: creds,
		},
	})
	return raw
}

func printRecord(m *nats.Msg) error {
	var pretty map[string]any
	if err := json.Unmarshal(m.Data, &pretty); err != nil {
		return fmt.Errorf("record on %s is not JSON: %w", m.Subject, err)
	}
	out, _ := json.MarshalIndent(pretty, "    ", "  ")
	fmt.Printf("    <- %s\n    %s\n", m.Subject, out)
	return nil
}

func startVault(ctx context.Context, bin, work string) (*vaultapi.Client, func(), error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, nil, fmt.Errorf("vault binary: %w (build it with `make vault`)", err)
	}
	port, err := freePort(ctx)
	if err != nil {
		return nil, nil, err
	}
	rootToken := "root-" + randomHex(12)
	logFile, err := os.Create(filepath.Join(work, "vault.log"))
	if err != nil {
		return nil, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Not CommandContext: the server is stopped gracefully by stop, never killed by ctx.
	cmd := exec.Command(bin, //nolint:noctx // see above
		"server", "-dev", "-dev-root-token-id="+rootToken, "-dev-listen-address="+addr, "-dev-no-store-token")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "HOME="+work)
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = logFile.Close()
	}
	conf := vaultapi.DefaultConfig()
	conf.Address = "http://" + addr
	client, err := vaultapi.NewClient(conf)
	if err != nil {
		stop()
		return nil, nil, err
	}
	client.SetToken(rootToken)
	for {
		if h, err := client.Sys().HealthWithContext(ctx); err == nil && h.Initialized && !h.Sealed {
			return client, stop, nil
		}
		select {
		case <-ctx.Done():
			stop()
			return nil, nil, errors.New("vault dev server did not become ready")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// agentToken creates the agent's policy from policyFile and a token bound to it alone.
func agentToken(ctx context.Context, v *vaultapi.Client, policyFile string) (string, error) {
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		return "", fmt.Errorf("agent policy: %w", err)
	}
	if err := v.Sys().PutPolicyWithContext(ctx, "rotation-agent", string(policy)); err != nil {
		return "", err
	}
	tok, err := v.Auth().Token().CreateWithContext(ctx, &vaultapi.TokenCreateRequest{Policies: []string{"rotation-agent"}, TTL: "1h", NoDefaultPolicy: true})
	if err != nil {
		return "", err
	}
	return tok.Auth.ClientToken, nil
}

func freePort(ctx context.Context) (int, error) {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
