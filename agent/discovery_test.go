package agent

import (
	"reflect"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery/vaultsource"
	"github.com/rotation-agent/rotation-agent/events"
)

func TestDiscoveryReport(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	ok := vaultsource.SourceStatus{Source: "kv-v2:secret", Ready: true, LastGood: at}
	once := vaultsource.SourceStatus{Source: "pki:pki/web", Ready: true, LastGood: at, Failures: 1}
	stale := vaultsource.SourceStatus{Source: "pki:pki/web", Ready: true, LastGood: at, Failures: vaultsource.StaleAfterFailures}
	never := vaultsource.SourceStatus{Source: "approle:approle", Failures: 3}
	tests := []struct {
		name   string
		status []vaultsource.SourceStatus
		want   events.DiscoveryReport
	}{
		{"no source", nil, events.DiscoveryReport{Status: events.DiscoveryComplete}},
		{"every source answered", []vaultsource.SourceStatus{ok},
			events.DiscoveryReport{Status: events.DiscoveryComplete, Sources: []string{"kv-v2:secret"}}},
		{"one failed refresh is not stale yet", []vaultsource.SourceStatus{ok, once},
			events.DiscoveryReport{Status: events.DiscoveryComplete, Sources: []string{"kv-v2:secret", "pki:pki/web"}}},
		{"stale", []vaultsource.SourceStatus{ok, stale}, events.DiscoveryReport{Status: events.DiscoveryStale,
			Sources: []string{"kv-v2:secret", "pki:pki/web"},
			Stale:   []events.StaleSource{{Source: "pki:pki/web", BindingsFrom: at.UTC(), FailedRefreshes: vaultsource.StaleAfterFailures}}}},
		{"a source without result wins over a stale one", []vaultsource.SourceStatus{never, stale}, events.DiscoveryReport{Status: events.DiscoveryIncomplete,
			Sources: []string{"approle:approle", "pki:pki/web"},
			Failed:  []events.DiscoveryFailure{{Source: "approle:approle", Error: "no refresh has succeeded yet"}},
			Stale:   []events.StaleSource{{Source: "pki:pki/web", BindingsFrom: at.UTC(), FailedRefreshes: vaultsource.StaleAfterFailures}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := discoveryReport(tt.status); !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("discoveryReport = %+v, want %+v", *got, tt.want)
			}
		})
	}
}
