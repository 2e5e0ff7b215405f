package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	vault "github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
)

// loadDiscoveryConfig reads the YAML file that turns on discovery sources in Vault.
func loadDiscoveryConfig(path string) (vaultsource.Config, error) {
	var cfg vaultsource.Config
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("discovery: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("discovery %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("discovery %s: %w", path, err)
	}
	return cfg, nil
}

// startDiscovery refreshes the catalog's discovered bindings from Vault on the configured
// schedule until ctx ends; the returned channel closes when it has stopped. The cache's Ready
// channel closes once every source has a first result; until then a failed source is retried
// with backoff.
func startDiscovery(ctx context.Context, path string, client *vault.Client, cat *catalog) (*vaultsource.Cache, <-chan struct{}, error) {
	cfg, err := loadDiscoveryConfig(path)
	if err != nil {
		return nil, nil, err
	}
	var cache *vaultsource.Cache
	cache, err = vaultsource.NewCache(client, cfg, func(err error) {
		entry := cat.log.WithError(err)
		var se *vaultsource.SourceError
		switch {
		case errors.As(err, &se) && se.Failed && pending(cache, se.Source):
			entry.Warn("discovery source failed its first refresh; changes wait until every source has answered")
		case errors.As(err, &se) && se.Failed:
			entry.Warn("discovery source failed; keeping its last good bindings")
		default:
			entry.Warn("discovery source skipped an item")
		}
	})
	if err != nil {
		return nil, nil, err
	}
	cache.OnUpdate(cat.setDiscovered)
	cat.setDiscoveryReport(func() *events.DiscoveryReport { return discoveryReport(cache.Status()) })
	return cache, cache.Start(ctx), nil
}

// pending reports whether source has no first result yet.
func pending(cache *vaultsource.Cache, source string) bool {
	for _, s := range cache.Pending() {
		if s == source {
			return true
		}
	}
	return false
}

// discoveryReport says how complete the cache's sources are, for evidence and impact reports.
func discoveryReport(status []vaultsource.SourceStatus) *events.DiscoveryReport {
	r := &events.DiscoveryReport{Status: events.DiscoveryComplete}
	for _, s := range status {
		r.Sources = append(r.Sources, s.Source)
		switch {
		case !s.Ready:
			r.Failed = append(r.Failed, events.DiscoveryFailure{Source: s.Source, Error: "no refresh has succeeded yet"})
		case s.Stale():
			r.Stale = append(r.Stale, events.StaleSource{Source: s.Source, BindingsFrom: s.LastGood.UTC(), FailedRefreshes: s.Failures})
		}
	}
	switch {
	case len(r.Failed) > 0:
		r.Status = events.DiscoveryIncomplete
	case len(r.Stale) > 0:
		r.Status = events.DiscoveryStale
	}
	return r
}

// waitForDiscovery holds the agent back from consuming changes until every discovery source
// has a first result, so that no change is resolved (and acknowledged with no_credentials
// evidence) against bindings not yet discovered; /readyz says what it waits for. A source
// whose first refresh keeps failing keeps the agent waiting: the changes stay in the stream.
// It reports false when ctx ended first.
func waitForDiscovery(ctx context.Context, cache *vaultsource.Cache, ops *opsServer, log logrus.FieldLogger) bool {
	if cache == nil {
		return true
	}
	select {
	case <-cache.Ready():
		return true
	default:
	}
	if ops != nil {
		ops.waiting(func() string {
			return "waiting for the first discovery refresh of " + strings.Join(cache.Pending(), ", ")
		})
	}
	log.WithField("sources", cache.Pending()).Info("waiting for the first discovery refresh of every source before consuming changes")
	select {
	case <-cache.Ready():
		return true
	case <-ctx.Done():
		return false
	}
}
