package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/events"
)

// runReview implements `rotation-agent review list` and `review attest CHANGE_ID ...`.
func runReview(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "attest") {
		fmt.Fprintln(stderr, "rotation-agent: review needs list or attest CHANGE_ID --by NAME --decision approve|reject [--note TEXT]")
		return exitUsage
	}
	var subject func(events.Subjects) string
	var body []byte
	output := "table"
	if args[0] == "list" {
		fs := flag.NewFlagSet("review list", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.StringVar(&output, "output", "table", "table or json")
		if err := fs.Parse(args[1:]); err != nil || (output != "table" && output != "json") {
			return exitUsage
		}
		subject, body = events.Subjects.ReviewList, []byte("{}")
	} else {
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			fmt.Fprintln(stderr, "rotation-agent: review attest needs CHANGE_ID first")
			return exitUsage
		}
		fs := flag.NewFlagSet("review attest", flag.ContinueOnError)
		fs.SetOutput(stderr)
		by := fs.String("by", "", "who attests; required")
		decision := fs.String("decision", "", "approve or reject; required")
		note := fs.String("note", "", "free text kept in the record")
		if err := fs.Parse(args[2:]); err != nil {
			return exitUsage
		}
		if *by == "" || (*decision != string(events.DecisionApprove) && *decision != string(events.DecisionReject)) {
			fmt.Fprintln(stderr, "rotation-agent: review attest needs --by NAME and --decision approve|reject")
			return exitUsage
		}
		var err error
		body, err = json.Marshal(events.AttestRequest{ChangeID: args[1], By: *by, Decision: events.Decision(*decision), Note: *note})
		if err != nil {
			return fail(stderr, exitFailed, err)
		}
		subject = events.Subjects.ReviewAttest
	}
	cfg, err := agent.Load()
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	nc, err := agent.DialNATS(cfg, "rotation-agent review")
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	defer nc.Close()
	resp, err := nc.RequestWithContext(withTimeout(ctx, 30*time.Second), subject(events.Subjects{Prefix: cfg.SubjectPrefix}), body)
	if err != nil {
		return fail(stderr, exitFailed, fmt.Errorf("review request: %w", err))
	}
	var reply events.ReviewReply
	if err := json.Unmarshal(resp.Data, &reply); err != nil {
		return fail(stderr, exitFailed, fmt.Errorf("unreadable reply: %w", err))
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(reply)
	} else {
		printReviews(stdout, reply.Reviews)
	}
	if reply.Error != "" {
		return fail(stderr, exitFailed, errors.New(reply.Error))
	}
	return exitOK
}

func printReviews(w io.Writer, reviews []events.Review) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGE\tSTATUS\tDEADLINE\tATTESTED BY\tCLEAN-UP")
	for _, r := range reviews {
		var by []string
		for _, a := range r.Attestations {
			by = append(by, a.By+" ("+string(a.Decision)+")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ChangeID, r.Status, r.Deadline.Format(time.RFC3339), strings.Join(by, ", "), r.CleanupChangeID)
	}
	_ = tw.Flush()
}
