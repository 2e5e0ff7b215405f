package approle

import (
	"sync"
	"time"
)

// pendingTTL bounds how long an undelivered secret id is kept in memory for a retry.
const pendingTTL = time.Hour

// pending keeps generated, not yet delivered secret values in memory only, by accessor, so a
// retry in the same process delivers the secret id it already generated instead of a second
// one. A value is dropped once delivered, destroyed, or older than pendingTTL.
type pending struct {
	mu sync.Mutex
	m  map[string]pendingValue
}

type pendingValue struct {
	value string
	at    time.Time
}

func newPending() *pending { return &pending{m: map[string]pendingValue{}} }

func (p *pending) put(accessor, value string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.m {
		if now.Sub(v.at) > pendingTTL {
			delete(p.m, k)
		}
	}
	p.m[accessor] = pendingValue{value: value, at: now}
}

func (p *pending) get(accessor string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[accessor]
	return v.value, ok
}

func (p *pending) drop(accessor string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, accessor)
}
