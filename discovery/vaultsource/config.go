// Package vaultsource discovers credential bindings in Vault itself: KV v2 secrets tagged with
// selector keys in their custom metadata, PKI certificates by the hosts they name, AppRole
// secret ids and tokens by their metadata, and database static roles by the user they manage.
// Every source is opt-in per mount. Discover runs the sources once; a Cache keeps the last good
// result of each source and refreshes it on a schedule.
//
// Discovery never keeps or returns a secret value: it returns mounts, paths, accessors,
// serials and tags only.
package vaultsource

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultMaxVisits is how many items (secrets, folders, certificates, accessors, roles) one
// source may visit in one refresh when Config.MaxVisits is zero.
const DefaultMaxVisits = 10000

// DefaultInterval is how often a Cache refreshes when Config names neither a schedule nor an
// interval.
const DefaultInterval = 10 * time.Minute

// DefaultTokenPaths are the token creation path prefixes token discovery considers when
// Config.TokenPaths is empty: tokens created in the token store. Tokens issued by a login
// (auth/approle/login and the like) are left alone: they copy the metadata of the secret id
// or user they logged in with, and revoking them is not what a tag on that secret id asks for.
var DefaultTokenPaths = []string{"auth/token/"}

// Config says which parts of Vault to discover credentials in. Every source is off unless
// listed; each entry names one mount.
type Config struct {
	// KV lists KV version 2 mounts (and optional folders) whose secrets are bindings when
	// their custom metadata carries selector tags.
	KV []KVSource `json:"kv,omitempty" yaml:"kv,omitempty"`
	// PKI lists PKI mounts whose certificates, as delivered to their consumers, are bindings
	// selected by the hosts they name.
	PKI []PKISource `json:"pki,omitempty" yaml:"pki,omitempty"`
	// AppRole lists AppRole auth mounts whose roles are bindings when a secret id of the role
	// carries selector tags in its metadata.
	AppRole []AppRoleSource `json:"approle,omitempty" yaml:"approle,omitempty"`
	// Tokens, when true, makes every token whose metadata carries selector tags a binding
	// (action revoke). Listing token accessors needs sudo on auth/token/accessors.
	Tokens bool `json:"tokens,omitempty" yaml:"tokens,omitempty"`
	// TokenPaths limits token discovery to tokens whose creation path starts with one of
	// these prefixes; empty means DefaultTokenPaths.
	TokenPaths []string `json:"token_paths,omitempty" yaml:"token_paths,omitempty"`
	// Database lists database secrets engine mounts whose static roles are bindings selected
	// by their database user, their connection and the connection's host.
	Database []DatabaseSource `json:"database,omitempty" yaml:"database,omitempty"`

	// Schedule is when a Cache refreshes: a five-field cron expression ("*/10 * * * *",
	// evaluated in the local time zone), a descriptor (@hourly, @daily, ...) or
	// "@every <duration>". Empty means every Interval.
	Schedule string `json:"schedule,omitempty" yaml:"schedule,omitempty"`
	// Interval is how often a Cache refreshes when Schedule is empty; zero means
	// DefaultInterval.
	Interval time.Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	// MaxVisits caps the items one source visits in one refresh; zero means
	// DefaultMaxVisits. A source that reaches it stops and reports ErrCapReached.
	MaxVisits int `json:"max_visits,omitempty" yaml:"max_visits,omitempty"`
}

// KVSource is one KV version 2 mount to walk.
type KVSource struct {
	// Mount is the KV v2 mount, for example "secret".
	Mount string `json:"mount" yaml:"mount"`
	// Prefix optionally limits the walk to one folder of the mount, for example "apps".
	Prefix string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
}

// PKISource is one PKI mount and role, with the KV v2 folder its certificates are delivered
// to. A certificate is discovered when a secret under DeliverTo holds its serial in field
// "serial" (or the certificate itself in field "certificate"), the layout the pki rotator
// writes: that secret is where the consumer reads the certificate, so it becomes the
// binding's deliver_to.
type PKISource struct {
	// Mount is the PKI mount, for example "pki".
	Mount string `json:"mount" yaml:"mount"`
	// Role is the role the certificates are issued from; the rotator issues replacements
	// from it.
	Role string `json:"role" yaml:"role"`
	// DeliverTo is "<kv-v2 mount>/<folder>": the folder whose secrets hold the certificates
	// consumers read, for example "secret/certs/web".
	DeliverTo string `json:"deliver_to" yaml:"deliver_to"`
}

// AppRoleSource is one AppRole auth mount.
type AppRoleSource struct {
	// Mount is the auth mount without "auth/", for example "approle".
	Mount string `json:"mount" yaml:"mount"`
}

// DatabaseSource is one database secrets engine mount.
type DatabaseSource struct {
	// Mount is the database secrets engine mount, for example "database".
	Mount string `json:"mount" yaml:"mount"`
}

// Validate reports every problem of the configuration, joined into one error.
func (c Config) Validate() error {
	var errs []error
	for _, s := range c.sources() {
		if s.invalid != nil {
			errs = append(errs, s.invalid)
		}
	}
	if _, err := c.schedule(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxVisits < 0 {
		errs = append(errs, fmt.Errorf("max_visits %d: want zero (the default %d) or more", c.MaxVisits, DefaultMaxVisits))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s: want zero (the default %s) or more", c.Interval, DefaultInterval))
	}
	seen := map[string]bool{}
	for _, s := range c.sources() {
		if seen[s.key] {
			errs = append(errs, fmt.Errorf("%s is listed twice", s.key))
		}
		seen[s.key] = true
	}
	return errors.Join(errs...)
}

func (c Config) maxVisits() int {
	if c.MaxVisits <= 0 {
		return DefaultMaxVisits
	}
	return c.MaxVisits
}

func (c Config) tokenPaths() []string {
	if len(c.TokenPaths) == 0 {
		return DefaultTokenPaths
	}
	return c.TokenPaths
}

// schedule returns when a Cache refreshes.
func (c Config) schedule() (schedule, error) {
	if strings.TrimSpace(c.Schedule) != "" {
		s, err := parseSchedule(c.Schedule)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", c.Schedule, err)
		}
		return s, nil
	}
	if c.Interval < 0 {
		return nil, fmt.Errorf("interval %s is negative", c.Interval)
	}
	if c.Interval == 0 {
		return every(DefaultInterval), nil
	}
	return every(c.Interval), nil
}

// cleanMount trims slashes and spaces from a mount or folder.
func cleanMount(s string) string { return strings.Trim(strings.TrimSpace(s), "/") }

// validName refuses empty names and names with empty or relative segments.
func validName(s string, slashes bool) bool {
	if s == "" || (!slashes && strings.Contains(s, "/")) {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// SourceNames lists the configured sources as they appear in SourceError and SourceStatus,
// in the order they run.
func (c Config) SourceNames() []string {
	var out []string
	for _, s := range c.sources() {
		out = append(out, s.key)
	}
	return out
}
