package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/agent"
	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/kvv2"
	"github.com/rotation-agent/rotation-agent/test/harness"
	"github.com/rotation-agent/rotation-agent/test/harness/drive"
)

// rollback acts like a configuration tool fighting the agent: right after each apply it
// deletes the version the agent wrote and writes the old values back as a newer version, so
// consumers keep reading the old value.
type rollback struct {
	rotators.Rotator
	t       *testing.T
	v       *harness.Vault
	path    string
	old     map[string]any
	written []int
}

func (r *rollback) Apply(ctx context.Context, req rotators.Request, st *rotators.State) error {
	err := r.Rotator.Apply(ctx, req, st)
	if err != nil {
		return err
	}
	kv := r.v.Root.KVv2("secret")
	meta, merr := kv.GetMetadata(ctx, r.path)
	if merr != nil {
		r.t.Fatalf("read metadata: %v", merr)
	}
	r.written = append(r.written, meta.CurrentVersion)
	if derr := kv.DeleteVersions(ctx, r.path, []int{meta.CurrentVersion}); derr != nil {
		r.t.Fatalf("delete version %d: %v", meta.CurrentVersion, derr)
	}
	r.v.PutKV(r.t, r.path, r.old)
	return nil
}

// The verify step catches a KV v2 rotation consumers do not see (the agent's version is rolled
// back right after it is written): the driver retries, then starts over with a fresh value,
// different from the first, and finally gives up into needs_reconcile instead of reporting a
// rotation. Each round wrote exactly one version; no value reaches the saved state.
func TestKVVerifyCatchesRollbackAndTriesAFreshValue(t *testing.T) {
	ctx := context.Background()
	v := harness.StartVault(t)
	const old = "canary-kv-verify-rolled-back-0"
	v.PutKV(t, "verify/app", map[string]any{"password": old, "username": "app"})

	ref := kvRef("verify/app", "password")
	defaults := agent.Defaults().Password
	generate := rotators.Generator{Client: v.Root, Length: defaults.Length, Charset: defaults.Charset}.For(ref)
	var tried []string
	j, clk := &drive.Journal{}, drive.NewClock(time.Now().UTC())
	req := drive.Request("CHG-KV-VERIFY", ref, j, clk)
	req.Generate = func(ctx context.Context) (string, error) {
		value, err := generate(ctx)
		tried = append(tried, value)
		return value, err
	}
	rot := &rollback{Rotator: kvv2.New(v.Root), t: t, v: v, path: "verify/app", old: map[string]any{"password": old, "username": "app"}}

	var st rotators.State
	var err error
	var errs []error
	for attempt := 0; attempt < rotators.MaxStepFailures*rotators.MaxRounds+1; attempt++ {
		_, err = rotators.Drive(ctx, rot, req, &st, 0)
		errs = append(errs, err)
		if err == nil || !rotators.IsRetryable(err) {
			break
		}
		if !strings.Contains(err.Error(), "verify") || !strings.Contains(err.Error(), "empty or unchanged") {
			t.Fatalf("attempt %d failed outside verify: %v", attempt, err)
		}
	}
	if !errors.Is(err, rotators.ErrNeedsReconcile) || rotators.IsRetryable(err) || !strings.Contains(err.Error(), "empty or unchanged") {
		t.Fatalf("Drive = %v, want a permanent needs-reconcile error carrying the verify failure", err)
	}
	if st.Verified || st.Rounds != rotators.MaxRounds-1 {
		t.Errorf("verified %t rounds %d, want unverified after %d fresh start(s)", st.Verified, st.Rounds, rotators.MaxRounds-1)
	}

	// One value drawn and one version written per round: retries within a round neither drew
	// nor wrote again.
	if len(tried) != rotators.MaxRounds || len(rot.written) != rotators.MaxRounds {
		t.Fatalf("%d values drawn, versions %v written; want one of each per round (%d)", len(tried), rot.written, rotators.MaxRounds)
	}
	// The versions the agent wrote hold the values it drew: each new, and the second round's
	// differs from the first's.
	kv := v.Root.KVv2("secret")
	if err := kv.Undelete(ctx, "verify/app", rot.written); err != nil {
		t.Fatalf("undelete %v: %v", rot.written, err)
	}
	for i, version := range rot.written {
		got := v.KV(t, "verify/app", version).Data
		if got["password"] != tried[i] || got["username"] != "app" {
			t.Errorf("version %d does not hold round %d's value with the other field kept", version, i+1)
		}
		if tried[i] == old || len(tried[i]) != defaults.Length {
			t.Errorf("round %d drew the old value or a value of %d characters", i+1, len(tried[i]))
		}
	}
	if tried[0] == tried[1] {
		t.Error("the fresh round wrote the same value as the first round")
	}
	if st.Before["version"] != "1" {
		t.Errorf("before = %v, want the original version 1 kept through the fresh round", st.Before)
	}
	drive.AssertNoLeak(t, map[string]string{"old value": old, "round 1 value": tried[0], "round 2 value": tried[1]},
		map[string][]string{"journal": j.Texts(), "state": drive.StateTexts(&st), "errors": drive.ErrTexts(errs...)})
}
