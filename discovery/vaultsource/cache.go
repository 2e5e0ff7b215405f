package vaultsource

import (
	"context"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
)

// Cache holds the last good result of every configured source and refreshes them on the
// configured schedule. A source whose refresh fails keeps its previous result; the failure is
// reported. Bindings and Index are safe for concurrent use.
type Cache struct {
	client  *vault.Client
	cfg     Config
	sched   schedule
	sources []source
	report  func(error)
	now     func() time.Time

	// refreshing serialises refreshes.
	refreshing sync.Mutex

	mu        sync.RWMutex
	results   map[string][]discovery.Binding
	bindings  []discovery.Binding
	index     *discovery.Index
	refreshed time.Time
	onUpdate  func([]discovery.Binding)
}

// NewCache returns a cache for the sources cfg lists, empty until the first refresh. report
// receives every problem a refresh meets (a *SourceError); nil discards them. A configuration
// that does not validate is an error.
func NewCache(client *vault.Client, cfg Config, report func(error)) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sched, err := cfg.schedule()
	if err != nil {
		return nil, err
	}
	if report == nil {
		report = func(error) {}
	}
	return &Cache{
		client:  client,
		cfg:     cfg,
		sched:   sched,
		sources: cfg.sources(),
		report:  report,
		now:     time.Now,
		results: map[string][]discovery.Binding{},
		index:   discovery.NewIndex(nil),
	}, nil
}

// OnUpdate registers f to receive the bindings after every refresh; set it before Start.
func (c *Cache) OnUpdate(f func([]discovery.Binding)) {
	c.mu.Lock()
	c.onUpdate = f
	c.mu.Unlock()
}

// Refresh runs every source once now. A source that succeeds (or reaches the visit cap)
// replaces its previous result; a source that fails keeps it. Every problem is reported and
// returned.
func (c *Cache) Refresh(ctx context.Context) []error {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	var errs []error
	fresh := map[string][]discovery.Binding{}
	for _, s := range c.sources {
		r := runSource(ctx, c.client, c.cfg, s, c.now())
		if ctx.Err() == nil { // a refresh cut short by shutdown is not worth reporting
			for _, err := range r.errs {
				c.report(err)
			}
		}
		errs = append(errs, r.errs...)
		if !r.failed {
			fresh[s.key] = r.bindings
		}
	}
	c.mu.Lock()
	for k, v := range fresh {
		c.results[k] = v
	}
	var all []discovery.Binding
	for _, s := range c.sources {
		all = append(all, c.results[s.key]...)
	}
	c.bindings = all
	c.index = discovery.NewIndex(all)
	c.refreshed = c.now()
	notify := c.onUpdate
	c.mu.Unlock()
	if notify != nil {
		notify(c.Bindings())
	}
	return errs
}

// Start refreshes at once and then on the schedule, in a goroutine that ends when ctx ends;
// the returned channel is closed when it has.
func (c *Cache) Start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c.Refresh(ctx)
			wait := c.sched.Next(c.now()).Sub(c.now())
			if wait < 0 {
				wait = 0
			}
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}()
	return done
}

// Bindings returns the bindings of the last good result of every source, in configuration
// order. The slice is the caller's; the bindings' maps are shared and must not be modified.
func (c *Cache) Bindings() []discovery.Binding {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]discovery.Binding(nil), c.bindings...)
}

// Index returns an index of Bindings, rebuilt at every refresh.
func (c *Cache) Index() *discovery.Index {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.index
}

// Refreshed is when the last refresh ended; zero before the first.
func (c *Cache) Refreshed() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.refreshed
}
