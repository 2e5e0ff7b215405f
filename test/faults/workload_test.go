package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// workload is one scenario's set of changes: change i rotates its own KV v2 secret, created at
// version 1, so Vault's version numbers say exactly how often each change rotated.
type workload struct {
	scenario string
	changes  []string
	paths    []string
	payloads [][]byte
	// transitKeys maps a change's index to the transit key it also rotates (created at
	// version 1), for scenarios that count a second kind.
	transitKeys map[int]string
}

// newWorkload creates n changes; with transitEvery > 0 every transitEvery-th change also
// rotates its own transit key.
func newWorkload(t *testing.T, v *harness.Vault, scenario string, n, transitEvery int) *workload {
	t.Helper()
	w := &workload{scenario: scenario, transitKeys: map[int]string{}}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("CHG-%s-%04d", scenario, i)
		path := fmt.Sprintf("faults/%s/%04d", scenario, i)
		v.PutKV(t, path, map[string]any{"password": fmt.Sprintf("canary-%s-%04d-initial", scenario, i)})
		refs := []events.CredentialRef{{Kind: "kv-v2", Mount: "secret", Path: path, Fields: []string{"password"}}}
		if transitEvery > 0 && i%transitEvery == 0 {
			key := fmt.Sprintf("faults-%s-%04d", scenario, i)
			if _, err := v.Root.Logical().Write("transit/keys/"+key, nil); err != nil {
				t.Fatalf("create transit key: %v", err)
			}
			w.transitKeys[i] = key
			refs = append(refs, events.CredentialRef{Kind: "transit", Mount: "transit", Path: key})
		}
		w.changes = append(w.changes, id)
		w.paths = append(w.paths, path)
		w.payloads = append(w.payloads, harness.ChangeEvent(t, id, refs...))
	}
	return w
}

// transitVersion reads a transit key's latest version from Vault.
func transitVersion(t *testing.T, v *harness.Vault, key string) int {
	t.Helper()
	sec, err := v.Root.Logical().Read("transit/keys/" + key)
	if err != nil || sec == nil {
		t.Fatalf("read transit key %s: %v", key, err)
	}
	n, err := sec.Data["latest_version"].(json.Number).Int64()
	if err != nil {
		t.Fatalf("transit key %s latest_version: %v", key, err)
	}
	return int(n)
}

// eventID is the CloudEvents id of change i's event, used as its Nats-Msg-Id.
func (w *workload) eventID(t *testing.T, i int) string {
	t.Helper()
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(w.payloads[i], &ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

// publisher publishes change events as an ITSM bridge does: through JetStream with Nats-Msg-Id,
// retrying until the stream acknowledges, so an event counts as sent only once it is stored.
type publisher struct {
	js      jetstream.JetStream
	subject string
}

func newPublisher(t *testing.T, nc *nats.Conn) *publisher {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &publisher{js: js, subject: events.Subjects{Prefix: events.DefaultSubjectPrefix}.ChangeCompleted()}
}

// publish stores payload, retrying through outages for up to two minutes; it reports whether
// the stream took it as a duplicate. It fails the test, so call it from the test goroutine.
func (p *publisher) publish(t *testing.T, payload []byte, msgID string) bool {
	t.Helper()
	dup, err := p.store(payload, msgID)
	if err != nil {
		t.Fatal(err)
	}
	return dup
}

// store is publish without the test: it returns the last error once two minutes have passed.
func (p *publisher) store(payload []byte, msgID string) (bool, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ack, err := p.js.Publish(ctx, p.subject, payload, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return ack.Duplicate, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("publish %s: %w", msgID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// publishAll publishes every change of w, one every interval, in the background. The returned
// channel receives nil once all are stored, or the first error; wait for it with waitPublished.
func (p *publisher) publishAll(t *testing.T, w *workload, interval time.Duration) <-chan error {
	t.Helper()
	ids := make([]string, len(w.changes))
	for i := range w.changes {
		ids[i] = w.eventID(t, i)
	}
	done := make(chan error, 1)
	go func() {
		for i := range w.changes {
			if _, err := p.store(w.payloads[i], ids[i]); err != nil {
				done <- err
				return
			}
			time.Sleep(interval)
		}
		done <- nil
	}()
	return done
}

// waitPublished waits until publishAll has stored every change, and fails the test if it could
// not.
func waitPublished(t *testing.T, published <-chan error) {
	t.Helper()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}

// collector records the evidence records published on the bus and when each arrived.
type collector struct {
	mu       sync.Mutex
	first    map[string]time.Time
	status   map[string]events.Status
	after    map[string]string
	records  map[string]int
	arrivals []time.Time
}

func collect(t *testing.T, nc *nats.Conn) *collector {
	t.Helper()
	c := &collector{first: map[string]time.Time{}, status: map[string]events.Status{}, after: map[string]string{}, records: map[string]int{}}
	subject := events.Subjects{Prefix: events.DefaultSubjectPrefix}.EvidenceWildcard()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var env events.Envelope[events.Evidence]
		if json.Unmarshal(m.Data, &env) != nil {
			return
		}
		now := time.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		id := env.Data.ChangeID
		if _, seen := c.first[id]; !seen {
			c.first[id] = now
			c.arrivals = append(c.arrivals, now)
		}
		c.records[id]++
		c.status[id] = env.Data.Status
		for _, cred := range env.Data.Credentials {
			if cred.Kind == "kv-v2" {
				c.after[id] = cred.After["version"]
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// complete reports whether every change has at least min evidence records, the last reconciled.
func (c *collector) complete(w *workload, min int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range w.changes {
		if c.records[id] < min || c.status[id] != events.StatusReconciled {
			return false
		}
	}
	return true
}

// waitComplete waits until complete(w, min) or timeout, polling.
func (c *collector) waitComplete(w *workload, min int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !c.complete(w, min) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// recovery is, for each moment a fault cleared, the time until the next evidence arrived; it
// returns the longest. Faults after which no evidence was due are skipped.
func (c *collector) recovery(clears []time.Time) time.Duration {
	c.mu.Lock()
	arrivals := append([]time.Time(nil), c.arrivals...)
	c.mu.Unlock()
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	var longest time.Duration
	for _, cleared := range clears {
		i := sort.Search(len(arrivals), func(i int) bool { return !arrivals[i].Before(cleared) })
		if i < len(arrivals) {
			longest = max(longest, arrivals[i].Sub(cleared))
		}
	}
	return longest
}

// tally is what a scenario found, counted from the bus and from Vault's own state.
type tally struct {
	Sent, Evidence, Lost, Duplicates int
	// Sent2 counts the transit keys the changes also rotated.
	Sent2 int
	// Mismatched counts evidence whose reported version is not the version Vault holds.
	Mismatched int
}

// count reads every secret of w back from Vault: version 2 is one rotation; version 1 means
// the change was lost; every version beyond 2 is a duplicate rotation.
func (c *collector) count(t *testing.T, v *harness.Vault, w *workload) tally {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := tally{Sent: len(w.changes)}
	for i, id := range w.changes {
		version := v.KV(t, w.paths[i], 0).VersionMetadata.Version
		reconciled := c.status[id] == events.StatusReconciled
		if reconciled {
			r.Evidence++
		}
		switch {
		case version <= 1 || !reconciled:
			r.Lost++
			t.Errorf("%s: secret at version %d, evidence status %q: lost", id, version, c.status[id])
		case version > 2:
			r.Duplicates += version - 2
			t.Errorf("%s: secret at version %d: rotated %d times", id, version, version-1)
		}
		if key, ok := w.transitKeys[i]; ok {
			r.Sent2++
			switch kv := transitVersion(t, v, key); {
			case kv <= 1:
				r.Lost++
				t.Errorf("%s: transit key %s at version %d: not rotated", id, key, kv)
			case kv > 2:
				r.Duplicates += kv - 2
				t.Errorf("%s: transit key %s at version %d: rotated %d times", id, key, kv, kv-1)
			}
		}
		if reconciled && c.after[id] != strconv.Itoa(version) {
			r.Mismatched++
			t.Errorf("%s: evidence says version %s, Vault holds %d", id, c.after[id], version)
		}
	}
	return r
}
