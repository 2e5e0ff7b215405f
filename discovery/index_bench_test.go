package discovery

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rotation-agent/rotation-agent/events"
)

// The benchmark inventory: 100,000 bindings over pools of targets the size of a large estate.
const (
	benchBindings     = 100_000
	benchServices     = 4_000
	benchHosts        = 12_000
	benchCIs          = 8_000
	benchIdentities   = 2_000
	benchOwners       = 300
	benchSharedPerMil = 50 // per mille of bindings naming a credential an earlier binding names
)

// benchEnvironments and their weights: production is the most common environment selector.
var (
	benchEnvironments = []string{"production", "staging", "development", "qa"}
	benchEnvWeights   = []int{50, 25, 15, 10}
)

func benchService(i int) string  { return fmt.Sprintf("svc-%04d", i) }
func benchHost(i int) string     { return fmt.Sprintf("host-%05d.dc%d.example.internal", i, i%3+1) }
func benchCI(i int) string       { return fmt.Sprintf("ci%07d", 4_000_000+i) }
func benchIdentity(i int) string { return fmt.Sprintf("svc-account-%04d", i) }
func benchOwner(i int) string    { return fmt.Sprintf("team-%03d", i) }

var (
	benchOnce sync.Once
	benchSet  []Binding
)

// benchInventory returns the benchmark bindings, built once, deterministically.
func benchInventory() []Binding {
	benchOnce.Do(func() {
		benchSet = makeBenchBindings(benchBindings, rand.New(rand.NewPCG(1, 2)))
	})
	return benchSet
}

// makeBenchBindings draws n bindings shaped like an inventory of a large estate:
//
//	35% one or two services, half of those restricted to an environment
//	25% one to three hosts
//	15% one configuration item, a fifth of those restricted to an environment
//	10% a service and one of its hosts
//	 8% an identity, half of those on a host
//	 5% an owner and an environment
//	 2% a service and an owner
//
// Kinds are kv-v2, database-static-role, pki and token; 5% reuse the credential of an earlier
// binding.
func makeBenchBindings(n int, rng *rand.Rand) []Binding {
	env := func() string {
		r := rng.IntN(100)
		for i, w := range benchEnvWeights {
			if r < w {
				return benchEnvironments[i]
			}
			r -= w
		}
		return benchEnvironments[0]
	}
	pick := func(size int, name func(int) string, count int) []string {
		out := make([]string, 0, count)
		for len(out) < count {
			v := name(rng.IntN(size))
			dup := false
			for _, o := range out {
				dup = dup || o == v
			}
			if !dup {
				out = append(out, v)
			}
		}
		return out
	}
	kinds := []string{"kv-v2", "database-static-role", "pki", "token"}
	mounts := map[string]string{"kv-v2": "secret", "database-static-role": "database", "pki": "pki-int", "token": "auth/token"}
	out := make([]Binding, 0, n)
	for i := range n {
		sel := Selectors{}
		switch r := rng.IntN(100); {
		case r < 35:
			sel[KeyService] = pick(benchServices, benchService, 1+rng.IntN(2))
			if rng.IntN(2) == 0 {
				sel[KeyEnvironment] = []string{env()}
			}
		case r < 60:
			sel[KeyHost] = pick(benchHosts, benchHost, 1+rng.IntN(3))
		case r < 75:
			sel[KeyCI] = pick(benchCIs, benchCI, 1)
			if rng.IntN(5) == 0 {
				sel[KeyEnvironment] = []string{env()}
			}
		case r < 85:
			sel[KeyService] = pick(benchServices, benchService, 1)
			sel[KeyHost] = pick(benchHosts, benchHost, 1)
		case r < 93:
			sel[KeyIdentity] = pick(benchIdentities, benchIdentity, 1)
			if rng.IntN(2) == 0 {
				sel[KeyHost] = pick(benchHosts, benchHost, 1)
			}
		case r < 98:
			sel[KeyOwner] = pick(benchOwners, benchOwner, 1)
			sel[KeyEnvironment] = []string{env()}
		default:
			sel[KeyService] = pick(benchServices, benchService, 1)
			sel[KeyOwner] = pick(benchOwners, benchOwner, 1)
		}
		var ref events.CredentialRef
		if i > 0 && rng.IntN(1000) < benchSharedPerMil {
			ref = out[rng.IntN(len(out))].Credential
		} else {
			kind := kinds[rng.IntN(len(kinds))]
			ref = events.CredentialRef{Kind: kind, Mount: mounts[kind], Path: fmt.Sprintf("app-%06d", i)}
			switch kind {
			case "kv-v2":
				ref.Fields = []string{"password"}
			case "pki":
				ref.Options = map[string]string{"deliver_to": fmt.Sprintf("secret/tls/app-%06d", i), "ttl": "720h"}
			}
		}
		var actions map[string]events.Action
		if ref.Kind == "token" {
			actions = map[string]events.Action{CategoryDecommission: events.ActionRevoke}
		}
		out = append(out, Binding{
			Name:       fmt.Sprintf("binding-%06d", i),
			Selectors:  sel,
			Credential: ref,
			Owner:      benchOwner(rng.IntN(benchOwners)),
			Actions:    actions,
			Source:     fmt.Sprintf("inventory:bench.yaml:%d", 3+i*8),
		})
	}
	return out
}

// benchChange names the targets of a change: services, hosts and CIs that bindings select
// (drawn from the bindings themselves), plus the environments given.
func benchChange(services, hosts, cis, identities int, envs ...string) events.Change {
	bs := benchInventory()
	rng := rand.New(rand.NewPCG(3, 4))
	var t events.Targets
	seen := map[string]bool{}
	take := func(key string, dst *[]string, want int) {
		for len(*dst) < want {
			vals := bs[rng.IntN(len(bs))].Selectors[key]
			if len(vals) == 0 || seen[vals[0]] {
				continue
			}
			seen[vals[0]] = true
			*dst = append(*dst, vals[0])
		}
	}
	take(KeyService, &t.Services, services)
	take(KeyHost, &t.Hosts, hosts)
	take(KeyCI, &t.ConfigurationItems, cis)
	take(KeyIdentity, &t.Identities, identities)
	t.Environments = envs
	return events.Change{
		ID:          "CHG0031337",
		Type:        events.ChangeNormal,
		Targets:     t,
		Credentials: []events.CredentialRef{{Kind: "kv-v2", Mount: "secret", Path: "payments/db"}},
	}
}

func benchResolve(b *testing.B, ch events.Change) {
	ix := NewIndex(benchInventory())
	matches := len(ix.Resolve(ch))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ix.Resolve(ch)
	}
	b.ReportMetric(float64(matches), "matches")
}

// BenchmarkResolve: a change touching a handful of targets among 100,000 bindings.
func BenchmarkResolve(b *testing.B) {
	// Two services, a host and a CI: 4 targets.
	b.Run("targets=4", func(b *testing.B) { benchResolve(b, benchChange(2, 1, 1, 0)) })
	// The same in production: 5 targets, one of which half of the environment-restricted
	// bindings select.
	b.Run("targets=5+production", func(b *testing.B) { benchResolve(b, benchChange(2, 1, 1, 0, "production")) })
}

// BenchmarkResolveWide: a change touching 50 targets.
func BenchmarkResolveWide(b *testing.B) {
	// 20 services, 15 hosts, 10 CIs, 5 identities.
	b.Run("targets=50", func(b *testing.B) { benchResolve(b, benchChange(20, 15, 10, 5)) })
	// 20 services, 14 hosts, 10 CIs, 5 identities and production.
	b.Run("targets=50+production", func(b *testing.B) { benchResolve(b, benchChange(20, 14, 10, 5, "production")) })
}

// BenchmarkNewIndex: indexing 100,000 bindings (what a load or reload of the inventory costs
// after parsing).
func BenchmarkNewIndex(b *testing.B) {
	bs := benchInventory()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		NewIndex(bs)
	}
}

// TestBenchInventoryShape keeps the benchmark honest: the changes it resolves match bindings,
// and the generator is deterministic.
func TestBenchInventoryShape(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100,000 bindings")
	}
	bs := benchInventory()
	if len(bs) != benchBindings {
		t.Fatalf("%d bindings", len(bs))
	}
	again := makeBenchBindings(1000, rand.New(rand.NewPCG(1, 2)))
	for i := range again {
		if again[i].Name != bs[i].Name || again[i].Credential.ID() != bs[i].Credential.ID() {
			t.Fatalf("binding %d differs between two runs of the generator", i)
		}
	}
	ix := NewIndex(bs)
	for _, ch := range []events.Change{
		benchChange(2, 1, 1, 0), benchChange(2, 1, 1, 0, "production"),
		benchChange(20, 15, 10, 5), benchChange(20, 14, 10, 5, "production"),
	} {
		if n := len(ix.Resolve(ch)); n < 2 {
			t.Errorf("change %+v resolves to %d credentials", ch.Targets, n)
		}
	}
}
