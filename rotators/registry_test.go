package rotators

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// nopRotator implements every step of Rotator but Kind as a no-op; embed it in fakes.
type nopRotator struct{}

func (nopRotator) Plan(context.Context, Request) (Plan, error)    { return Plan{}, nil }
func (nopRotator) Prepare(context.Context, Request, *State) error { return nil }
func (nopRotator) Apply(context.Context, Request, *State) error   { return nil }
func (nopRotator) Verify(context.Context, Request, *State) error  { return nil }
func (nopRotator) Promote(context.Context, Request, *State) error { return nil }
func (nopRotator) Retire(context.Context, Request, *State) error  { return nil }

// fakeRotator is a Rotator of a given kind that does nothing.
type fakeRotator struct {
	nopRotator
	kind string
}

func (f fakeRotator) Kind() string { return f.kind }

func fake(kind string) fakeRotator { return fakeRotator{kind: kind} }

func TestNewRegistry(t *testing.T) {
	tests := []struct {
		name      string
		rotators  []Rotator
		wantKinds []string
		wantErr   string
	}{
		{"empty", nil, []string{}, ""},
		{"one", []Rotator{fake("kv-v2")}, []string{"kv-v2"}, ""},
		{"sorted", []Rotator{fake("ldap"), fake("database"), fake("kv-v2")}, []string{"database", "kv-v2", "ldap"}, ""},
		{"duplicate", []Rotator{fake("kv-v2"), fake("ldap"), fake("kv-v2")}, nil, `"kv-v2" registered twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := NewRegistry(tc.rotators...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewRegistry error = %v, want one containing %q", err, tc.wantErr)
				}
				if reg != nil {
					t.Errorf("NewRegistry returned a registry with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRegistry: %v", err)
			}
			if got := reg.Kinds(); !reflect.DeepEqual(got, tc.wantKinds) {
				t.Errorf("Kinds() = %v, want %v", got, tc.wantKinds)
			}
		})
	}
}

func TestRegistryLookup(t *testing.T) {
	kv, ldap := fake("kv-v2"), fake("ldap")
	reg, err := NewRegistry(ldap, kv)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Rotator{kv, ldap} {
		got, err := reg.Lookup(want.Kind())
		if err != nil {
			t.Fatalf("Lookup(%q): %v", want.Kind(), err)
		}
		if got != want {
			t.Errorf("Lookup(%q) = %v, want %v", want.Kind(), got, want)
		}
	}

	for _, kind := range []string{"database", "", "KV-V2", "kv-v2 "} {
		rot, err := reg.Lookup(kind)
		if rot != nil || err == nil {
			t.Fatalf("Lookup(%q) = %v, %v; want an error", kind, rot, err)
		}
		if !errors.Is(err, ErrUnknownKind) {
			t.Errorf("Lookup(%q) error %v does not wrap ErrUnknownKind", kind, err)
		}
		if IsRetryable(err) {
			t.Errorf("Lookup(%q) error is retryable; an unknown kind must fail closed", kind)
		}
		msg := err.Error()
		for _, part := range []string{`"` + kind + `"`, "kv-v2", "ldap", "unknown credential kind"} {
			if !strings.Contains(msg, part) {
				t.Errorf("Lookup(%q) error %q lacks %q", kind, msg, part)
			}
		}
	}
}
