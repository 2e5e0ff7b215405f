package kvv2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/internal/clock"
	"github.com/rotation-agent/rotation-agent/internal/vaultfake"
	"github.com/rotation-agent/rotation-agent/rotators"
)

func TestFieldsToRotate(t *testing.T) {
	tests := []struct {
		name    string
		named   []string
		data    map[string]any
		want    []string
		wantErr []string // substrings of the error
	}{
		{"single field default", nil, map[string]any{"password": "x"}, []string{"password"}, nil},
		{"single field, empty names", []string{}, map[string]any{"api_key": "x"}, []string{"api_key"}, nil},
		{"multi-field without names", nil, map[string]any{"username": "u", "password": "p", "host": "h"}, nil,
			[]string{"3 fields", "[host password username]", "name the fields"}},
		{"no fields at all", nil, map[string]any{}, nil, []string{"0 fields"}},
		{"deleted version (nil data)", nil, nil, nil, []string{"0 fields"}},
		{"named field", []string{"password"}, map[string]any{"username": "u", "password": "p"}, []string{"password"}, nil},
		{"named fields sorted", []string{"token", "password", "api_key"},
			map[string]any{"username": "u", "password": "p", "token": "t", "api_key": "k"}, []string{"api_key", "password", "token"}, nil},
		{"named missing field", []string{"password", "passwd"}, map[string]any{"password": "p"}, nil, []string{"no field", "passwd"}},
		{"named missing fields all listed", []string{"zz", "password", "yy"}, map[string]any{"password": "p"}, nil, []string{"[zz yy]"}},
		{"named field on single-field secret", []string{"other"}, map[string]any{"password": "p"}, nil, []string{"other"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var named []string
			if tc.named != nil {
				named = append([]string{}, tc.named...)
			}
			got, err := fieldsToRotate(named, tc.data)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("fieldsToRotate = %v, want an error", got)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("fieldsToRotate: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fieldsToRotate = %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(named, tc.named) && (len(named) != 0 || len(tc.named) != 0) {
				t.Errorf("the caller's field list was changed to %v", named)
			}
		})
	}
}

// fakeVault serves the parts of Vault's KV v2 HTTP API the rotator uses, for one secret, and

// version is one version of the fake secret.
type version struct {
	data      map[string]any
	created   time.Time
	deleted   time.Time
	destroyed bool
}

// fakeVault serves the parts of Vault's KV v2 HTTP API the rotator uses, for one secret, and
// records every request.
type fakeVault struct {
	t     *testing.T
	mount string
	path  string

	mu sync.Mutex
	// now is the fake's clock for creation and deletion times.
	now func() time.Time
	// current is the current version number.
	current  int
	versions map[int]*version
	// failMetadata, failData, failPut and failDelete answer those requests with the status
	// when non-zero.
	failMetadata, failData, failPut, failDelete int
	// putLost makes a write succeed but answer 503, as a lost response would.
	putLost bool
	// ignoreDeletes accepts delete and destroy requests without applying them.
	ignoreDeletes bool
	// events is the order of requests and saves, as "GET metadata", "PUT data cas=3",
	// "PUT delete [3]", "save ...".
	events   []string
	requests int
	writes   int
	putBody  map[string]any
}

// newFakeVault returns a fake holding versions 1..current, each created an hour after the
// previous and holding data (a copy per version), and a client for it.
func newFakeVault(t *testing.T, current int, data map[string]any) (*fakeVault, *vault.Client) {
	t.Helper()
	f := &fakeVault{t: t, mount: "secret", path: "app/db", current: current, versions: map[int]*version{}, now: time.Now}
	for v := 1; v <= current; v++ {
		f.versions[v] = &version{data: copyData(data), created: time.Now().Add(-time.Duration(current-v+1) * time.Hour).UTC()}
	}
	return f, vaultfake.Client(t, f, "test-token")
}

func copyData(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (f *fakeVault) note(event string) {
	f.mu.Lock()
	f.events = append(f.events, event)
	f.mu.Unlock()
}

func (f *fakeVault) snapshot() (events []string, requests, writes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...), f.requests, f.writes
}

func (f *fakeVault) lastPut() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putBody
}

// currentVersion returns the current version number and its data.
func (f *fakeVault) currentVersion() (int, map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current, copyData(f.versions[f.current].data)
}

func (f *fakeVault) get(v int) version {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.versions[v] == nil {
		return version{}
	}
	return *f.versions[v]
}

func (f *fakeVault) set(v int, fn func(*version)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.versions[v] == nil {
		f.versions[v] = &version{}
	}
	fn(f.versions[v])
}

func (f *fakeVault) remove(v int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.versions, v)
}

// externalWrite writes a new version as another client would.
func (f *fakeVault) externalWrite(data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current++
	f.versions[f.current] = &version{data: copyData(data), created: f.now().UTC()}
}

func (f *fakeVault) configure(fn func(f *fakeVault)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func vaultError(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		msg = fmt.Sprintf("fake vault says %d", status)
	}
	writeJSON(w, status, map[string]any{"errors": []string{msg}})
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (f *fakeVault) versionMeta(n int) map[string]any {
	v := f.versions[n]
	deletion := ""
	if !v.deleted.IsZero() {
		deletion = rfc3339(v.deleted)
	}
	return map[string]any{"created_time": rfc3339(v.created), "custom_metadata": nil, "deletion_time": deletion, "destroyed": v.destroyed, "version": n}
}

// versionsOf reads the versions list of a delete or destroy request; the client sends them as
// strings for delete and numbers for destroy.
func versionsOf(body map[string]any) []int {
	raw, _ := body["versions"].([]any)
	out := make([]int, 0, len(raw))
	for _, r := range raw {
		n, _ := strconv.Atoi(fmt.Sprint(r))
		out = append(out, n)
	}
	return out
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.Method != http.MethodGet {
		f.writes++
	}
	if r.Header.Get("X-Vault-Token") != "test-token" {
		f.t.Errorf("%s %s without the client token", r.Method, r.URL.Path)
	}
	var body map[string]any
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			f.t.Errorf("%s body is not JSON: %v", r.Method, err)
		}
	}
	metaPath := "/v1/" + f.mount + "/metadata/" + f.path
	dataPath := "/v1/" + f.mount + "/data/" + f.path
	deletePath := "/v1/" + f.mount + "/delete/" + f.path
	destroyPath := "/v1/" + f.mount + "/destroy/" + f.path
	switch {
	case r.Method == http.MethodGet && r.URL.Path == metaPath:
		f.events = append(f.events, "GET metadata")
		if f.failMetadata != 0 {
			vaultError(w, f.failMetadata, "")
			return
		}
		versions := map[string]any{}
		oldest := 0
		for v := range f.versions {
			m := f.versionMeta(v)
			delete(m, "version") // Vault keys versions by number and does not repeat it
			delete(m, "custom_metadata")
			versions[strconv.Itoa(v)] = m
			if oldest == 0 || v < oldest {
				oldest = v
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"request_id": "r1", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": map[string]any{
				"cas_required": false, "created_time": rfc3339(f.versions[oldest].created), "current_version": f.current,
				"custom_metadata": nil, "delete_version_after": "0s", "max_versions": 0, "oldest_version": oldest,
				"updated_time": rfc3339(f.versions[f.current].created), "versions": versions,
			},
		})
	case r.Method == http.MethodGet && r.URL.Path == dataPath:
		f.events = append(f.events, "GET data?version="+r.URL.Query().Get("version"))
		if f.failData != 0 {
			vaultError(w, f.failData, "")
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("version"))
		if n == 0 {
			n = f.current
		}
		v := f.versions[n]
		if v == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
			return
		}
		status, data := http.StatusOK, v.data
		if !v.deleted.IsZero() || v.destroyed {
			// Vault answers 404 with the version's metadata and no data.
			status, data = http.StatusNotFound, nil
		}
		writeJSON(w, status, map[string]any{
			"request_id": "r2", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": map[string]any{"data": data, "metadata": f.versionMeta(n)},
		})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == dataPath:
		ev := "PUT data"
		opts, hasOpts := body["options"].(map[string]any)
		cas, hasCAS := opts["cas"].(float64)
		if hasOpts && hasCAS {
			ev += fmt.Sprintf(" cas=%v", cas)
		}
		f.events = append(f.events, ev)
		f.putBody = body
		if f.failPut != 0 {
			vaultError(w, f.failPut, "")
			return
		}
		if hasCAS && int(cas) != f.current {
			vaultError(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
			return
		}
		data, _ := body["data"].(map[string]any)
		f.current++
		f.versions[f.current] = &version{data: data, created: f.now().UTC()}
		if f.putLost {
			vaultError(w, http.StatusServiceUnavailable, "response lost")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"request_id": "r3", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": f.versionMeta(f.current),
		})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && (r.URL.Path == deletePath || r.URL.Path == destroyPath):
		destroy := r.URL.Path == destroyPath
		versions := versionsOf(body)
		if destroy {
			f.events = append(f.events, fmt.Sprintf("%s destroy %v", r.Method, versions))
		} else {
			f.events = append(f.events, fmt.Sprintf("%s delete %v", r.Method, versions))
		}
		if f.failDelete != 0 {
			vaultError(w, f.failDelete, "")
			return
		}
		if !f.ignoreDeletes {
			for _, n := range versions {
				v := f.versions[n]
				switch {
				case v == nil:
				case destroy:
					v.destroyed, v.data = true, nil
				case v.deleted.IsZero():
					v.deleted = f.now().UTC()
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		vaultError(w, http.StatusNotFound, "")
	}
}

// journal is a Request.Save that keeps a copy of every state saved and notes each save in
// the fake's event log.
type journal struct {
	f     *fakeVault
	mu    sync.Mutex
	saved []rotators.State
	// fail, when set, decides whether a save fails.
	fail func(st *rotators.State) error
	// hook runs after a successful save, as another client acting meanwhile.
	hook func(st *rotators.State)
}

func (j *journal) save(_ context.Context, st *rotators.State) error {
	ev := fmt.Sprintf("save started=%s done=%s", st.Started, st.Done)
	if st.Note(noteWritingAt) != "" && st.Note(noteNew) == "" {
		ev += " writing"
	}
	j.f.note(ev)
	if j.fail != nil {
		if err := j.fail(st); err != nil {
			return err
		}
	}
	c := *st
	c.Data = map[string]string{}
	for k, v := range st.Data {
		c.Data[k] = v
	}
	j.mu.Lock()
	j.saved = append(j.saved, c)
	j.mu.Unlock()
	if j.hook != nil {
		j.hook(st)
	}
	return nil
}

func (j *journal) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.saved)
}

// generator returns distinct values and counts its calls.
type generator struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (g *generator) generate(context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.err != nil {
		return "", g.err
	}
	return fmt.Sprintf("generated-%d", g.calls), nil
}

// env is one test's fake Vault, rotator, journal and generator.
type env struct {
	f   *fakeVault
	rot *Rotator
	j   *journal
	gen *generator
	req rotators.Request
}

func newEnv(t *testing.T, current int, data map[string]any, fields []string, options map[string]string) *env {
	t.Helper()
	f, client := newFakeVault(t, current, data)
	e := &env{f: f, rot: New(client), j: &journal{f: f}, gen: &generator{}}
	e.req = rotators.Request{
		ChangeID:   "CHG0001",
		Credential: events.CredentialRef{Kind: Kind, Mount: f.mount, Path: f.path, Fields: fields, Options: options},
		Save:       e.j.save,
		Generate:   e.gen.generate,
		Now:        time.Now,
	}
	return e
}

// prepared returns the state Prepare leaves for base version base and fields.
func prepared(base int, fields string) *rotators.State {
	st := &rotators.State{Done: rotators.StepPrepare, Started: rotators.StepApply}
	st.SetNote(noteBase, strconv.Itoa(base))
	st.SetNote(noteFields, fields)
	st.Before = rotators.Fingerprint("version", strconv.Itoa(base), "fields", fields)
	return st
}

func hasEvent(evs []string, prefix string) bool {
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

func TestKind(t *testing.T) {
	if got := New(nil).Kind(); got != "kv-v2" {
		t.Errorf("Kind() = %q, want kv-v2", got)
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		fields  []string
		options map[string]string
		want    []string
	}{
		{"default retire", []string{"password"}, nil, []string{
			"write version 4 of secret/app/db with new values for password (check-and-set on version 3)",
			"after the overlap window: keep version 3"}},
		{"delete", []string{"password", "api_key"}, map[string]string{OptionRetire: "delete"}, []string{
			"write version 4 of secret/app/db with new values for api_key, password (check-and-set on version 3)",
			"after the overlap window: delete version 3"}},
		{"destroy", []string{"password"}, map[string]string{OptionRetire: "destroy"}, []string{
			"write version 4 of secret/app/db with new values for password (check-and-set on version 3)",
			"after the overlap window: destroy version 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3, map[string]any{"username": "app", "password": "old", "api_key": "k"}, tc.fields, tc.options)
			plan, err := e.rot.Plan(context.Background(), e.req)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if plan.Action != events.ActionRotate {
				t.Errorf("Action = %q, want rotate", plan.Action)
			}
			if want := (events.Fingerprint{"version": "3"}); !reflect.DeepEqual(plan.Current, want) {
				t.Errorf("Current = %v, want %v", plan.Current, want)
			}
			if !reflect.DeepEqual(plan.Changes, tc.want) {
				t.Errorf("Changes =\n %q\nwant\n %q", plan.Changes, tc.want)
			}
			evs, _, writes := e.f.snapshot()
			if writes != 0 || e.j.count() != 0 || e.gen.calls != 0 {
				t.Errorf("Plan made %d writes, %d saves, %d generate calls; want none (events %q)", writes, e.j.count(), e.gen.calls, evs)
			}
			for _, c := range plan.Changes {
				if strings.Contains(c, "old") || strings.Contains(c, "generated") {
					t.Errorf("plan change %q shows a secret value", c)
				}
			}
		})
	}
}

func TestPlanAndPrepareErrors(t *testing.T) {
	tests := []struct {
		name          string
		failMetadata  int
		failData      int
		data          map[string]any
		fields        []string
		options       map[string]string
		action        events.Action
		wantRetryable bool
		wantMsg       string
		wantRequests  bool
	}{
		{"metadata 503", 503, 0, nil, nil, nil, "", true, "read metadata of kv-v2:secret/app/db", true},
		{"metadata 500", 500, 0, nil, nil, nil, "", true, "read metadata", true},
		{"metadata 429", 429, 0, nil, nil, nil, "", true, "read metadata", true},
		{"metadata 403", 403, 0, nil, nil, nil, "", false, "read metadata", true},
		{"metadata 404 (no such secret)", 404, 0, nil, nil, nil, "", false, "read metadata", true},
		{"data 503", 0, 503, nil, nil, nil, "", true, "read current version", true},
		{"data 403", 0, 403, nil, nil, nil, "", false, "read current version", true},
		{"multi-field without names", 0, 0, map[string]any{"username": "u", "password": "p"}, nil, nil, "", false, "name the fields", true},
		{"named field missing", 0, 0, nil, []string{"pasword"}, nil, "", false, "pasword", true},
		{"bad retire option", 0, 0, nil, nil, map[string]string{OptionRetire: "shred"}, "", false, `retire="shred"`, false},
		{"revoke action", 0, 0, nil, nil, nil, events.ActionRevoke, false, "revoke", false},
		{"verify action", 0, 0, nil, nil, nil, events.ActionVerify, false, "verify", false},
		{"unknown action", 0, 0, nil, nil, nil, "delete", false, "delete", false},
	}
	for _, tc := range tests {
		for _, method := range []string{"Plan", "Prepare"} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				data := tc.data
				if data == nil {
					data = map[string]any{"password": "old"}
				}
				e := newEnv(t, 2, data, tc.fields, tc.options)
				e.req.Credential.Action = tc.action
				e.f.configure(func(f *fakeVault) { f.failMetadata, f.failData = tc.failMetadata, tc.failData })
				st := &rotators.State{Started: rotators.StepPrepare}
				var err error
				if method == "Plan" {
					_, err = e.rot.Plan(context.Background(), e.req)
				} else {
					err = e.rot.Prepare(context.Background(), e.req, st)
				}
				if err == nil {
					t.Fatalf("%s succeeded, want an error", method)
				}
				if got := rotators.IsRetryable(err); got != tc.wantRetryable {
					t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q lacks %q", err, tc.wantMsg)
				}
				_, requests, writes := e.f.snapshot()
				if writes != 0 || (requests != 0) != tc.wantRequests {
					t.Errorf("%d requests, %d writes; want requests %v and no writes", requests, writes, tc.wantRequests)
				}
				if len(st.Data) != 0 || st.Before != nil {
					t.Errorf("a failed Prepare left notes %v, Before %v", st.Data, st.Before)
				}
			})
		}
	}
}

func TestPrepare(t *testing.T) {
	tests := []struct {
		name       string
		fields     []string
		wantFields string
	}{
		{"single-field default", nil, ""},
		{"one named", []string{"password"}, "password"},
		{"named, sorted", []string{"password", "api_key"}, "api_key,password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string]any{"username": "app", "password": "old", "api_key": "k"}
			if tc.fields == nil {
				data = map[string]any{"token": "old"}
				tc.wantFields = "token"
			}
			e := newEnv(t, 3, data, tc.fields, nil)
			st := &rotators.State{Started: rotators.StepPrepare}
			if err := e.rot.Prepare(context.Background(), e.req, st); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			wantData := map[string]string{noteBase: "3", noteFields: tc.wantFields, noteOriginal: "3"}
			if !reflect.DeepEqual(st.Data, wantData) {
				t.Errorf("notes = %v, want %v", st.Data, wantData)
			}
			wantBefore := events.Fingerprint{"version": "3", "fields": tc.wantFields}
			if !reflect.DeepEqual(st.Before, wantBefore) {
				t.Errorf("Before = %v, want %v", st.Before, wantBefore)
			}
			evs, _, writes := e.f.snapshot()
			if writes != 0 || e.j.count() != 0 || e.gen.calls != 0 {
				t.Errorf("Prepare made %d writes, %d saves, %d generate calls; want none (events %q)", writes, e.j.count(), e.gen.calls, evs)
			}
			if want := []string{"GET metadata", "GET data?version=3"}; !reflect.DeepEqual(evs, want) {
				t.Errorf("events = %q, want %q", evs, want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	e := newEnv(t, 3, map[string]any{"username": "app", "password": "old-pass", "api_key": "old-key", "host": "db1"}, []string{"password", "api_key"}, nil)
	st := prepared(3, "api_key,password")
	start := time.Now()
	if err := e.rot.Apply(context.Background(), e.req, st); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	evs, _, writes := e.f.snapshot()
	wantEvents := []string{"GET metadata", "GET data?version=3", "save started=apply done=prepare writing", "PUT data cas=3"}
	if !reflect.DeepEqual(evs, wantEvents) {
		t.Errorf("events = %q, want %q", evs, wantEvents)
	}
	if writes != 1 {
		t.Errorf("%d writes, want 1", writes)
	}
	wantData := map[string]any{"username": "app", "password": "generated-2", "api_key": "generated-1", "host": "db1"}
	if put := e.f.lastPut(); !reflect.DeepEqual(put["data"], wantData) {
		t.Errorf("PUT data = %v, want %v (other fields kept)", put["data"], wantData)
	}
	cur, _ := e.f.currentVersion()
	created := e.f.get(cur).created
	if cur != 4 || st.Note(noteNew) != "4" {
		t.Errorf("current version %d, new_version note %q; want 4", cur, st.Note(noteNew))
	}
	wantAfter := events.Fingerprint{"version": "4", "created_time": rfc3339(created)}
	if !reflect.DeepEqual(st.After, wantAfter) {
		t.Errorf("After = %v, want %v", st.After, wantAfter)
	}
	// The save before the write carries when the write was meant, and not its result.
	if e.j.count() != 1 {
		t.Fatalf("%d saves, want 1", e.j.count())
	}
	saved := e.j.saved[0]
	at, err := time.Parse(time.RFC3339Nano, saved.Note(noteWritingAt))
	if err != nil || at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("saved writing_at = %q, want the time of the write", saved.Note(noteWritingAt))
	}
	if saved.Note(noteNew) != "" || saved.Note(noteBase) != "3" {
		t.Errorf("saved notes = %v, want base 3 and no new version yet", saved.Data)
	}
	for _, fp := range []events.Fingerprint{st.Before, st.After} {
		for k, v := range fp {
			if strings.Contains(v, "generated-") || strings.Contains(v, "old-") {
				t.Errorf("fingerprint %s=%q holds a secret value", k, v)
			}
		}
	}
	for k, v := range st.Data {
		if strings.Contains(v, "generated-") || strings.Contains(v, "old-") {
			t.Errorf("note %s=%q holds a secret value", k, v)
		}
	}
}

func TestApplyAlreadyApplied(t *testing.T) {
	e := newEnv(t, 4, map[string]any{"password": "p"}, nil, nil)
	st := prepared(3, "password")
	st.SetNote(noteNew, "4")
	st.After = events.Fingerprint{"version": "4"}
	if err := e.rot.Apply(context.Background(), e.req, st); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if _, n, _ := e.f.snapshot(); n != 0 || e.j.count() != 0 || e.gen.calls != 0 {
		t.Errorf("%d requests, %d saves, %d generate calls; want none", n, e.j.count(), e.gen.calls)
	}
	if st.Note(noteNew) != "4" || st.After["version"] != "4" {
		t.Errorf("state changed: %+v", st)
	}
}

func TestApplyNoBase(t *testing.T) {
	for _, base := range []string{"", "four"} {
		e := newEnv(t, 4, map[string]any{"password": "p"}, nil, nil)
		st := &rotators.State{Started: rotators.StepApply}
		if base != "" {
			st.SetNote(noteBase, base)
		}
		err := e.rot.Apply(context.Background(), e.req, st)
		if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "no base version") {
			t.Errorf("Apply with base %q = %v, want a permanent 'no base version' error", base, err)
		}
		if _, n, _ := e.f.snapshot(); n != 0 {
			t.Errorf("%d requests, want none", n)
		}
	}
}

func TestApplyAdopt(t *testing.T) {
	tests := []struct {
		name       string
		createdAgo time.Duration // how long before writing_at version base+1 was created; negative: after
		adopt      bool
	}{
		{"created after the intent", -2 * time.Second, true},
		{"created at the intent", 0, true},
		{"created within clock skew before the intent", 3 * time.Second, true},
		{"created just beyond clock skew", 6 * time.Second, false},
		{"created long before the intent", time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 5, map[string]any{"password": "p"}, nil, nil)
			at := time.Now().Add(-time.Minute).UTC()
			created := at.Add(-tc.createdAgo)
			e.f.set(5, func(v *version) { v.created = created })
			st := prepared(4, "password")
			st.SetNote(noteWritingAt, at.Format(time.RFC3339Nano))
			err := e.rot.Apply(context.Background(), e.req, st)
			evs, _, writes := e.f.snapshot()
			if writes != 0 || e.j.count() != 0 || e.gen.calls != 0 {
				t.Errorf("Apply wrote %d times, saved %d times, generated %d values; want none (events %q)", writes, e.j.count(), e.gen.calls, evs)
			}
			if !tc.adopt {
				if err == nil || rotators.IsRetryable(err) {
					t.Fatalf("Apply = %v; want a permanent error", err)
				}
				if !strings.Contains(err.Error(), "changed outside the agent") {
					t.Errorf("error %q does not say the secret changed outside the agent", err)
				}
				if st.Note(noteNew) != "" || st.After != nil {
					t.Errorf("a foreign version was recorded: %+v", st)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			wantAfter := events.Fingerprint{"version": "5", "created_time": rfc3339(created)}
			if st.Note(noteNew) != "5" || !reflect.DeepEqual(st.After, wantAfter) {
				t.Errorf("new_version %q, After %v; want 5 and %v", st.Note(noteNew), st.After, wantAfter)
			}
			if want := []string{"GET metadata"}; !reflect.DeepEqual(evs, want) {
				t.Errorf("events = %q, want %q", evs, want)
			}
		})
	}
}

func TestApplyChangedOutsideTheAgent(t *testing.T) {
	tests := []struct {
		name      string
		current   int
		writingAt bool
		remove    int
	}{
		{"new version, no write intended", 5, false, 0},
		{"version moved on, ours missing", 7, true, 5},
		{"version moved back", 3, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.current, map[string]any{"password": "p"}, nil, nil)
			if tc.remove != 0 {
				e.f.remove(tc.remove)
			}
			st := prepared(4, "password")
			if tc.writingAt {
				st.SetNote(noteWritingAt, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano))
			}
			err := e.rot.Apply(context.Background(), e.req, st)
			if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
				t.Fatalf("Apply = %v, want a permanent 'changed outside the agent' error", err)
			}
			if _, _, writes := e.f.snapshot(); writes != 0 {
				t.Errorf("%d writes, want none", writes)
			}
		})
	}
}

func TestApplyAdoptsOnlyTheCurrentVersion(t *testing.T) {
	e := newEnv(t, 6, map[string]any{"password": "p"}, nil, nil)
	at := time.Now().Add(-time.Minute).UTC()
	e.f.set(5, func(v *version) { v.created = at.Add(time.Second) })
	e.f.set(6, func(v *version) { v.created = at.Add(2 * time.Second) })
	st := prepared(4, "password")
	st.SetNote(noteWritingAt, at.Format(time.RFC3339Nano))
	err := e.rot.Apply(context.Background(), e.req, st)
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
		t.Fatalf("Apply = %v, want a permanent 'changed outside the agent' error", err)
	}
}

// Another client writes between the agent's read and its write: nothing is overwritten, the
// write is retried by reading Vault back, and the other writer's version is refused.
func TestApplyCheckAndSetConflict(t *testing.T) {
	e := newEnv(t, 3, map[string]any{"password": "old"}, nil, nil)
	e.j.hook = func(*rotators.State) { e.f.externalWrite(map[string]any{"password": "theirs"}) }
	st := prepared(3, "password")
	err := e.rot.Apply(context.Background(), e.req, st)
	if err == nil || !rotators.IsRetryable(err) || !strings.Contains(err.Error(), "check-and-set") {
		t.Fatalf("Apply = %v, want a retryable check-and-set error", err)
	}
	evs, _, _ := e.f.snapshot()
	if !hasEvent(evs, "PUT data cas=3") {
		t.Errorf("events %q lack the check-and-set write", evs)
	}
	e.j.hook = nil
	err = e.rot.Apply(context.Background(), e.req, st)
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
		t.Fatalf("second Apply = %v, want a permanent 'changed outside the agent' error", err)
	}
	if cur, data := e.f.currentVersion(); cur != 4 || data["password"] != "theirs" {
		t.Errorf("current version %d holds %v; want the other writer's version 4 kept", cur, data)
	}
	if st.Note(noteNew) != "" || st.After != nil {
		t.Errorf("the other writer's version was recorded: %+v", st)
	}
}

// A stale worker of the same rotation (frozen past its lock, then woken) wrote the version the
// agent was about to write: its values were recorded in the journal before its write, so the
// version is adopted instead of being reported as a change outside the agent.
func TestApplyAdoptsAStaleWorkersWrite(t *testing.T) {
	e := newEnv(t, 3, map[string]any{"password": "old"}, nil, nil)
	st := prepared(3, "password")
	stale := map[string]any{"password": "stale-worker-value"}
	if err := recordWrite(st, stale); err != nil {
		t.Fatal(err)
	}
	e.j.hook = func(*rotators.State) { e.f.externalWrite(stale) }
	if err := e.rot.Apply(context.Background(), e.req, st); err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("Apply = %v, want a retryable check-and-set error", err)
	}
	e.j.hook = nil
	if err := e.rot.Apply(context.Background(), e.req, st); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if st.Note(noteNew) != "4" {
		t.Errorf("new_version = %q, want the stale worker's version 4 adopted", st.Note(noteNew))
	}
	if _, _, writes := e.f.snapshot(); writes != 1 {
		t.Errorf("%d write requests, want 1 (the one refused by check-and-set; adopting writes nothing)", writes)
	}
	if strings.Contains(fmt.Sprint(st.Data), "stale-worker-value") {
		t.Errorf("the state holds the value itself: %v", st.Data)
	}
}

func TestApplyWriteErrors(t *testing.T) {
	tests := []struct {
		name          string
		failPut       int
		wantRetryable bool
	}{
		{"503", 503, true},
		{"500", 500, true},
		{"429", 429, true},
		{"403", 403, false},
		{"400 other", 400, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3, map[string]any{"password": "old"}, nil, nil)
			e.f.configure(func(f *fakeVault) { f.failPut = tc.failPut })
			st := prepared(3, "password")
			err := e.rot.Apply(context.Background(), e.req, st)
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if got := rotators.IsRetryable(err); got != tc.wantRetryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
			}
			if !strings.Contains(err.Error(), "write new version of kv-v2:secret/app/db") {
				t.Errorf("error %q does not say what failed", err)
			}
			if st.Note(noteNew) != "" {
				t.Errorf("new_version recorded after a failed write: %v", st.Data)
			}
			if !tc.wantRetryable {
				return
			}
			// Nothing was written: the retry writes, with check-and-set on the same base.
			e.f.configure(func(f *fakeVault) { f.failPut = 0 })
			if err := e.rot.Apply(context.Background(), e.req, st); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if cur, _ := e.f.currentVersion(); cur != 4 || st.Note(noteNew) != "4" {
				t.Errorf("after retry current version %d, new_version %q; want 4", cur, st.Note(noteNew))
			}
		})
	}
}

func TestApplyLostWriteResponseIsAdopted(t *testing.T) {
	e := newEnv(t, 3, map[string]any{"password": "old"}, nil, nil)
	e.f.configure(func(f *fakeVault) { f.putLost = true })
	st := prepared(3, "password")
	err := e.rot.Apply(context.Background(), e.req, st)
	if err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("Apply = %v, want a retryable error", err)
	}
	e.f.configure(func(f *fakeVault) { f.putLost = false })
	if err := e.rot.Apply(context.Background(), e.req, st); err != nil {
		t.Fatalf("retry: %v", err)
	}
	evs, _, writes := e.f.snapshot()
	if writes != 1 {
		t.Errorf("%d writes, want 1: the retry must adopt the lost write (events %q)", writes, evs)
	}
	if cur, _ := e.f.currentVersion(); cur != 4 || st.Note(noteNew) != "4" || st.After["version"] != "4" {
		t.Errorf("current version %d, state %+v; want version 4 adopted", cur, st)
	}
}

func TestApplySaveFailureStopsBeforeWrite(t *testing.T) {
	saveErr := errors.New("journal unavailable")
	e := newEnv(t, 2, map[string]any{"password": "p"}, nil, nil)
	e.j.fail = func(*rotators.State) error { return saveErr }
	st := prepared(2, "password")
	err := e.rot.Apply(context.Background(), e.req, st)
	if !errors.Is(err, saveErr) || !rotators.IsRetryable(err) {
		t.Fatalf("Apply error = %v, want the retryable save error", err)
	}
	evs, _, writes := e.f.snapshot()
	if writes != 0 || hasEvent(evs, "PUT") {
		t.Fatalf("wrote to Vault although the intent was not saved (events %q)", evs)
	}
	if cur, _ := e.f.currentVersion(); cur != 2 {
		t.Errorf("current version = %d, want 2 (unchanged)", cur)
	}
}

func TestApplyGenerateError(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		wantRetryable bool
	}{
		{"permanent", rotators.Permanent(errors.New("bad policy")), false},
		{"retryable", rotators.Retryable(errors.New("policy read: 503")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 2, map[string]any{"password": "p"}, nil, nil)
			e.gen.err = tc.err
			st := prepared(2, "password")
			err := e.rot.Apply(context.Background(), e.req, st)
			if !errors.Is(err, tc.err) || rotators.IsRetryable(err) != tc.wantRetryable {
				t.Fatalf("Apply = %v, want the generate error with retryable %v", err, tc.wantRetryable)
			}
			if !strings.Contains(err.Error(), `field "password"`) {
				t.Errorf("error %q does not name the field", err)
			}
			evs, _, writes := e.f.snapshot()
			if writes != 0 || e.j.count() != 0 {
				t.Errorf("%d writes and %d saves without a value (events %q)", writes, e.j.count(), evs)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	old := map[string]any{"username": "app", "password": "old-pass", "api_key": "old-key", "port": float64(5432)}
	tests := []struct {
		name          string
		fields        string
		newData       map[string]any
		wantErr       string // empty: verification passes
		wantRetryable bool
	}{
		{"rotated", "password",
			map[string]any{"username": "app", "password": "new-pass", "api_key": "old-key", "port": float64(5432)}, "", false},
		{"two rotated", "api_key,password",
			map[string]any{"username": "app", "password": "new-pass", "api_key": "new-key", "port": float64(5432)}, "", false},
		{"rotated field unchanged", "password",
			map[string]any{"username": "app", "password": "old-pass", "api_key": "old-key", "port": float64(5432)}, `field "password"`, true},
		{"one of two rotated fields unchanged", "api_key,password",
			map[string]any{"username": "app", "password": "new-pass", "api_key": "old-key", "port": float64(5432)}, `field "api_key"`, true},
		{"rotated field empty", "password",
			map[string]any{"username": "app", "password": "", "api_key": "old-key", "port": float64(5432)}, `field "password"`, true},
		{"rotated field missing", "password",
			map[string]any{"username": "app", "api_key": "old-key", "port": float64(5432)}, `field "password"`, true},
		{"rotated field not a string", "password",
			map[string]any{"username": "app", "password": float64(1), "api_key": "old-key", "port": float64(5432)}, `field "password"`, true},
		{"other field changed", "password",
			map[string]any{"username": "someone", "password": "new-pass", "api_key": "old-key", "port": float64(5432)}, `field "username"`, true},
		{"other field dropped", "password",
			map[string]any{"username": "app", "password": "new-pass", "port": float64(5432)}, `field "api_key"`, true},
		{"number field changed", "password",
			map[string]any{"username": "app", "password": "new-pass", "api_key": "old-key", "port": float64(5433)}, `field "port"`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3, old, nil, nil)
			e.f.externalWrite(tc.newData)
			st := prepared(3, tc.fields)
			st.SetNote(noteNew, "4")
			err := e.rot.Verify(context.Background(), e.req, st)
			evs, _, writes := e.f.snapshot()
			if writes != 0 {
				t.Errorf("Verify wrote to Vault (events %q)", evs)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify passed, want a failure")
			}
			if rotators.IsRetryable(err) != tc.wantRetryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, rotators.IsRetryable(err), tc.wantRetryable)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
			for _, secret := range []string{"old-pass", "new-pass", "old-key"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret value", err)
				}
			}
		})
	}
}

func TestVerifyReadErrors(t *testing.T) {
	for _, tc := range []struct {
		status        int
		wantRetryable bool
	}{{503, true}, {403, false}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			e := newEnv(t, 4, map[string]any{"password": "p"}, nil, nil)
			e.f.configure(func(f *fakeVault) { f.failData = tc.status })
			st := prepared(3, "password")
			st.SetNote(noteNew, "4")
			err := e.rot.Verify(context.Background(), e.req, st)
			if err == nil || rotators.IsRetryable(err) != tc.wantRetryable {
				t.Fatalf("Verify = %v, want an error with retryable %v", err, tc.wantRetryable)
			}
			if !strings.Contains(err.Error(), "read version 3 of kv-v2:secret/app/db") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
}

func TestRetire(t *testing.T) {
	tests := []struct {
		name       string
		retire     string
		setup      func(f *fakeVault)
		wantEvents []string
		wantOld    string
	}{
		{"default keeps", "", nil, nil, "kept"},
		{"keep", "keep", nil, nil, "kept"},
		{"delete", "delete", nil, []string{"GET metadata", "PUT delete [3]", "GET metadata"}, "deleted"},
		{"destroy", "destroy", nil, []string{"GET metadata", "PUT destroy [3]", "GET metadata"}, "destroyed"},
		{"already deleted", "delete", func(f *fakeVault) { f.versions[3].deleted = time.Now().Add(-time.Minute) }, []string{"GET metadata"}, "deleted"},
		{"already destroyed", "destroy", func(f *fakeVault) { f.versions[3].destroyed = true }, []string{"GET metadata"}, "destroyed"},
		{"destroy a deleted version", "destroy", func(f *fakeVault) { f.versions[3].deleted = time.Now().Add(-time.Minute) },
			[]string{"GET metadata", "PUT destroy [3]", "GET metadata"}, "destroyed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4, map[string]any{"password": "p"}, nil, map[string]string{OptionRetire: tc.retire})
			if tc.setup != nil {
				e.f.configure(tc.setup)
			}
			st := prepared(3, "password")
			st.Done, st.Started = rotators.StepPromote, rotators.StepRetire
			st.SetNote(noteNew, "4")
			st.After = events.Fingerprint{"version": "4"}
			if err := e.rot.Retire(context.Background(), e.req, st); err != nil {
				t.Fatalf("Retire: %v", err)
			}
			evs, _, _ := e.f.snapshot()
			if !reflect.DeepEqual(evs, tc.wantEvents) && (len(evs) != 0 || len(tc.wantEvents) != 0) {
				t.Errorf("events = %q, want %q", evs, tc.wantEvents)
			}
			if want := (events.Fingerprint{"version": "4", "old_version": tc.wantOld}); !reflect.DeepEqual(st.After, want) {
				t.Errorf("After = %v, want %v", st.After, want)
			}
			v3, v4 := e.f.get(3), e.f.get(4)
			switch tc.wantOld {
			case "deleted":
				if v3.deleted.IsZero() {
					t.Error("version 3 is not deleted")
				}
			case "destroyed":
				if !v3.destroyed {
					t.Error("version 3 is not destroyed")
				}
			case "kept":
				if !v3.deleted.IsZero() || v3.destroyed {
					t.Error("version 3 was not kept")
				}
			}
			if !v4.deleted.IsZero() || v4.destroyed || v4.data["password"] != "p" {
				t.Errorf("the new version was touched: %+v", v4)
			}
		})
	}
}

func TestRetireNilAfter(t *testing.T) {
	e := newEnv(t, 4, map[string]any{"password": "p"}, nil, nil)
	st := prepared(3, "password")
	if err := e.rot.Retire(context.Background(), e.req, st); err != nil {
		t.Fatal(err)
	}
	if st.After["old_version"] != "kept" {
		t.Errorf("After = %v", st.After)
	}
}

func TestRetireErrors(t *testing.T) {
	tests := []struct {
		name          string
		retire        string
		setup         func(f *fakeVault)
		wantRetryable bool
		wantMsg       string
		wantDelete    bool
	}{
		{"metadata 503", "delete", func(f *fakeVault) { f.failMetadata = 503 }, true, "read metadata", false},
		{"metadata 403", "destroy", func(f *fakeVault) { f.failMetadata = 403 }, false, "read metadata", false},
		{"delete 503", "delete", func(f *fakeVault) { f.failDelete = 503 }, true, "delete version 3 of kv-v2:secret/app/db", true},
		{"destroy 403", "destroy", func(f *fakeVault) { f.failDelete = 403 }, false, "destroy version 3", true},
		{"delete not applied", "delete", func(f *fakeVault) { f.ignoreDeletes = true }, true, "version 3 of kv-v2:secret/app/db is not deleted", true},
		{"destroy not applied", "destroy", func(f *fakeVault) { f.ignoreDeletes = true }, true, "version 3 of kv-v2:secret/app/db is not", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4, map[string]any{"password": "p"}, nil, map[string]string{OptionRetire: tc.retire})
			e.f.configure(tc.setup)
			st := prepared(3, "password")
			st.SetNote(noteNew, "4")
			err := e.rot.Retire(context.Background(), e.req, st)
			if err == nil || rotators.IsRetryable(err) != tc.wantRetryable {
				t.Fatalf("Retire = %v, want an error with retryable %v", err, tc.wantRetryable)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q lacks %q", err, tc.wantMsg)
			}
			evs, _, _ := e.f.snapshot()
			if got := hasEvent(evs, "PUT delete") || hasEvent(evs, "PUT destroy"); got != tc.wantDelete {
				t.Errorf("delete or destroy sent = %v, want %v (events %q)", got, tc.wantDelete, evs)
			}
			if _, ok := st.After["old_version"]; ok {
				t.Errorf("After = %v after a failed retire", st.After)
			}
		})
	}
}

func TestRetireBadOption(t *testing.T) {
	e := newEnv(t, 4, map[string]any{"password": "p"}, nil, map[string]string{OptionRetire: "shred"})
	st := prepared(3, "password")
	st.SetNote(noteNew, "4")
	err := e.rot.Retire(context.Background(), e.req, st)
	if err == nil || rotators.IsRetryable(err) {
		t.Fatalf("Retire = %v, want a permanent error", err)
	}
	if _, _, writes := e.f.snapshot(); writes != 0 || e.f.get(3).destroyed {
		t.Errorf("%d writes for an unknown retire option", writes)
	}
}

func TestRetirePrunedVersion(t *testing.T) {
	for _, mode := range []string{"delete", "destroy"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 4, map[string]any{"password": "p"}, nil, map[string]string{OptionRetire: mode})
			e.f.remove(3)
			st := prepared(3, "password")
			st.SetNote(noteNew, "4")
			if err := e.rot.Retire(context.Background(), e.req, st); err != nil {
				t.Fatalf("Retire of a pruned version: %v", err)
			}
		})
	}
}

func TestPromoteDoesNothing(t *testing.T) {
	e := newEnv(t, 4, map[string]any{"password": "p"}, nil, nil)
	st := prepared(3, "password")
	if err := e.rot.Promote(context.Background(), e.req, st); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := e.f.snapshot(); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
}

func TestDriveEndToEnd(t *testing.T) {
	const overlap = time.Hour
	e := newEnv(t, 3, map[string]any{"username": "app", "password": "old-pass"}, []string{"password"}, map[string]string{OptionRetire: "delete"})
	clk := clock.NewFake(time.Now().UTC()) // shared by the fake Vault and the request
	e.f.configure(func(f *fakeVault) { f.now = clk.Now })
	e.req.Now = clk.Now
	st := &rotators.State{}
	ctx := context.Background()

	out, err := rotators.Drive(ctx, e.rot, e.req, st, overlap)
	if err != nil {
		t.Fatalf("Drive: %v", err)
	}
	if want := (rotators.Outcome{Completed: true, RetirePending: true}); out != want {
		t.Errorf("outcome = %+v, want %+v", out, want)
	}
	cur, data := e.f.currentVersion()
	if cur != 4 || data["username"] != "app" || data["password"] != "generated-1" {
		t.Errorf("current version %d holds %v, want version 4 with a new password", cur, data)
	}
	if st.Done != rotators.StepPromote || !st.Verified || !st.RetireAt.Equal(clk.Now().Add(overlap)) {
		t.Errorf("state = %+v, want promote done, verified, retire due in an hour", st)
	}
	if want := (events.Fingerprint{"version": "3", "fields": "password"}); !reflect.DeepEqual(st.Before, want) {
		t.Errorf("Before = %v, want %v", st.Before, want)
	}
	if st.After["version"] != "4" {
		t.Errorf("After = %v, want version 4", st.After)
	}
	if !e.f.get(3).deleted.IsZero() {
		t.Error("the old version was deleted before the overlap ended")
	}

	clk.Advance(overlap / 2)
	if out, err = rotators.Drive(ctx, e.rot, e.req, st, overlap); err != nil || !out.RetirePending {
		t.Fatalf("Drive during the overlap = %+v, %v; want retire pending", out, err)
	}
	if !e.f.get(3).deleted.IsZero() {
		t.Error("the old version was deleted during the overlap")
	}

	clk.Advance(overlap/2 + time.Second)
	out, err = rotators.Drive(ctx, e.rot, e.req, st, overlap)
	if err != nil {
		t.Fatalf("Drive after the overlap: %v", err)
	}
	if want := (rotators.Outcome{Completed: true, Retired: true, Resumed: true}); out != want {
		t.Errorf("outcome = %+v, want %+v", out, want)
	}
	if e.f.get(3).deleted.IsZero() {
		t.Error("the old version was not deleted")
	}
	if st.After["old_version"] != "deleted" || st.Done != rotators.StepRetire || !st.RetiredAt.Equal(clk.Now()) {
		t.Errorf("state = %+v", st)
	}
	evs, _, writes := e.f.snapshot()
	if writes != 2 {
		t.Errorf("%d writes, want the new version and the delete (events %q)", writes, evs)
	}
	if e.gen.calls != 1 {
		t.Errorf("%d values generated, want 1", e.gen.calls)
	}
	// The intent to write was saved before the write.
	var intent, put int
	for i, ev := range evs {
		if strings.HasSuffix(ev, " writing") && intent == 0 {
			intent = i + 1
		}
		if strings.HasPrefix(ev, "PUT") {
			put = i + 1
		}
	}
	if intent == 0 || put == 0 || intent > put {
		t.Errorf("events %q: want the writing save before the PUT", evs)
	}
}

func TestDriveEndToEndResumesAfterLostWrite(t *testing.T) {
	e := newEnv(t, 3, map[string]any{"password": "old-pass"}, nil, nil)
	e.f.configure(func(f *fakeVault) { f.putLost = true })
	st := &rotators.State{}
	ctx := context.Background()
	if _, err := rotators.Drive(ctx, e.rot, e.req, st, 0); err == nil || !rotators.IsRetryable(err) {
		t.Fatalf("Drive = %v, want a retryable write error", err)
	}
	// A dropped connection is an outage of Vault, not a failure of the step: nothing counted.
	if st.Failures != 0 || st.Started != rotators.StepApply {
		t.Errorf("state = %+v, want apply started and no failure counted", st)
	}
	e.f.configure(func(f *fakeVault) { f.putLost = false })
	// Resume from the journal's copy, as a restarted agent would.
	saved := e.j.saved[len(e.j.saved)-1]
	out, err := rotators.Drive(ctx, e.rot, e.req, &saved, 0)
	if err != nil {
		t.Fatalf("resumed Drive: %v", err)
	}
	if !out.Resumed || !out.Retired {
		t.Errorf("outcome = %+v, want resumed and retired", out)
	}
	if _, _, writes := e.f.snapshot(); writes != 1 {
		t.Errorf("%d writes, want 1: the lost write must be adopted, not repeated", writes)
	}
	if cur, _ := e.f.currentVersion(); cur != 4 || saved.After["version"] != "4" || !saved.Verified {
		t.Errorf("current version %d, state %+v; want version 4 adopted and verified", cur, saved)
	}
}

func TestDriveEndToEndNeedsReconcileOnForeignWrite(t *testing.T) {
	e := newEnv(t, 3, map[string]any{"password": "old-pass"}, nil, nil)
	// Another client writes just after prepare.
	e.j.hook = func(st *rotators.State) {
		if st.Done == rotators.StepPrepare && st.Started == rotators.StepApply {
			e.f.externalWrite(map[string]any{"password": "theirs"})
			e.j.hook = nil
		}
	}
	st := &rotators.State{}
	_, err := rotators.Drive(context.Background(), e.rot, e.req, st, 0)
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
		t.Fatalf("Drive = %v, want a permanent 'changed outside the agent' error", err)
	}
	if cur, data := e.f.currentVersion(); cur != 4 || data["password"] != "theirs" {
		t.Errorf("current version %d holds %v; want the other writer's version", cur, data)
	}
}
