package vaultsource

import (
	"context"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
)

// StaleAfterFailures is how many refreshes in a row a source must fail, after it once
// succeeded, before its last good result counts as stale (see Cache.Stale).
const StaleAfterFailures = 2

// First refreshes that fail are retried after firstRetryMin, doubling up to firstRetryMax,
// instead of waiting for the schedule: nothing is known of the source until one succeeds.
const (
	firstRetryMin = time.Second
	firstRetryMax = time.Minute
)

// SourceStatus is what a Cache knows of one configured source.
type SourceStatus struct {
	// Source identifies the configured source, as in SourceError.
	Source string
	// Ready is true once a refresh of the source succeeded: it has a result.
	Ready bool
	// LastGood is when the refresh that produced the source's result ended; zero before.
	LastGood time.Time
	// Failures counts the refreshes that failed in a row since the last one that succeeded.
	Failures int
}

// Stale reports whether the source's result has outlived StaleAfterFailures failed
// refreshes.
func (s SourceStatus) Stale() bool { return s.Ready && s.Failures >= StaleAfterFailures }

// Cache holds the last good result of every configured source and refreshes them on the
// configured schedule. A source whose refresh fails keeps its previous result; the failure is
// reported. Until every source has a first result, Start retries failed sources with backoff
// and Ready stays open. Bindings and Index are safe for concurrent use.
type Cache struct {
	client  *vault.Client
	cfg     Config
	sched   schedule
	sources []source
	report  func(error)
	now     func() time.Time
	// firstRetry is the first wait before a failed first refresh is tried again.
	firstRetry time.Duration

	// refreshing serialises refreshes.
	refreshing sync.Mutex

	mu        sync.RWMutex
	results   map[string][]discovery.Binding
	bindings  []discovery.Binding
	index     *discovery.Index
	refreshed time.Time
	onUpdate  func([]discovery.Binding)
	status    map[string]*SourceStatus
	ready     chan struct{}
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
	c := &Cache{
		client:     client,
		cfg:        cfg,
		sched:      sched,
		sources:    cfg.sources(),
		report:     report,
		now:        time.Now,
		results:    map[string][]discovery.Binding{},
		firstRetry: firstRetryMin,
		index:      discovery.NewIndex(nil),
		status:     map[string]*SourceStatus{},
		ready:      make(chan struct{}),
	}
	for _, s := range c.sources {
		c.status[s.key] = &SourceStatus{Source: s.key}
	}
	if len(c.sources) == 0 {
		close(c.ready)
	}
	return c, nil
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
	end := c.now()
	for _, s := range c.sources {
		st := c.status[s.key]
		if v, ok := fresh[s.key]; ok {
			c.results[s.key] = v
			st.Ready, st.LastGood, st.Failures = true, end, 0
		} else if ctx.Err() == nil {
			st.Failures++
		}
	}
	if c.pendingLocked() == nil {
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}
	}
	var all []discovery.Binding
	for _, s := range c.sources {
		all = append(all, c.results[s.key]...)
	}
	c.bindings = all
	c.index = discovery.NewIndex(all)
	c.refreshed = end
	notify := c.onUpdate
	c.mu.Unlock()
	if notify != nil {
		notify(c.Bindings())
	}
	return errs
}

// Start refreshes at once and then on the schedule, in a goroutine that ends when ctx ends;
// the returned channel is closed when it has. Until every source has a first result, a refresh
// that leaves one without is tried again after a backoff (1s doubling to 1m) or at the next
// scheduled refresh, whichever comes first.
func (c *Cache) Start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		retry := c.firstRetry
		for {
			c.Refresh(ctx)
			wait := c.sched.Next(c.now()).Sub(c.now())
			if len(c.Pending()) > 0 && retry < wait {
				wait = retry
				retry = min(2*retry, firstRetryMax)
			}
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

// Ready returns a channel closed once every source has a result: its first successful refresh
// (or one that reached the visit cap) has ended.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// Pending lists, in configuration order, the sources that have no result yet; nil when none.
func (c *Cache) Pending() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pendingLocked()
}

func (c *Cache) pendingLocked() []string {
	var out []string
	for _, s := range c.sources {
		if !c.status[s.key].Ready {
			out = append(out, s.key)
		}
	}
	return out
}

// Status returns what the cache knows of every source, in configuration order.
func (c *Cache) Status() []SourceStatus {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]SourceStatus, 0, len(c.sources))
	for _, s := range c.sources {
		out = append(out, *c.status[s.key])
	}
	return out
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
