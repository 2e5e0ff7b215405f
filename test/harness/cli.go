package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// CLIRun is what one run of a command left: its exit code and output.
type CLIRun struct {
	Code   int
	Stdout string
	Stderr string
}

// RunCLI runs binary with args as a user would run a one-off command, and returns its exit code
// and output; it fails the test if the command cannot be run or takes over two minutes. The
// command sees only env, PATH and a fresh HOME: nothing else of the test's environment (a
// developer's ROTATION_AGENT_* or VAULT_* settings, say) reaches it. env comes last and wins.
func RunCLI(t testing.TB, binary string, env []string, args ...string) CLIRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	run := CLIRun{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("%s %v still running after two minutes; output:\n%s%s", binary, args, run.Stdout, run.Stderr)
	case errors.As(err, &exit):
		run.Code = exit.ExitCode()
	default:
		t.Fatalf("run %s %v: %v", binary, args, err)
	}
	return run
}
