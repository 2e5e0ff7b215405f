// Package failpoint lets fault tests stop the agent abruptly at a named point, as a kill -9
// would. A failpoint is armed by naming it in the ROTATION_AGENT_FAILPOINT environment
// variable; when the agent reaches an armed point the process exits at once with ExitCode,
// without deferred functions, acks or flushing. Unarmed points cost one comparison.
package failpoint

import (
	"os"
	"strings"
)

// EnvVar names the environment variable holding the armed failpoints, comma separated.
const EnvVar = "ROTATION_AGENT_FAILPOINT"

// ExitCode is the exit status of a process stopped by a failpoint.
const ExitCode = 86

// Names of the failpoints the agent has.
const (
	// AfterJournal is reached after a journal checkpoint is stored; the step name follows it.
	AfterJournal = "after-journal-"
	// AfterVaultWrite is reached after a rotator's write to Vault, before the result is recorded.
	AfterVaultWrite = "after-vault-write"
	// AfterStep is reached after a rotation step is recorded as done; the step name follows it.
	AfterStep = "after-step-"
)

var armed = parse(os.Getenv(EnvVar))

func parse(v string) map[string]bool {
	if v == "" {
		return nil
	}
	m := map[string]bool{}
	for _, name := range strings.Split(v, ",") {
		if name = strings.TrimSpace(name); name != "" {
			m[name] = true
		}
	}
	return m
}

// Hit exits the process if the failpoint name is armed.
func Hit(name string) {
	if armed != nil && armed[name] {
		os.Exit(ExitCode)
	}
}
