package evidence

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// agentBinary is the rotation-agent command, built once for the tests of the evidence commands.
var agentBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotation-agent-evidence-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "rotation-agent")
	build := exec.Command("go", "build", "-o", agentBinary, "github.com/rotation-agent/rotation-agent/cmd/rotation-agent")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rotation-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
