package faults

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/internal/failpoint"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// suite is what every scenario shares: one Vault and the agent's token under its policy.
type suite struct {
	v      *harness.Vault
	token  string
	events int
	// keyFile is the key agents sign their evidence with.
	keyFile string
}

// row is one line of the reliability table.
type row struct {
	Name     string
	Fault    string
	Settings string
	tally
	Faults   int
	Recovery time.Duration
	Duration time.Duration
}

// scenario injects one kind of fault while a workload runs.
type scenario struct {
	name, fault string
	run         func(t *testing.T, s *suite) row
}

var scenarios = []scenario{
	{"agent-kill", "agent killed (exit at a failpoint after each journal step, or SIGKILL) and restarted", agentKill},
	{"nats-node-loss", "one node of a three-node NATS cluster stopped mid-stream and restarted (stream and journal R3)", natsNodeLoss},
	{"vault-sealed", "Vault sealed mid-stream, unsealed later", vaultSealed},
	{"vault-503-429", "Vault answering 503 and 429 with Retry-After in bursts, and 504 after committing writes", vaultBursts},
	{"ackwait-expiry", "two replicas, rotations slower than AckWait, one replica frozen (SIGSTOP) past AckWait and its lock TTL", ackWaitExpiry},
	{"duplicate-publish", "every event published twice inside the de-duplication window, then again outside it and under a new event id", duplicatePublish},
}

// agentEnv configures an agent process the way an operator would, through its environment.
func agentEnv(s *suite, vaultAddr, natsURLs string, extra ...string) []string {
	cfg := harness.AgentConfigWithKey(s.v, s.token, nil, s.keyFile)
	cfg.AgentID = "fault-agent"
	cfg.Vault.Addr = vaultAddr
	cfg.NATS.URL = strings.Split(natsURLs, ",")
	return harness.ProcessEnv(cfg, extra...)
}

// drainTimeout bounds how long a scenario waits for the last evidence after its faults.
func drainTimeout(events int) time.Duration { return 2*time.Minute + time.Duration(events)*time.Second }

// finish waits for every change's evidence, stops the agents and counts.
func finish(t *testing.T, s *suite, c *collector, w *workload, started time.Time, procs ...*harness.Process) tally {
	t.Helper()
	if !c.waitComplete(w, 1, drainTimeout(len(w.changes))) {
		for _, p := range procs {
			t.Logf("agent output (tail):\n%s", tail(p.Output.String(), 40))
		}
	}
	for _, p := range procs {
		p.Kill()
		if out := p.Output.String(); strings.Contains(out, "panic") || strings.Contains(out, s.token) {
			t.Errorf("agent output holds a panic or the token:\n%s", tail(out, 40))
		}
	}
	return c.count(t, s.v, w)
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// agentKill crashes the agent over and over while it works: each incarnation exits at the
// Nth hit of one failpoint (cycling through every journal step and the moment after Vault
// accepted a write), and every fourth is killed with SIGKILL at a random moment instead.
func agentKill(t *testing.T, s *suite) row {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	c := collect(t, nc)
	w := newWorkload(t, s.v, "kill", s.events, 5)
	started := time.Now()
	points := []string{
		failpoint.AfterJournal + "prepare", failpoint.AfterJournal + "apply", failpoint.AfterVaultWrite,
		failpoint.AfterStep + "apply", failpoint.AfterJournal + "verify", failpoint.AfterStep + "promote",
		failpoint.AfterJournal + "retire", failpoint.AfterStep + "retire",
	}
	published := newPublisher(t, nc).publishAll(t, w, 0)
	var clears []time.Time
	var last *harness.Process
	deadline := time.Now().Add(drainTimeout(s.events))
	for i := 0; !c.complete(w, 1) && time.Now().Before(deadline); i++ {
		var p *harness.Process
		if i%4 == 3 {
			p = harness.StartProcess(t, agentBinary, agentEnv(s, s.v.Addr, n.URL))
			p.WaitReady(t, time.Minute)
			time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
			if c.complete(w, 1) {
				last = p
				break
			}
			p.Kill()
		} else {
			point := fmt.Sprintf("%s@%d", points[(i-i/4)%len(points)], 2+rand.IntN(max(3, s.events/25)))
			p = harness.StartProcess(t, agentBinary, agentEnv(s, s.v.Addr, n.URL, failpoint.EnvVar+"="+point))
			for !p.Done() && !c.complete(w, 1) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !p.Done() {
				last = p
				break
			}
			if code := p.Exited(); code != failpoint.ExitCode {
				t.Fatalf("agent exited %d, want the failpoint's %d:\n%s", code, failpoint.ExitCode, tail(p.Output.String(), 40))
			}
		}
		clears = append(clears, time.Now())
	}
	if last == nil {
		last = harness.StartProcess(t, agentBinary, agentEnv(s, s.v.Addr, n.URL))
	}
	waitPublished(t, published)
	r := finish(t, s, c, w, started, last)
	return row{tally: r, Faults: len(clears), Recovery: c.recovery(clears), Duration: time.Since(started),
		Settings: fmt.Sprintf("1 NATS server, stream R1; AckWait 5s; lock TTL 3s; %d changes also rotate a transit key", r.Sent2)}
}

// natsNodeLoss stops the node leading the change stream while changes flow, restarts it, then
// does the same to the node leading the journal.
func natsNodeLoss(t *testing.T, s *suite) row {
	cl := harness.StartNATSCluster(t, 3)
	nc := cl.Connect(t)
	c := collect(t, nc)
	w := newWorkload(t, s.v, "nats", s.events, 0)
	env := agentEnv(s, s.v.Addr, cl.URLs(), "ROTATION_AGENT_NATS_REPLICAS=3")
	a := harness.StartProcess(t, agentBinary, env)
	a.WaitReady(t, time.Minute)
	b := harness.StartProcess(t, agentBinary, env)
	b.WaitReady(t, time.Minute)
	started := time.Now()
	published := newPublisher(t, nc).publishAll(t, w, 30*time.Millisecond)
	var clears []time.Time
	for _, stream := range []string{"ROTATION_CHANGES", "KV_ROTATION_JOURNAL"} {
		waitEvidenceCount(c, w, len(clears)*s.events/3+s.events/4, time.Minute)
		victim := cl.StreamLeader(stream)
		if victim < 0 {
			victim = len(clears)
		}
		// With three replicas the cluster fails over while the node is down: recovery is
		// measured from the node stopping to the next evidence.
		cl.Stop(victim)
		clears = append(clears, time.Now())
		time.Sleep(5 * time.Second)
		cl.Start(victim)
	}
	waitPublished(t, published)
	r := finish(t, s, c, w, started, a, b)
	return row{tally: r, Faults: len(clears), Recovery: c.recovery(clears), Duration: time.Since(started),
		Settings: "3 NATS servers, streams and journal R3, default sync_interval; 2 agents; node down 5s; recovery counted from the node stopping"}
}

// waitEvidenceCount waits until at least n changes of w have evidence.
func waitEvidenceCount(c *collector, w *workload, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := 0
		for _, id := range w.changes {
			if _, ok := c.first[id]; ok {
				got++
			}
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vaultSealed seals Vault while changes flow and unseals it after a while.
func vaultSealed(t *testing.T, s *suite) row {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	c := collect(t, nc)
	w := newWorkload(t, s.v, "sealed", s.events, 0)
	a := harness.StartProcess(t, agentBinary, agentEnv(s, s.v.Addr, n.URL))
	a.WaitReady(t, time.Minute)
	started := time.Now()
	published := newPublisher(t, nc).publishAll(t, w, 20*time.Millisecond)
	waitEvidenceCount(c, w, s.events/3, time.Minute)
	s.v.Seal(t)
	time.Sleep(8 * time.Second)
	s.v.Unseal(t)
	clears := []time.Time{time.Now()}
	waitPublished(t, published)
	r := finish(t, s, c, w, started, a)
	return row{tally: r, Faults: 1, Recovery: c.recovery(clears), Duration: time.Since(started),
		Settings: "sealed 8s; 1 agent"}
}

// vaultBursts puts a proxy in front of Vault that answers 503, 429 (both with Retry-After: 1)
// and 504-after-commit in bursts while changes flow.
func vaultBursts(t *testing.T, s *suite) row {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	c := collect(t, nc)
	w := newWorkload(t, s.v, "bursts", s.events, 0)
	proxy := startVaultProxy(t, s.v)
	a := harness.StartProcess(t, agentBinary, agentEnv(s, proxy.URL, n.URL))
	a.WaitReady(t, time.Minute)
	started := time.Now()
	published := newPublisher(t, nc).publishAll(t, w, 100*time.Millisecond)
	var clears []time.Time
	modes := []int32{proxyUnavailable, proxyRateLimited, proxyAnswerLost}
	for i := 0; !c.complete(w, 1) && time.Since(started) < drainTimeout(s.events); i++ {
		proxy.mode.Store(modes[i%len(modes)])
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		proxy.mode.Store(proxyHealthy)
		clears = append(clears, time.Now())
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
	}
	waitPublished(t, published)
	r := finish(t, s, c, w, started, a)
	return row{tally: r, Faults: int(proxy.faulted.Load()), Recovery: c.recovery(clears), Duration: time.Since(started),
		Settings: fmt.Sprintf("%d bursts of 0.5-2s; faults counted per answered request", len(clears))}
}

// ackWaitExpiry runs two replicas whose rotations take longer than AckWait (a pause after the
// apply intent), so only InProgress keeps them; meanwhile one replica at a time is frozen
// past AckWait and its lock TTL, so its change is redelivered to the other while it still
// holds it, and it wakes up as a stale worker.
func ackWaitExpiry(t *testing.T, s *suite) row {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	c := collect(t, nc)
	w := newWorkload(t, s.v, "ackwait", s.events, 0)
	env := agentEnv(s, s.v.Addr, n.URL, "ROTATION_AGENT_NATS_ACK_WAIT=1s", "ROTATION_AGENT_LOCK_TTL=3s",
		failpoint.EnvVar+"="+failpoint.AfterJournal+"apply=1200ms")
	replicas := []*harness.Process{harness.StartProcess(t, agentBinary, env), harness.StartProcess(t, agentBinary, env)}
	for _, p := range replicas {
		p.WaitReady(t, time.Minute)
	}
	started := time.Now()
	published := newPublisher(t, nc).publishAll(t, w, 0)
	var clears []time.Time
	for i := 0; !c.complete(w, 1) && time.Since(started) < drainTimeout(s.events); i++ {
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		replicas[i%2].Freeze(4500 * time.Millisecond)
		clears = append(clears, time.Now())
	}
	waitPublished(t, published)
	r := finish(t, s, c, w, started, replicas...)
	return row{tally: r, Faults: len(clears), Recovery: c.recovery(clears), Duration: time.Since(started),
		Settings: "AckWait 1s, each rotation paused 1.2s; lock TTL 3s; freezes of 4.5s"}
}

// duplicatePublish sends every event twice at once (the stream drops the copy), then, once the
// de-duplication window has passed, sends each again and also under a new event id, as an
// ITSM bridge retrying after a timeout would. Each change must still rotate exactly once.
func duplicatePublish(t *testing.T, s *suite) row {
	n := harness.StartNATS(t)
	nc := n.Connect(t)
	c := collect(t, nc)
	w := newWorkload(t, s.v, "dup", s.events, 0)
	const window = 2 * time.Second
	a := harness.StartProcess(t, agentBinary, agentEnv(s, s.v.Addr, n.URL, "ROTATION_AGENT_NATS_DUPLICATE_WINDOW="+window.String()))
	a.WaitReady(t, time.Minute)
	started := time.Now()
	pub := newPublisher(t, nc)
	dropped := 0
	for i := range w.changes {
		id := w.eventID(t, i)
		pub.publish(t, w.payloads[i], id)
		if pub.publish(t, w.payloads[i], id) {
			dropped++
		}
	}
	if dropped != s.events {
		t.Errorf("the stream dropped %d of %d copies sent inside the window", dropped, s.events)
	}
	if !c.waitComplete(w, 1, drainTimeout(s.events)) {
		t.Errorf("first round incomplete")
	}
	time.Sleep(window + time.Second)
	for i := range w.changes {
		id := w.eventID(t, i)
		if pub.publish(t, w.payloads[i], id) {
			t.Fatalf("%s: stored copy outside the window was dropped; the window is not %s", id, window)
		}
		resent := strings.Replace(string(w.payloads[i]), `"id":"`+id+`"`, `"id":"`+id+`-resent"`, 1)
		pub.publish(t, []byte(resent), id+"-resent")
	}
	// Each change gets its evidence again (re-published from the journal) for both copies.
	if !c.waitComplete(w, 3, drainTimeout(s.events)) {
		t.Errorf("the events sent again did not all get their evidence re-published")
	}
	r := finish(t, s, c, w, started, a)
	return row{tally: r, Faults: 3 * s.events, Duration: time.Since(started),
		Settings: fmt.Sprintf("duplicate window %s; %d copies dropped by the stream, %d processed again", window, dropped, 2*s.events)}
}
