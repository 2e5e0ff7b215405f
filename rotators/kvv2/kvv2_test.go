package kvv2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/rotation-agent/rotation-agent/events"
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
// records every request.
type fakeVault struct {
	t     *testing.T
	mount string
	path  string

	mu sync.Mutex
	// current is the current version number; created holds each version's creation time.
	current int
	created map[int]time.Time
	data    map[string]any
	// failMetadata, failData and failPut answer those requests with the status when non-zero.
	failMetadata, failData, failPut int
	// events is the order of requests and Record calls, as "GET metadata", "PUT data", "record writing".
	events   []string
	requests int
	putBody  map[string]any
}

func newFakeVault(t *testing.T, current int, data map[string]any) (*fakeVault, *vault.Client) {
	t.Helper()
	f := &fakeVault{t: t, mount: "secret", path: "app/db", current: current, data: data, created: map[int]time.Time{}}
	for v := 1; v <= current; v++ {
		f.created[v] = time.Now().Add(-time.Duration(current-v+1) * time.Hour).UTC()
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	conf := vault.DefaultConfig()
	if conf.Error != nil {
		t.Fatal(conf.Error)
	}
	conf.Address = srv.URL
	conf.MaxRetries = 0
	client, err := vault.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("test-token")
	return f, client
}

func (f *fakeVault) note(event string) {
	f.mu.Lock()
	f.events = append(f.events, event)
	f.mu.Unlock()
}

func (f *fakeVault) snapshot() (events []string, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...), f.requests
}

// lastPut returns the body of the last write request.
func (f *fakeVault) lastPut() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putBody
}

// currentVersion returns the current version and when it was created.
func (f *fakeVault) currentVersion() (int, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current, f.created[f.current]
}

func (f *fakeVault) setCreated(version int, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created[version] = at
}

func (f *fakeVault) deleteVersion(version int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.created, version)
}

func (f *fakeVault) setFailures(metadata, data, put int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failMetadata, f.failData, f.failPut = metadata, data, put
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func vaultError(w http.ResponseWriter, status int) {
	writeJSON(w, status, map[string]any{"errors": []string{fmt.Sprintf("fake vault says %d", status)}})
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (f *fakeVault) versionMeta(v int) map[string]any {
	return map[string]any{"created_time": rfc3339(f.created[v]), "custom_metadata": nil, "deletion_time": "", "destroyed": false, "version": v}
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.Header.Get("X-Vault-Token") != "test-token" {
		f.t.Errorf("%s %s without the client token", r.Method, r.URL.Path)
	}
	metaPath := "/v1/" + f.mount + "/metadata/" + f.path
	dataPath := "/v1/" + f.mount + "/data/" + f.path
	switch {
	case r.Method == http.MethodGet && r.URL.Path == metaPath:
		f.events = append(f.events, "GET metadata")
		if f.failMetadata != 0 {
			vaultError(w, f.failMetadata)
			return
		}
		versions := map[string]any{}
		for v := range f.created {
			m := f.versionMeta(v)
			delete(m, "version") // Vault keys versions by number and does not repeat it
			delete(m, "custom_metadata")
			versions[strconv.Itoa(v)] = m
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"request_id": "r1", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": map[string]any{
				"cas_required": false, "created_time": rfc3339(f.created[1]), "current_version": f.current,
				"custom_metadata": nil, "delete_version_after": "0s", "max_versions": 0, "oldest_version": 0,
				"updated_time": rfc3339(f.created[f.current]), "versions": versions,
			},
		})
	case r.Method == http.MethodGet && r.URL.Path == dataPath:
		f.events = append(f.events, "GET data?version="+r.URL.Query().Get("version"))
		if f.failData != 0 {
			vaultError(w, f.failData)
			return
		}
		v, _ := strconv.Atoi(r.URL.Query().Get("version"))
		if v == 0 {
			v = f.current
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"request_id": "r2", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": map[string]any{"data": f.data, "metadata": f.versionMeta(v)},
		})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == dataPath:
		f.events = append(f.events, "PUT data")
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			f.t.Errorf("PUT body is not JSON: %v", err)
		}
		f.putBody = body
		if f.failPut != 0 {
			vaultError(w, f.failPut)
			return
		}
		if opts, ok := body["options"].(map[string]any); ok {
			if cas, ok := opts["cas"].(float64); ok && int(cas) != f.current {
				vaultError(w, http.StatusBadRequest)
				return
			}
		}
		f.data, _ = body["data"].(map[string]any)
		f.current++
		f.created[f.current] = time.Now().UTC()
		writeJSON(w, http.StatusOK, map[string]any{
			"request_id": "r3", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": f.versionMeta(f.current),
		})
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		vaultError(w, http.StatusNotFound)
	}
}

// recorder is a Request.Record that notes each call in the fake's event log.
type recorder struct {
	f     *fakeVault
	mu    sync.Mutex
	calls []rotators.Checkpoint
	fail  map[string]error // step → error to return
}

func (r *recorder) record(_ context.Context, cp rotators.Checkpoint) error {
	r.mu.Lock()
	r.calls = append(r.calls, cp)
	err := r.fail[cp.Step]
	r.mu.Unlock()
	r.f.note("record " + cp.Step)
	return err
}

func request(f *fakeVault, rec *recorder, fields []string, cp rotators.Checkpoint) rotators.Request {
	return rotators.Request{
		ChangeID:   "CHG0001",
		Credential: events.CredentialRef{Kind: Kind, Mount: f.mount, Path: f.path, Fields: fields},
		Checkpoint: cp,
		Record:     rec.record,
		Generate:   func(field string) (string, error) { return "generated-" + field, nil },
	}
}

func TestKind(t *testing.T) {
	if got := New(nil).Kind(); got != "kv-v2" {
		t.Errorf("Kind() = %q, want kv-v2", got)
	}
}

func TestRotateFresh(t *testing.T) {
	f, client := newFakeVault(t, 3, map[string]any{"username": "app", "password": "old-pass", "host": "db1"})
	rec := &recorder{f: f}
	res, err := New(client).Rotate(context.Background(), request(f, rec, []string{"password"}, rotators.Checkpoint{}))
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	evs, _ := f.snapshot()
	wantEvents := []string{"GET metadata", "GET data?version=3", "record writing", "PUT data", "record written"}
	if !reflect.DeepEqual(evs, wantEvents) {
		t.Errorf("events = %q, want %q", evs, wantEvents)
	}
	put := f.lastPut()
	opts, _ := put["options"].(map[string]any)
	if cas, _ := opts["cas"].(float64); cas != 3 {
		t.Errorf("PUT options = %v, want cas 3 (the version read)", put["options"])
	}
	wantData := map[string]any{"username": "app", "password": "generated-password", "host": "db1"}
	if !reflect.DeepEqual(put["data"], wantData) {
		t.Errorf("PUT data = %v, want %v (other fields kept)", put["data"], wantData)
	}
	wantBefore := events.Fingerprint{"version": "3", "fields": "password"}
	if !reflect.DeepEqual(res.Before, wantBefore) {
		t.Errorf("Before = %v, want %v", res.Before, wantBefore)
	}
	cur, created := f.currentVersion()
	if cur != 4 || res.After["version"] != "4" || res.After["created_time"] != rfc3339(created) {
		t.Errorf("After = %v, want version 4 created at %s (Vault's current version: %d)", res.After, rfc3339(created), cur)
	}
	if res.Resumed {
		t.Error("a fresh rotation reported Resumed")
	}
	if len(rec.calls) != 2 || rec.calls[0].Step != StepWriting || rec.calls[1].Step != StepWritten {
		t.Fatalf("Record calls = %+v, want writing then written", rec.calls)
	}
	if !reflect.DeepEqual(rec.calls[0].Before, wantBefore) || rec.calls[0].At.IsZero() {
		t.Errorf("intent checkpoint = %+v, want Before %v and a time", rec.calls[0], wantBefore)
	}
	if !reflect.DeepEqual(rec.calls[1].After, res.After) {
		t.Errorf("done checkpoint After = %v, want %v", rec.calls[1].After, res.After)
	}
	for _, cp := range rec.calls {
		for _, fp := range []events.Fingerprint{cp.Before, cp.After} {
			for k, v := range fp {
				if strings.Contains(v, "generated-") || strings.Contains(v, "old-pass") {
					t.Errorf("checkpoint fingerprint %s=%q holds a secret value", k, v)
				}
			}
		}
	}
}

func TestRotateErrorClassification(t *testing.T) {
	tests := []struct {
		name          string
		failMetadata  int
		failData      int
		failPut       int
		data          map[string]any
		fields        []string
		wantRetryable bool
		wantPut       bool
		wantMsg       string
	}{
		{"metadata 503", 503, 0, 0, nil, nil, true, false, "read metadata of kv-v2:secret/app/db"},
		{"metadata 500", 500, 0, 0, nil, nil, true, false, "read metadata"},
		{"metadata 429", 429, 0, 0, nil, nil, true, false, "read metadata"},
		{"metadata 403", 403, 0, 0, nil, nil, false, false, "read metadata"},
		{"metadata 404 (no such secret)", 404, 0, 0, nil, nil, false, false, "read metadata"},
		{"data 503", 0, 503, 0, nil, nil, true, false, "read current version"},
		{"data 403", 0, 403, 0, nil, nil, false, false, "read current version"},
		{"multi-field without names", 0, 0, 0, map[string]any{"username": "u", "password": "p"}, nil, false, false, "name the fields"},
		{"named field missing", 0, 0, 0, map[string]any{"password": "p"}, []string{"pasword"}, false, false, "pasword"},
		{"put 503", 0, 0, 503, nil, nil, true, true, "write new version of kv-v2:secret/app/db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = map[string]any{"password": "old"}
			}
			f, client := newFakeVault(t, 2, data)
			f.setFailures(tc.failMetadata, tc.failData, tc.failPut)
			rec := &recorder{f: f}
			_, err := New(client).Rotate(context.Background(), request(f, rec, tc.fields, rotators.Checkpoint{}))
			if err == nil {
				t.Fatal("Rotate succeeded, want an error")
			}
			if got := rotators.IsRetryable(err); got != tc.wantRetryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q lacks %q", err, tc.wantMsg)
			}
			evs, _ := f.snapshot()
			put := false
			for _, e := range evs {
				put = put || e == "PUT data"
			}
			if put != tc.wantPut {
				t.Errorf("PUT sent = %v, want %v (events %q)", put, tc.wantPut, evs)
			}
		})
	}
}

func TestRotateRefusesOtherActions(t *testing.T) {
	for _, action := range []events.Action{events.ActionRevoke, events.ActionVerify, "delete"} {
		t.Run(string(action), func(t *testing.T) {
			f, client := newFakeVault(t, 1, map[string]any{"password": "p"})
			rec := &recorder{f: f}
			req := request(f, rec, nil, rotators.Checkpoint{})
			req.Credential.Action = action
			_, err := New(client).Rotate(context.Background(), req)
			if err == nil || rotators.IsRetryable(err) {
				t.Fatalf("Rotate with action %q = %v, want a permanent error", action, err)
			}
			if !strings.Contains(err.Error(), string(action)) {
				t.Errorf("error %q does not name the action", err)
			}
			if _, n := f.snapshot(); n != 0 || len(rec.calls) != 0 {
				t.Errorf("%d requests and %d records, want none", n, len(rec.calls))
			}
		})
	}
}

func TestRotateExplicitRotateAction(t *testing.T) {
	f, client := newFakeVault(t, 1, map[string]any{"password": "p"})
	req := request(f, &recorder{f: f}, nil, rotators.Checkpoint{})
	req.Credential.Action = events.ActionRotate
	if _, err := New(client).Rotate(context.Background(), req); err != nil {
		t.Fatalf("Rotate with action rotate: %v", err)
	}
}

func TestRotateResumeWritten(t *testing.T) {
	f, client := newFakeVault(t, 5, map[string]any{"password": "p"})
	rec := &recorder{f: f}
	cp := rotators.Checkpoint{
		Step:   StepWritten,
		Before: events.Fingerprint{"version": "4", "fields": "password"},
		After:  events.Fingerprint{"version": "5", "created_time": "2024-01-01T00:00:00Z"},
		At:     time.Now().Add(-time.Minute),
	}
	res, err := New(client).Rotate(context.Background(), request(f, rec, nil, cp))
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	want := rotators.Result{Before: cp.Before, After: cp.After, Resumed: true}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if _, n := f.snapshot(); n != 0 {
		t.Errorf("%d requests to Vault, want none", n)
	}
	if len(rec.calls) != 0 {
		t.Errorf("Record called %d times, want none", len(rec.calls))
	}
}

func TestRotateResumeWritingNeverWritten(t *testing.T) {
	f, client := newFakeVault(t, 4, map[string]any{"password": "p"})
	rec := &recorder{f: f}
	cp := rotators.Checkpoint{Step: StepWriting, Before: events.Fingerprint{"version": "4", "fields": "password"}, At: time.Now().Add(-time.Minute)}
	res, err := New(client).Rotate(context.Background(), request(f, rec, nil, cp))
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	evs, _ := f.snapshot()
	wantEvents := []string{"GET metadata", "GET metadata", "GET data?version=4", "record writing", "PUT data", "record written"}
	if !reflect.DeepEqual(evs, wantEvents) {
		t.Errorf("events = %q, want %q", evs, wantEvents)
	}
	put := f.lastPut()
	opts, _ := put["options"].(map[string]any)
	if cas, _ := opts["cas"].(float64); cas != 4 {
		t.Errorf("PUT options = %v, want cas 4 (the base version)", put["options"])
	}
	if res.After["version"] != "5" || res.Before["version"] != "4" {
		t.Errorf("result = %+v, want version 4 → 5", res)
	}
}

func TestRotateResumeWritingAlreadyWritten(t *testing.T) {
	tests := []struct {
		name        string
		createdAgo  time.Duration // how long before the intent (cp.At) version base+1 was created; negative: after
		wantResumed bool
	}{
		{"created after the intent", -2 * time.Second, true},
		{"created within clock skew before the intent", 3 * time.Second, true},
		{"created long before the intent", time.Hour, false},
		{"created just beyond clock skew", 6 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFakeVault(t, 5, map[string]any{"password": "p"})
			at := time.Now().Add(-time.Minute).UTC()
			f.setCreated(5, at.Add(-tc.createdAgo))
			rec := &recorder{f: f}
			before := events.Fingerprint{"version": "4", "fields": "password"}
			cp := rotators.Checkpoint{Step: StepWriting, Before: before, At: at}
			res, err := New(client).Rotate(context.Background(), request(f, rec, nil, cp))
			evs, _ := f.snapshot()
			for _, e := range evs {
				if e == "PUT data" {
					t.Errorf("a resumed rotation wrote again (events %q)", evs)
				}
			}
			if !tc.wantResumed {
				if err == nil || rotators.IsRetryable(err) {
					t.Fatalf("Rotate = %+v, %v; want a permanent error", res, err)
				}
				if !strings.Contains(err.Error(), "changed outside the agent") {
					t.Errorf("error %q does not say the secret changed outside the agent", err)
				}
				if len(rec.calls) != 0 {
					t.Errorf("Record called %d times, want none", len(rec.calls))
				}
				return
			}
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			_, created := f.currentVersion()
			wantAfter := events.Fingerprint{"version": "5", "created_time": rfc3339(created)}
			want := rotators.Result{Before: before, After: wantAfter, Resumed: true}
			if !reflect.DeepEqual(res, want) {
				t.Errorf("result = %+v, want %+v", res, want)
			}
			if !reflect.DeepEqual(evs, []string{"GET metadata", "record written"}) {
				t.Errorf("events = %q, want one metadata read and the done checkpoint", evs)
			}
			if len(rec.calls) != 1 || !reflect.DeepEqual(rec.calls[0].After, wantAfter) {
				t.Errorf("Record calls = %+v, want one written checkpoint with After %v", rec.calls, wantAfter)
			}
		})
	}
}

func TestRotateResumeWritingOtherVersionMissing(t *testing.T) {
	// The current version moved on, and the version the agent meant to write is not there.
	f, client := newFakeVault(t, 7, map[string]any{"password": "p"})
	f.deleteVersion(5)
	rec := &recorder{f: f}
	cp := rotators.Checkpoint{Step: StepWriting, Before: events.Fingerprint{"version": "4"}, At: time.Now()}
	_, err := New(client).Rotate(context.Background(), request(f, rec, nil, cp))
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "changed outside the agent") {
		t.Errorf("Rotate = %v, want a permanent 'changed outside the agent' error", err)
	}
}

func TestRotateBadCheckpoints(t *testing.T) {
	tests := []struct {
		name     string
		cp       rotators.Checkpoint
		wantMsg  string
		requests int
	}{
		{"unknown step", rotators.Checkpoint{Step: "exploded"}, `unknown checkpoint step "exploded"`, 0},
		{"writing without base", rotators.Checkpoint{Step: StepWriting}, "no base version", 0},
		{"writing with bad base", rotators.Checkpoint{Step: StepWriting, Before: events.Fingerprint{"version": "four"}}, "no base version", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFakeVault(t, 4, map[string]any{"password": "p"})
			_, err := New(client).Rotate(context.Background(), request(f, &recorder{f: f}, nil, tc.cp))
			if err == nil || rotators.IsRetryable(err) {
				t.Fatalf("Rotate = %v, want a permanent error", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q lacks %q", err, tc.wantMsg)
			}
			if _, n := f.snapshot(); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestRotateFailingRecordStopsBeforeWrite(t *testing.T) {
	recordErr := rotators.Retryable(errors.New("journal unavailable"))
	tests := []struct {
		name string
		cp   rotators.Checkpoint
	}{
		{"fresh", rotators.Checkpoint{}},
		{"resumed intent, never written", rotators.Checkpoint{Step: StepWriting, Before: events.Fingerprint{"version": "2"}, At: time.Now()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFakeVault(t, 2, map[string]any{"password": "p"})
			rec := &recorder{f: f, fail: map[string]error{StepWriting: recordErr}}
			_, err := New(client).Rotate(context.Background(), request(f, rec, nil, tc.cp))
			if !errors.Is(err, recordErr) {
				t.Fatalf("Rotate error = %v, want the Record error", err)
			}
			if !rotators.IsRetryable(err) {
				t.Error("the Record error lost its retryable mark")
			}
			evs, _ := f.snapshot()
			for _, e := range evs {
				if e == "PUT data" {
					t.Fatalf("wrote to Vault although the intent was not recorded (events %q)", evs)
				}
			}
			if cur, _ := f.currentVersion(); cur != 2 {
				t.Errorf("current version = %d, want 2 (unchanged)", cur)
			}
		})
	}
}

func TestRotateFailingDoneRecordAfterWrite(t *testing.T) {
	f, client := newFakeVault(t, 2, map[string]any{"password": "p"})
	recordErr := errors.New("journal unavailable")
	rec := &recorder{f: f, fail: map[string]error{StepWritten: recordErr}}
	_, err := New(client).Rotate(context.Background(), request(f, rec, nil, rotators.Checkpoint{}))
	if !errors.Is(err, recordErr) {
		t.Fatalf("Rotate error = %v, want the Record error", err)
	}
	// The write happened; a retry from the intent checkpoint must resume without writing again.
	intent := rec.calls[0]
	rec2 := &recorder{f: f}
	res, err := New(client).Rotate(context.Background(), request(f, rec2, nil, intent))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if cur, _ := f.currentVersion(); !res.Resumed || res.After["version"] != "3" || cur != 3 {
		t.Errorf("retry result %+v with current version %d; want resumed version 3 and no second write", res, cur)
	}
}

func TestRotateGenerateErrorIsPermanent(t *testing.T) {
	f, client := newFakeVault(t, 2, map[string]any{"password": "p"})
	rec := &recorder{f: f}
	req := request(f, rec, nil, rotators.Checkpoint{})
	req.Generate = func(string) (string, error) { return "", errors.New("bad policy") }
	_, err := New(client).Rotate(context.Background(), req)
	if err == nil || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "bad policy") {
		t.Fatalf("Rotate = %v, want a permanent generate error", err)
	}
	if len(rec.calls) != 0 {
		t.Errorf("Record called %d times before a value existed", len(rec.calls))
	}
	evs, _ := f.snapshot()
	for _, e := range evs {
		if e == "PUT data" {
			t.Fatalf("wrote to Vault without a value (events %q)", evs)
		}
	}
}
