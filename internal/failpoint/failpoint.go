// Package failpoint lets fault tests stop the agent abruptly at a named point, as a kill -9
// would, or slow it down there. A failpoint is armed by naming it in the
// ROTATION_AGENT_FAILPOINT environment variable: NAME makes the process exit at once with
// ExitCode, without deferred functions, acks or flushing; NAME=DURATION (for example
// after-journal-apply=2s) makes it pause there instead. Unarmed points cost one comparison.
package failpoint

import (
	"os"
	"strings"
	"time"
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
	// AfterEvidenceReserved is reached once an evidence record is sealed and reserved in the
	// chain head, before it is published.
	AfterEvidenceReserved = "after-evidence-reserved"
	// AfterEvidencePublished is reached once an evidence record is published, before the chain
	// head records that and before the journal keeps it.
	AfterEvidencePublished = "after-evidence-published"
)

var armed = parse(os.Getenv(EnvVar))

// parse reads the armed failpoints: each maps to a pause, or to zero for an exit.
func parse(v string) map[string]time.Duration {
	if v == "" {
		return nil
	}
	m := map[string]time.Duration{}
	for _, item := range strings.Split(v, ",") {
		name, pause, _ := strings.Cut(strings.TrimSpace(item), "=")
		if name == "" {
			continue
		}
		d, err := time.ParseDuration(pause)
		if err != nil {
			d = 0
		}
		m[name] = d
	}
	return m
}

// Hit exits the process, or pauses, if the failpoint name is armed.
func Hit(name string) {
	if armed == nil {
		return
	}
	if pause, ok := armed[name]; ok {
		if pause > 0 {
			time.Sleep(pause)
			return
		}
		os.Exit(ExitCode)
	}
}
