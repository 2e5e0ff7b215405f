package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/rotators"
	"github.com/rotation-agent/rotation-agent/rotators/kvv2"
	"github.com/rotation-agent/rotation-agent/test/harness"
)

// The verify step catches a KV v2 rotation that did not produce a new value (here the
// generator keeps returning the old one): the driver retries, starts over with a fresh value,
// and finally gives up into needs_reconcile instead of reporting a rotation.
func TestKVVerifyCatchesUnchangedValue(t *testing.T) {
	ctx := context.Background()
	v := harness.StartVault(t)
	const old = "canary-kv-verify-unchanged-0"
	v.PutKV(t, "verify/app", map[string]any{"password": old})

	rot := kvv2.New(v.Root)
	var saved []rotators.State
	req := rotators.Request{
		ChangeID:   "CHG-KV-VERIFY",
		Credential: kvRef("verify/app"),
		Now:        time.Now,
		Save: func(_ context.Context, st *rotators.State) error {
			saved = append(saved, *st)
			return nil
		},
		Generate: func(context.Context) (string, error) { return old, nil },
	}
	var st rotators.State
	var err error
	for attempt := 0; attempt < rotators.MaxStepFailures*rotators.MaxRounds+1; attempt++ {
		if _, err = rotators.Drive(ctx, rot, req, &st, 0); err == nil || !rotators.IsRetryable(err) {
			break
		}
		if !strings.Contains(err.Error(), "verify") {
			t.Fatalf("attempt %d failed outside verify: %v", attempt, err)
		}
	}
	if !errors.Is(err, rotators.ErrNeedsReconcile) || rotators.IsRetryable(err) {
		t.Fatalf("Drive = %v, want a permanent needs-reconcile error", err)
	}
	if st.Verified {
		t.Error("state says verified")
	}
	if st.Rounds != rotators.MaxRounds-1 {
		t.Errorf("rounds = %d, want %d fresh start(s) before giving up", st.Rounds, rotators.MaxRounds-1)
	}
	// Each round wrote one version and no more: the original, plus one per round.
	if got := v.KV(t, "verify/app", 0).VersionMetadata.Version; got != 1+rotators.MaxRounds {
		t.Errorf("secret at version %d, want %d", got, 1+rotators.MaxRounds)
	}
	for _, s := range saved {
		for k, val := range s.Data {
			if strings.Contains(val, old) {
				t.Errorf("saved state note %s holds the secret value", k)
			}
		}
	}
}
