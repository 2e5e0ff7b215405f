// Package pending keeps generated, not yet delivered credential values in memory only, by
// accessor, so a retry in the same process delivers the value it already generated instead of
// generating a second one.
package pending

import (
	"sync"
	"time"
)

// TTL bounds how long an undelivered value is kept in memory for a retry.
const TTL = time.Hour

// Store holds undelivered values by accessor. A value is dropped once delivered or destroyed
// (the caller calls Drop), or once it is older than TTL. It is safe for concurrent use.
type Store struct {
	mu sync.Mutex
	m  map[string]value
}

type value struct {
	value string
	at    time.Time
}

// New returns an empty Store.
func New() *Store { return &Store{m: map[string]value{}} }

// Put keeps value for accessor, generated at now, and forgets values older than TTL.
func (p *Store) Put(accessor, v string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, old := range p.m {
		if now.Sub(old.at) > TTL {
			delete(p.m, k)
		}
	}
	p.m[accessor] = value{value: v, at: now}
}

// Get returns the value kept for accessor and whether there is one.
func (p *Store) Get(accessor string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[accessor]
	return v.value, ok
}

// Drop forgets the value kept for accessor, if any.
func (p *Store) Drop(accessor string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, accessor)
}
