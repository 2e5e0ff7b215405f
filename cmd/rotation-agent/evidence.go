package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/evidence"
)

const evidenceUsage = `usage: rotation-agent evidence <command>

  get CHANGE_ID                  print the evidence records of a change (JSON Lines)
  export [--since D] [--out F]   write every evidence record (since D ago) as JSON Lines
  keys                           print the public keys of the configured signer (a keyring)
  verify --keys KEYRING FILE     check signatures and hash chains of an export, offline
  gaps --since D                 list change events without a final evidence record
`

// runEvidence implements `rotation-agent evidence ...`.
func runEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, evidenceUsage)
		return exitUsage
	}
	switch args[0] {
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "keys":
		cfg, err := agent.Load()
		if err != nil {
			return fail(stderr, exitUsage, err)
		}
		keys, err := agent.SignerPublicKeys(ctx, cfg)
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		return printJSON(stdout, stderr, evidence.Keyring{Keys: keys})
	case "get", "export", "gaps":
		return runEvidenceBus(ctx, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "rotation-agent: unknown evidence command %q\n%s", args[0], evidenceUsage)
	return exitUsage
}

func runEvidenceBus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evidence "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.Duration("since", 0, "how far back to look, e.g. 24h (0: everything)")
	out := fs.String("out", "", "write to this file instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	if (args[0] == "get") != (fs.NArg() == 1) || fs.NArg() > 1 || (args[0] == "gaps" && *since <= 0) {
		fmt.Fprint(stderr, evidenceUsage)
		return exitUsage
	}
	cfg, err := agent.Load()
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	nc, err := agent.DialNATS(cfg, "rotation-agent evidence "+cfg.AgentID)
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	subjects := events.Subjects{Prefix: cfg.SubjectPrefix}
	var from time.Time
	if *since > 0 {
		from = time.Now().Add(-*since)
	}
	w := stdout
	var file *os.File
	if *out != "" {
		f, err := os.OpenFile(filepath.Clean(*out), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) //nolint:gosec // the operator names the output file
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		defer func() { _ = f.Close() }() // after the checked Close below, on early returns
		w, file = f, f
	}
	switch args[0] {
	case "get":
		records, err := agent.ChangeRecords(ctx, js, cfg.NATS.EvidenceStream, subjects, fs.Arg(0))
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		if len(records) == 0 {
			return fail(stderr, exitFailed, fmt.Errorf("no evidence record for change %s", fs.Arg(0)))
		}
		for _, r := range records {
			line, err := events.Canonical(r)
			if err != nil {
				return fail(stderr, exitFailed, err)
			}
			fmt.Fprintf(w, "%s\n", line)
		}
	case "export":
		n, err := agent.ExportEvidence(ctx, js, cfg.NATS.EvidenceStream, subjects, from, w)
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		fmt.Fprintf(stderr, "rotation-agent: exported %d evidence records\n", n)
	case "gaps":
		gaps, err := agent.EvidenceGaps(ctx, js, cfg.NATS, subjects, from)
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		for _, g := range gaps {
			line, _ := json.Marshal(g)
			fmt.Fprintf(w, "%s\n", line)
		}
		if len(gaps) > 0 {
			return closeOutput(file, stderr, exitFailed)
		}
	}
	return closeOutput(file, stderr, exitOK)
}

// closeOutput closes the output file, if any, so a failed final write is reported.
func closeOutput(f *os.File, stderr io.Writer, code int) int {
	if f == nil {
		return code
	}
	if err := f.Close(); err != nil {
		return fail(stderr, exitFailed, err)
	}
	return code
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evidence verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keysFile := fs.String("keys", "", "keyring written by `rotation-agent evidence keys`")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *keysFile == "" || fs.NArg() != 1 {
		fmt.Fprint(stderr, evidenceUsage)
		return exitUsage
	}
	raw, err := os.ReadFile(*keysFile)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	var keys evidence.Keyring
	if err := json.Unmarshal(raw, &keys); err != nil {
		return fail(stderr, exitUsage, fmt.Errorf("keyring %s: %w", *keysFile, err))
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	defer func() { _ = f.Close() }()
	rep, err := evidence.Verify(f, keys)
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	if code := printJSON(stdout, stderr, rep); code != exitOK {
		return code
	}
	if !rep.OK {
		b := rep.Broken
		return fail(stderr, exitFailed, fmt.Errorf("verification failed at line %d (record %s, agent %s, sequence %d): %s", b.Line, b.RecordID, b.Agent, b.Sequence, b.Reason))
	}
	return exitOK
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, exitFailed, err)
	}
	return exitOK
}
