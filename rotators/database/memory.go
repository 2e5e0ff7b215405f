package database

import (
	"slices"
	"sync"

	"github.com/rotation-agent/rotation-agent/rotators"
)

// memory keeps the passwords a rotation replaced, so verify and retire can check that the
// database refuses them. It lives in the agent's memory only: after a restart the old
// passwords are unknown and the steps say so in their fingerprints.
type memory struct {
	mu  sync.Mutex
	old map[string][]string
}

func newMemory() *memory { return &memory{old: map[string][]string{}} }

// key identifies one role of one rotation.
func memKey(req rotators.Request, role string) string {
	return req.ChangeID + "\x00" + req.Credential.ID() + "\x00" + role
}

// remember adds a replaced password of a role (every round of a rotation adds its own).
func (m *memory) remember(key, password string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.old[key], password) {
		m.old[key] = append(m.old[key], password)
	}
}

// passwords returns the replaced passwords of a role known to this process.
func (m *memory) passwords(key string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.old[key])
}

// forget drops what is kept for a role.
func (m *memory) forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.old, key)
}
