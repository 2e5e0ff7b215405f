package vaultsource

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/discovery"
)

// Names of the sources, as they appear in a binding's Source
// ("discovery:<source>:<mount>/<path>").
const (
	SourceKV       = "kv-v2"
	SourcePKI      = "pki"
	SourceAppRole  = "approle"
	SourceToken    = "token"
	SourceDatabase = "database"
)

// SourcePrefix starts the Source of every discovered binding.
const SourcePrefix = "discovery:"

// ErrCapReached reports that a source stopped after visiting Config.MaxVisits items; the
// bindings it found up to then are kept.
var ErrCapReached = errors.New("visit cap reached")

// SourceError is a problem of one configured source.
type SourceError struct {
	// Source identifies the configured source: "kv-v2:secret/apps", "pki:pki/web",
	// "approle:approle", "token", "database:database".
	Source string
	// Err is what went wrong.
	Err error
	// Failed is true when the source produced no usable result (its previous result, if any,
	// should be kept); false for a problem with one item, which was skipped, and for
	// ErrCapReached, whose partial result is usable.
	Failed bool
}

// Error returns "discovery <source>: <problem>".
func (e *SourceError) Error() string { return "discovery " + e.Source + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *SourceError) Unwrap() error { return e.Err }

// Discover runs every configured source once and returns the bindings found, in
// configuration order, and one error per problem. A failing source contributes no bindings
// and an error; the other sources still run. A source that reaches the visit cap contributes
// what it found and an error wrapping ErrCapReached.
func Discover(ctx context.Context, client *vault.Client, cfg Config) ([]discovery.Binding, []error) {
	var out []discovery.Binding
	var errs []error
	for _, s := range cfg.sources() {
		r := runSource(ctx, client, cfg, s, time.Now())
		out = append(out, r.bindings...)
		errs = append(errs, r.errs...)
	}
	return out, errs
}

// source is one configured source.
type source struct {
	// key identifies the source: its kind and what it covers.
	key string
	// invalid explains why the entry cannot run.
	invalid error
	// run discovers the source's bindings. A partial result may come with ErrCapReached.
	run func(w *walker) ([]discovery.Binding, error)
}

// sources lists the configured sources in a stable order: KV, PKI, AppRole, tokens, database.
func (c Config) sources() []source {
	var out []source
	for _, s := range c.KV {
		out = append(out, s.source())
	}
	for _, s := range c.PKI {
		out = append(out, s.source())
	}
	for _, s := range c.AppRole {
		out = append(out, s.source())
	}
	if c.Tokens {
		out = append(out, tokenSource(c.tokenPaths()))
	}
	for _, s := range c.Database {
		out = append(out, s.source())
	}
	return out
}

// result is what one run of one source produced.
type result struct {
	key      string
	bindings []discovery.Binding
	// failed is true when the bindings must not replace a previous result.
	failed bool
	errs   []error
}

// runSource runs one source with a fresh visit budget.
func runSource(ctx context.Context, client *vault.Client, cfg Config, s source, now time.Time) result {
	r := result{key: s.key}
	if s.invalid != nil {
		r.failed = true
		r.errs = []error{&SourceError{Source: s.key, Err: s.invalid, Failed: true}}
		return r
	}
	w := &walker{ctx: ctx, client: client, limit: cfg.maxVisits(), now: now}
	bindings, err := s.run(w)
	for _, werr := range w.warnings {
		r.errs = append(r.errs, &SourceError{Source: s.key, Err: werr})
	}
	switch {
	case err == nil:
		r.bindings = uniqueNames(bindings)
	case errors.Is(err, ErrCapReached):
		r.bindings = uniqueNames(bindings)
		r.errs = append(r.errs, &SourceError{Source: s.key, Err: err})
	default:
		r.failed = true
		r.errs = append(r.errs, &SourceError{Source: s.key, Err: err, Failed: true})
	}
	return r
}

// uniqueNames gives every binding a distinct name: its Name (its Source when empty), with
// " #2", " #3" appended to repeats.
func uniqueNames(bs []discovery.Binding) []discovery.Binding {
	seen := map[string]int{}
	for i := range bs {
		name := bs[i].Name
		if name == "" {
			name = bs[i].Source
		}
		seen[name]++
		if n := seen[name]; n > 1 {
			name += " #" + strconv.Itoa(n)
		}
		bs[i].Name = name
	}
	return bs
}

// walker runs one source: it counts the items visited against the cap, and talks to Vault.
type walker struct {
	ctx      context.Context
	client   *vault.Client
	limit    int
	visits   int
	now      time.Time
	warnings []error
}

// visit counts one item and fails with ErrCapReached past the limit.
func (w *walker) visit() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.visits++
	if w.visits > w.limit {
		return fmt.Errorf("%w: stopped after %d items (raise max_visits or narrow the source); bindings found so far are kept", ErrCapReached, w.limit)
	}
	return nil
}

// warn records a problem with one item, which is skipped.
func (w *walker) warn(format string, a ...any) {
	w.warnings = append(w.warnings, fmt.Errorf(format, a...))
}

// list returns the keys under a path; none when the path holds nothing.
func (w *walker) list(path string) ([]string, error) {
	s, err := w.client.Logical().ListWithContext(w.ctx, path)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	if s == nil || s.Data == nil {
		return nil, nil
	}
	raw, _ := s.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if ks, ok := k.(string); ok && ks != "" {
			keys = append(keys, ks)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// read reads a path; nil when it does not exist.
func (w *walker) read(path string) (*vault.Secret, error) {
	s, err := w.client.Logical().ReadWithContext(w.ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// lookup posts a lookup request; nil when Vault answers that the item does not exist (404, or
// 400 with goneMessage): it went away since it was listed.
func (w *walker) lookup(path string, body map[string]any, goneMessage string) (*vault.Secret, error) {
	s, err := w.client.Logical().WriteWithContext(w.ctx, path, body)
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && (re.StatusCode == 404 || re.StatusCode == 400 && goneMessage != "" && containsFold(re.Errors, goneMessage)) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// walkKV calls fn with the path of every secret under folder of a KV v2 mount (depth first,
// in name order). Every folder listed counts as a visit.
func (w *walker) walkKV(mount, folder string, fn func(path string) error) error {
	if err := w.visit(); err != nil {
		return err
	}
	dir := ""
	if folder != "" {
		dir = folder + "/"
	}
	keys, err := w.list(mount + "/metadata/" + dir)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k[len(k)-1] == '/' {
			if err := w.walkKV(mount, dir+k[:len(k)-1], fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(dir + k); err != nil {
			return err
		}
	}
	return nil
}
