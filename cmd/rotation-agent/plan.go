package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/rotation-agent/rotation-agent/agent"
)

// runPlan implements `rotation-agent plan`: a dry run that reads Vault and writes nothing.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventFile := fs.String("event", "", "change event file (JSON), or - for standard input")
	output := fs.String("output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *eventFile == "" || (*output != "table" && *output != "json") {
		fmt.Fprintln(stderr, "rotation-agent: plan needs --event FILE and --output table|json")
		return exitUsage
	}
	payload, err := agent.ReadEventFile(*eventFile)
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	cfg, err := agent.Load()
	if err != nil {
		return fail(stderr, exitUsage, err)
	}
	impact, err := agent.PlanEvent(ctx, cfg, payload)
	if err != nil {
		return fail(stderr, exitFailed, err)
	}
	plans := impact.Credentials
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(impact); err != nil {
			return fail(stderr, exitFailed, err)
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CREDENTIAL\tWHY\tSOURCE\tACTION\tCURRENT\tWOULD DO")
		for _, p := range plans {
			current := make([]string, 0, len(p.Current))
			for k, v := range p.Current {
				current = append(current, k+"="+v)
			}
			would := strings.Join(p.WouldDo, "; ")
			if p.Error != "" {
				would = "cannot: " + p.Error
			}
			sort.Strings(current)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Credential, p.MatchedBy, p.Source, p.Action, strings.Join(current, ","), would)
		}
		if err := tw.Flush(); err != nil {
			return fail(stderr, exitFailed, err)
		}
		fmt.Fprintf(stdout, "\nidentity impact: %s (%s)\n", impact.Level, strings.Join(impact.Reasons, "; "))
	}
	for _, p := range plans {
		if p.Error != "" {
			return exitFailed
		}
	}
	return exitOK
}
