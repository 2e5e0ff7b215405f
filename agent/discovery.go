package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"

	vault "github.com/hashicorp/vault/api"
	"go.yaml.in/yaml/v3"

	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
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
// schedule until ctx ends; the returned channel closes when it has stopped.
func startDiscovery(ctx context.Context, path string, client *vault.Client, cat *catalog) (<-chan struct{}, error) {
	cfg, err := loadDiscoveryConfig(path)
	if err != nil {
		return nil, err
	}
	cache, err := vaultsource.NewCache(client, cfg, func(err error) {
		cat.log.WithError(err).Warn("discovery source failed; keeping its last good bindings")
	})
	if err != nil {
		return nil, err
	}
	cache.OnUpdate(cat.setDiscovered)
	return cache.Start(ctx), nil
}
