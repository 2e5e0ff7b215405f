package identity

import (
	"slices"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/rotators/approle"
)

// wrappedRef asks for a secret id delivered response-wrapped.
func wrappedRef() map[string]string {
	return map[string]string{approle.OptionWrapTTL: "10m"}
}

// unwrapDelivered unwraps the wrapping token of the current deliver_to version as the consumer
// would and returns the secret id and its accessor.
func (f *appRoleFixture) unwrapDelivered(t *testing.T) (secretID, accessor string) {
	t.Helper()
	cur := f.delivered(t)
	wrapped, _ := cur.Data["wrapped_secret_id"].(string)
	if wrapped == "" || cur.Data["secret_id"] != nil {
		t.Fatalf("deliver_to holds %v, want a wrapped secret id and no plain one", keys(cur.Data))
	}
	s, err := clientWith(t, f.v, "").Logical().Unwrap(wrapped)
	if err != nil {
		t.Fatalf("consumer unwrap: %v", err)
	}
	return s.Data["secret_id"].(string), s.Data["secret_id_accessor"].(string)
}

// A wrapped delivery interrupted right after Vault generated the secret id, by a process that
// died with the wrapping token in memory: the restarted rotation destroys that secret id, which
// nobody can unwrap, and delivers one fresh wrapped secret id; the consumer unwraps it and logs
// in.
func TestAppRoleWrappedResumeDestroysTheLostSecretID(t *testing.T) {
	f := newAppRoleFixture(t)
	client := agentClient(t, f.v, agentPolicy)
	r := newRun(t, approle.New(client), "CHG1008", appRoleRef(wrappedRef()))
	r.journalDownFrom("new_accessor")
	_, err := r.drive(time.Hour)
	wantRetryableSave(t, err)
	lost := without(f.accessors(t), f.oldAcc)
	if lost == "" || f.delivered(t).VersionMetadata.Version != 1 {
		t.Fatalf("want a generated, undelivered secret id; accessors %v", f.accessors(t))
	}

	r.failSave = nil
	r.resumeFromJournal()
	r.rot = approle.New(client)
	if out := r.mustDrive(time.Hour); !out.Completed || !out.Resumed {
		t.Fatalf("outcome %+v", out)
	}
	if v := f.delivered(t).VersionMetadata.Version; v != 2 {
		t.Errorf("deliver_to at version %d, want 2 (one delivery)", v)
	}
	newSID, newAcc := f.unwrapDelivered(t)
	got := f.accessors(t)
	if slices.Contains(got, lost) || !slices.Equal(got, sortedOf(f.oldAcc, newAcc)) {
		t.Errorf("role has secret ids %v, want the old one and the delivered one, not the lost %s", got, lost)
	}
	if !f.login(t, newSID) {
		t.Error("the unwrapped secret id does not log in")
	}
	if r.st.After["delivery"] != "wrapped" || r.st.After["verified_by"] != "wrapping-lookup" {
		t.Errorf("after = %v", r.st.After)
	}
	r.assertNoLeak(map[string]string{"old secret id": f.oldSID, "new secret id": newSID})
}

// Verify catches a wrapped delivery whose secret id no longer exists (destroyed behind the
// agent's back before the consumer unwrapped it): the fresh round delivers a new wrapping token,
// verified by its lookup, whose secret id logs in; retire destroys the original old secret id.
func TestAppRoleWrappedVerifyCatchesDestroyedSecretID(t *testing.T) {
	f := newAppRoleFixture(t)
	var sabotaged string
	r := newRun(t, f.destroyBeforeFirstVerify(t, &sabotaged), "CHG1009", appRoleRef(wrappedRef()))
	_, err := r.drive(time.Hour)
	wantRetryable(t, err, "verification failed", sabotaged, "no longer exists")
	out, err := r.driveUntilCompleted(time.Hour)
	if !out.Completed || err != nil || r.st.Rounds != 1 {
		t.Fatalf("outcome %+v rounds %d err %v, want completed in a fresh round", out, r.st.Rounds, err)
	}
	if v := f.delivered(t).VersionMetadata.Version; v != 3 {
		t.Errorf("deliver_to at version %d, want 3 (one delivery per round)", v)
	}
	if r.st.After["verified_by"] != "wrapping-lookup" {
		t.Errorf("after = %v", r.st.After)
	}
	newSID, newAcc := f.unwrapDelivered(t)
	if newAcc == sabotaged || !f.login(t, newSID) {
		t.Fatal("the fresh round's wrapped secret id was not delivered or does not log in")
	}
	if out := r.driveAfterOverlap(); !out.Retired {
		t.Fatalf("outcome %+v", out)
	}
	if got := f.accessors(t); !slices.Equal(got, []string{newAcc}) || f.login(t, f.oldSID) {
		t.Errorf("role has secret ids %v after retire, want only %s, and the old one refused", got, newAcc)
	}
	r.assertNoLeak(map[string]string{"old secret id": f.oldSID, "new secret id": newSID})
}
