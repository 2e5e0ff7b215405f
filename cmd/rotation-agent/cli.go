package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/rotation-agent/rotation-agent/agent"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const usage = `usage: rotation-agent <command>

commands:
  run            run the agent (configuration from ROTATION_AGENT_* and VAULT_* variables)
  config check   validate the configuration and print it with secrets masked
  plan --event FILE [--output table|json] [--offline]
                 show what each credential of a change event would get, reading Vault only
                 (--offline: the inventory and the event only, without contacting Vault)
  rotate --selector KEY=VALUE --reason TEXT --nkey-seed FILE [--kind K] [--dry-run] [--wait] [--emergency]
                 ask the agent on the bus to rotate the credentials a selector matches
  review list    list the post-change reviews of emergency changes
  review attest CHANGE_ID --by NAME --decision approve|reject [--note TEXT]
                 attest an emergency change
  evidence get|export|keys|verify|gaps
                 read, export and verify evidence; list changes without evidence
                 (rotation-agent evidence, for details)
  version        print the version
  help           print this help

Configuration reference: docs/configuration.md
`

// runCLI runs one command and returns the process exit code. Errors are printed as
// "rotation-agent: ..." lines, one per problem, never as a stack trace.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer, reload <-chan struct{}) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		cfg, err := agent.LoadAndValidate()
		if err != nil {
			return fail(stderr, exitUsage, err)
		}
		notify := systemdNotifier{stderr: stderr}
		opts := agent.Options{LogOutput: stderr, Reload: reload, Up: notify.up, Ready: notify.ready, Stopping: notify.stopping}
		if err := agent.Run(ctx, cfg, opts); err != nil {
			return fail(stderr, exitFailed, err)
		}
		return exitOK
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		cfg, problems := agent.LoadAndValidate()
		if err := cfg.PrintEffective(stdout); err != nil {
			return fail(stderr, exitFailed, err)
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "rotation-agent: warning: %s\n", w)
		}
		if problems != nil {
			return fail(stderr, exitUsage, problems)
		}
		fmt.Fprintln(stdout, "configuration is valid")
		return exitOK
	case "plan":
		return runPlan(ctx, args[1:], stdout, stderr)
	case "rotate":
		return runRotate(ctx, args[1:], stdout, stderr)
	case "review":
		return runReview(ctx, args[1:], stdout, stderr)
	case "evidence":
		return runEvidence(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "rotation-agent %s (%s, %s/%s)\n", agent.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "rotation-agent: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
}

// fail prints err as one "rotation-agent: " line per line of the message and returns code.
func fail(w io.Writer, code int, err error) int {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(w, "rotation-agent: %s\n", line)
		}
	}
	return code
}
