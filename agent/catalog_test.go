package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

const catalogGood = `version: 1
bindings:
  - name: payments-db
    select: {services: [payments]}
    credential: {kind: kv-v2, mount: secret, path: payments/db}
`

const catalogGood2 = catalogGood + `  - name: billing-api
    select: {hosts: [billing-1]}
    credential: {kind: kv-v2, mount: secret, path: billing/api}
`

const catalogBad = "version: 1\nbindings:\n  - name: broken\n    credential: {kind: kv-v2}\n"

var catalogKinds = []string{"kv-v2"}

// writeInventory writes content to file with a modification time of its own, so the file
// check sees a change whatever the file system's time resolution.
func writeInventory(t *testing.T, file, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// loadGoodCatalog writes catalogGood to a new inventory file, last modified an hour ago, and
// loads a catalog of it. It returns the catalog, the file, the file's modification time and
// the hook holding what the catalog logs.
func loadGoodCatalog(t *testing.T) (*catalog, string, time.Time, *logtest.Hook) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	mtime := time.Now().Add(-time.Hour)
	writeInventory(t, file, catalogGood, mtime)
	log, hook := logtest.NewNullLogger()
	c, err := newCatalog(file, catalogKinds, log)
	if err != nil {
		t.Fatal(err)
	}
	return c, file, mtime, hook
}

// resolvedPaths lists the paths of the credentials a change to targets resolves to.
func resolvedPaths(c *catalog, targets events.Targets) []string {
	var out []string
	for _, m := range c.resolve(events.Change{Targets: targets}) {
		out = append(out, m.Credential.Path)
	}
	return out
}

// messages lists the log messages with the given level, with their problem field if any.
func messages(hook *logtest.Hook, level logrus.Level) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level == level {
			msg := e.Message
			if p, ok := e.Data["problem"]; ok {
				msg += ": " + p.(string)
			}
			out = append(out, msg)
		}
	}
	return out
}

func TestCatalogWithoutInventoryResolvesOnlyNamedCredentials(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	c, err := newCatalog("", catalogKinds, log)
	if err != nil {
		t.Fatal(err)
	}
	ref := events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "named"}
	got := c.resolve(events.Change{Targets: events.Targets{Services: []string{"payments"}}, Credentials: []events.CredentialRef{ref}})
	if len(got) != 1 || got[0].Credential.Path != "named" || got[0].Source != "event" {
		t.Errorf("resolve = %+v, want only the named credential", got)
	}
	if c.changed() {
		t.Errorf("a catalog without a file reports a change")
	}
}

func TestCatalogStartUpNeedsAGoodInventory(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"good", catalogGood, ""},
		{"bad", catalogBad, "inventory.yaml:3: bindings[0] (broken): select is required"},
		{"missing", "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, tt.name, "inventory.yaml")
			if tt.content != "" {
				if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
					t.Fatal(err)
				}
				writeInventory(t, file, tt.content, time.Now())
			}
			log, _ := logtest.NewNullLogger()
			c, err := newCatalog(file, catalogKinds, log)
			if tt.wantErr == "" {
				if err != nil || strings.Join(resolvedPaths(c, events.Targets{Services: []string{"payments"}}), ",") != "payments/db" {
					t.Errorf("newCatalog = %v; want the binding loaded", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("newCatalog error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A bad reload keeps the last good inventory and logs each problem once per bad content: the
// file check does not read the same bad file again, a signal on it logs one line, and a new
// bad content is logged again.
func TestCatalogReloadLogsABadFileOnce(t *testing.T) {
	c, file, base, hook := loadGoodCatalog(t)
	billing := events.Targets{Hosts: []string{"billing-1"}}
	if c.changed() {
		t.Fatal("a freshly loaded file reports a change")
	}

	writeInventory(t, file, catalogGood2, base.Add(time.Minute))
	if !c.changed() {
		t.Fatal("a rewritten file is not seen as changed")
	}
	c.reload(reloadChanged)
	if got := resolvedPaths(c, billing); len(got) != 1 || got[0] != "billing/api" {
		t.Fatalf("after a good reload billing resolves to %v", got)
	}

	hook.Reset()
	writeInventory(t, file, catalogBad, base.Add(2*time.Minute))
	c.reload(reloadChanged)
	// One error line per problem: select is missing, and the credential's mount and path.
	const problems = 3
	want := "inventory reload failed; keeping the last good inventory: " + file + ":3: bindings[0] (broken): select is required"
	if got := messages(hook, logrus.ErrorLevel); len(got) != problems || !strings.HasPrefix(got[0], want) {
		t.Fatalf("errors after a bad reload = %q, want %d starting with %q", got, problems, want)
	}
	if got := resolvedPaths(c, billing); len(got) != 1 {
		t.Errorf("the last good inventory was not kept: billing resolves to %v", got)
	}
	if c.changed() {
		t.Errorf("the bad file still counts as changed: every check would log its problems again")
	}

	// The same content written again (a new modification time) is read but not logged again.
	writeInventory(t, file, catalogBad, base.Add(3*time.Minute))
	if !c.changed() {
		t.Fatal("a rewritten file is not seen as changed")
	}
	c.reload(reloadChanged)
	if got := messages(hook, logrus.ErrorLevel); len(got) != problems {
		t.Errorf("the same bad content was logged again: %q", got)
	}
	c.reload(reloadSignal)
	if got := messages(hook, logrus.WarnLevel); len(got) != 1 || got[0] != "inventory unchanged since its failed reload; keeping the last good inventory" {
		t.Errorf("a signal on the same bad content logged %q, want one reminder", got)
	}
	if got := messages(hook, logrus.ErrorLevel); len(got) != problems {
		t.Errorf("a signal on the same bad content logged its problems again: %q", got)
	}

	// Another bad content is logged; after a good load the first bad content counts as new.
	writeInventory(t, file, "version: 2\nbindings: []\n", base.Add(4*time.Minute))
	c.reload(reloadChanged)
	if got := messages(hook, logrus.ErrorLevel); len(got) != problems+1 || !strings.Contains(got[problems], "version") {
		t.Errorf("a different bad content was not logged: %q", got)
	}
	writeInventory(t, file, catalogGood, base.Add(5*time.Minute))
	c.reload(reloadChanged)
	if got := resolvedPaths(c, billing); len(got) != 0 {
		t.Errorf("the good reload was not applied: billing resolves to %v", got)
	}
	writeInventory(t, file, catalogBad, base.Add(6*time.Minute))
	c.reload(reloadChanged)
	if got := messages(hook, logrus.ErrorLevel); len(got) != 2*problems+1 {
		t.Errorf("a bad content seen before the last good load was not logged again: %q", got)
	}
}

// A file that cannot be read is logged once too, not at every check.
func TestCatalogReloadLogsAnUnreadableFileOnce(t *testing.T) {
	c, file, _, hook := loadGoodCatalog(t)
	// A directory where the file was: stat works, reading fails.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if c.changed() {
			c.reload(reloadChanged)
		}
	}
	if got := messages(hook, logrus.ErrorLevel); len(got) != 1 || !strings.Contains(got[0], "is a directory") {
		t.Errorf("errors = %q, want the read failure once", got)
	}
	if got := resolvedPaths(c, events.Targets{Services: []string{"payments"}}); len(got) != 1 {
		t.Errorf("the last good inventory was not kept: %v", got)
	}
}

// watch reloads on a signal even when the file check would not notice: here the file keeps
// its size and modification time, and the check runs once an hour.
func TestCatalogWatchReloadsOnSignal(t *testing.T) {
	c, file, mtime, hook := loadGoodCatalog(t)
	writeInventory(t, file, strings.Replace(catalogGood, "payments/db", "payments/xx", 1), mtime)
	if c.changed() {
		t.Fatal("the test needs an edit the file check cannot see")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sighup := make(chan struct{})
	go func() {
		c.watch(ctx, time.Hour, sighup)
		close(done)
	}()
	sighup <- struct{}{}
	sighup <- struct{}{} // received only once the first reload is over
	cancel()
	<-done
	if got := resolvedPaths(c, events.Targets{Services: []string{"payments"}}); len(got) != 1 || got[0] != "payments/xx" {
		t.Errorf("after the signal payments resolves to %v, want payments/xx", got)
	}
	loaded := 0
	for _, e := range hook.AllEntries() {
		if e.Message == "inventory loaded" {
			loaded++
		}
	}
	if loaded != 3 {
		t.Errorf("inventory loaded %d times, want 3 (start-up and two signals)", loaded)
	}
}

// Discovered bindings are resolved with the inventory's, and survive an inventory reload.
func TestCatalogKeepsDiscoveredBindingsAcrossReloads(t *testing.T) {
	c, file, _, _ := loadGoodCatalog(t)
	c.setDiscovered([]discovery.Binding{{
		Name: "discovery:kv-v2:secret/apps/pay", Source: "discovery:kv-v2:secret/apps/pay",
		Selectors:  discovery.Selectors{discovery.KeyService: {"payments"}},
		Credential: events.CredentialRef{Kind: "kv-v2", Mount: "secret", Path: "apps/pay"},
	}})
	payments := events.Targets{Services: []string{"payments"}}
	if got := strings.Join(resolvedPaths(c, payments), ","); got != "payments/db,apps/pay" {
		t.Errorf("resolved %s, want the inventory's binding then the discovered one", got)
	}
	writeInventory(t, file, catalogGood2, time.Now())
	c.reload(reloadChanged)
	if got := strings.Join(resolvedPaths(c, payments), ","); got != "payments/db,apps/pay" {
		t.Errorf("after a reload resolved %s, want the discovered binding kept", got)
	}
}
