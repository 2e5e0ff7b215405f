package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

// catalog is what the agent knows about which credential belongs to which target: the
// inventory file's bindings and those discovered in Vault, in one index (inventory first, so a
// declared binding wins over a discovered one). A reload that fails keeps the last good
// inventory; a discovery source that fails keeps its last good bindings.
type catalog struct {
	path  string
	kinds []string
	log   logrus.FieldLogger

	index atomic.Pointer[discovery.Index]

	mu sync.Mutex
	// modTime and size are those of the file last read, loaded or not, so a bad file is not
	// read again until it changes.
	modTime time.Time
	size    int64
	// failed is the SHA-256 of the content of the last failed reload (zero after a good
	// load), so each bad content has its problems logged once.
	failed     [sha256.Size]byte
	inventory  []discovery.Binding
	discovered []discovery.Binding
	// report says how complete discovery is; nil when no discovery is configured.
	report func() *events.DiscoveryReport
}

// rebuild indexes the inventory and discovered bindings together; the caller holds c.mu.
func (c *catalog) rebuild() {
	all := make([]discovery.Binding, 0, len(c.inventory)+len(c.discovered))
	all = append(append(all, c.inventory...), c.discovered...)
	c.index.Store(discovery.NewIndex(all))
}

// setDiscovered replaces the bindings discovered in Vault.
func (c *catalog) setDiscovered(bs []discovery.Binding) {
	c.mu.Lock()
	c.discovered = bs
	c.rebuild()
	c.mu.Unlock()
	c.log.WithField("bindings", len(bs)).Info("bindings discovered in vault")
}

// setDiscoveryReport sets what tells how complete the discovered bindings are.
func (c *catalog) setDiscoveryReport(f func() *events.DiscoveryReport) {
	c.mu.Lock()
	c.report = f
	c.mu.Unlock()
}

// discoveryReport says how complete the discovered bindings are; nil when no discovery is
// configured.
func (c *catalog) discoveryReport() *events.DiscoveryReport {
	c.mu.Lock()
	f := c.report
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// newCatalog loads the inventory at path (none when empty). A broken file at start-up is an
// error: the agent must not run with an inventory it cannot read.
func newCatalog(path string, kinds []string, log logrus.FieldLogger) (*catalog, error) {
	c := &catalog{path: path, kinds: kinds, log: log}
	c.index.Store(discovery.NewIndex(nil))
	if path == "" {
		return c, nil
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the inventory and swaps the index in; on error the old index stays.
func (c *catalog) load() error {
	_, err := c.read()
	return err
}

// read loads the inventory like load and also returns the SHA-256 of the content it read (of
// the error when the file cannot be read). The file's modification time and size are recorded
// even when the content is bad or unreadable.
func (c *catalog) read() ([sha256.Size]byte, error) {
	info, statErr := os.Stat(c.path)
	var (
		sum      [sha256.Size]byte
		bindings []discovery.Binding
	)
	raw, err := os.ReadFile(c.path)
	if err != nil {
		err = fmt.Errorf("inventory: %w", err)
		sum = sha256.Sum256([]byte(err.Error()))
	} else {
		sum = sha256.Sum256(raw)
		bindings, err = discovery.ParseInventory(c.path, raw, c.kinds)
	}
	c.mu.Lock()
	if statErr == nil {
		c.modTime, c.size = info.ModTime(), info.Size()
	}
	if err == nil {
		c.inventory, c.failed = bindings, [sha256.Size]byte{}
		c.rebuild()
	}
	c.mu.Unlock()
	if err != nil {
		return sum, err
	}
	c.log.WithField("bindings", len(bindings)).WithField("file", c.path).Info("inventory loaded")
	return sum, nil
}

// resolve lists the credentials a change touches and why.
func (c *catalog) resolve(ch events.Change) []discovery.Match {
	return c.index.Load().Resolve(ch)
}

// changed reports whether the file differs from what was last loaded (a ConfigMap update
// swaps a symlink, so the modification time and size are compared, not inotify events).
func (c *catalog) changed() bool {
	info, err := os.Stat(c.path)
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !info.ModTime().Equal(c.modTime) || info.Size() != c.size
}

// reload loads the inventory again; a bad file is logged problem by problem and ignored.
// The problems of a given bad content are logged once: the file check does not read it again
// until it changes, and a signal on content already refused logs one line.
func (c *catalog) reload(why string) {
	sum, err := c.read()
	if err == nil {
		return
	}
	entry := c.log.WithField("file", c.path).WithField("trigger", why)
	c.mu.Lock()
	seen := sum == c.failed
	c.failed = sum
	c.mu.Unlock()
	if seen {
		if why == reloadSignal {
			entry.Warn("inventory unchanged since its failed reload; keeping the last good inventory")
		}
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		entry.WithField("problem", line).Error("inventory reload failed; keeping the last good inventory")
	}
}

// The triggers of a reload, as logged.
const (
	reloadSignal  = "signal"
	reloadChanged = "file changed"
)

// watch reloads the inventory when the file changes (checked every interval) or when a
// signal arrives on sighup, until ctx ends.
func (c *catalog) watch(ctx context.Context, interval time.Duration, sighup <-chan struct{}) {
	if c.path == "" {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sighup:
			c.reload(reloadSignal)
		case <-ticker.C:
			if c.changed() {
				c.reload(reloadChanged)
			}
		}
	}
}
