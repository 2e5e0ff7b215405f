// Package failpoint lets fault tests stop the agent abruptly at a named point, as a kill -9
// would, or slow it down there. A failpoint is armed by naming it in the
// ROTATION_AGENT_FAILPOINT environment variable: NAME makes the process exit at once with
// ExitCode, without deferred functions, acks or flushing; NAME=DURATION (for example
// after-journal-apply=2s) makes it pause there instead; NAME@N (for example
// after-step-apply@7) lets N-1 hits pass and exits at the Nth, so a fault test can crash a
// busy agent part-way through a stream of work. Unarmed points cost one comparison.
package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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
	// AfterReviewRecorded is reached once a post-change review step (an attestation, a
	// reminder, the escalation) is recorded in the journal bucket with its publication pending,
	// before the review record and its evidence are published.
	AfterReviewRecorded = "after-review-recorded"
	// AfterDelivery is reached in sidecar mode after a part of a delivery is recorded in the
	// journal; the part (written, notified, confirmed) follows it.
	AfterDelivery = "after-delivery-"
)

// action is what an armed failpoint does: pause, or exit at the nth hit (1 = the first).
type action struct {
	pause time.Duration
	nth   int64
	hits  *atomic.Int64
}

var armed = parse(os.Getenv(EnvVar))

// parse reads the armed failpoints.
func parse(v string) map[string]action {
	if v == "" {
		return nil
	}
	m := map[string]action{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		a := action{nth: 1, hits: &atomic.Int64{}}
		name, pause, hasPause := strings.Cut(item, "=")
		if hasPause {
			if d, err := time.ParseDuration(pause); err == nil {
				a.pause = d
			}
		} else if n, count, ok := strings.Cut(item, "@"); ok {
			name = n
			if c, err := strconv.ParseInt(count, 10, 64); err == nil && c > 0 {
				a.nth = c
			}
		}
		if name == "" {
			continue
		}
		m[name] = a
	}
	return m
}

// Hit exits the process, or pauses, if the failpoint name is armed.
func Hit(name string) {
	if armed == nil {
		return
	}
	a, ok := armed[name]
	if !ok {
		return
	}
	if a.pause > 0 {
		time.Sleep(a.pause)
		return
	}
	if a.hits.Add(1) >= a.nth {
		os.Exit(ExitCode)
	}
}
