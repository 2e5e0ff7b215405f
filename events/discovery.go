package events

import "time"

// Discovery states: how complete the bindings discovered in Vault were when a record's
// credentials were looked up.
const (
	// DiscoveryComplete means every configured source answered its last refresh.
	DiscoveryComplete = "complete"
	// DiscoveryStale means a source failed its last refreshes: its bindings are older (see
	// DiscoveryReport.Stale), and a credential tagged since then may be missing.
	DiscoveryStale = "stale"
	// DiscoveryIncomplete means a source gave no result at all (see DiscoveryReport.Failed):
	// its credentials are missing. Only plan reports it; the agent waits for every source.
	DiscoveryIncomplete = "incomplete"
	// DiscoverySkipped means discovery did not run (plan --offline): only the inventory and
	// the credentials named in the event were matched.
	DiscoverySkipped = "skipped"
)

// DiscoveryReport says which discovery sources in Vault a change's credentials were looked up
// in, and how complete their bindings were. It is absent when no discovery is configured.
type DiscoveryReport struct {
	// Status is complete, stale, incomplete or skipped.
	Status string `json:"status"`
	// Sources lists the configured sources ("kv-v2:secret/apps", "pki:pki/web", ...).
	Sources []string `json:"sources,omitempty"`
	// Failed lists the sources that gave no result, and why.
	Failed []DiscoveryFailure `json:"failed,omitempty"`
	// Stale lists the sources whose last refreshes failed, with the time of the bindings
	// used instead.
	Stale []StaleSource `json:"stale,omitempty"`
}

// DiscoveryFailure is a discovery source that gave no result.
type DiscoveryFailure struct {
	Source string `json:"source"`
	Error  string `json:"error"`
}

// StaleSource is a discovery source whose last refreshes failed.
type StaleSource struct {
	Source string `json:"source"`
	// BindingsFrom is when the refresh that found the bindings in use ended.
	BindingsFrom time.Time `json:"bindings_from"`
	// FailedRefreshes counts the refreshes that failed since.
	FailedRefreshes int `json:"failed_refreshes"`
}
