package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lockBucket starts a real in-process JetStream server and returns a KV bucket for locks.
func lockBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	js, _ := embeddedJetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "LOCKS"})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Two workers never hold one credential's lock at once; a release hands it on.
func TestLockSerialisesWorkers(t *testing.T) {
	kv := lockBucket(t)
	ctx := context.Background()
	a, b := newLocks(kv, "agent", time.Minute), newLocks(kv, "agent", time.Minute)
	_, releaseA, err := a.acquire(ctx, "kv:secret/app", "CHG1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.acquire(ctx, "kv:secret/app", "CHG2"); !errors.Is(err, errLocked) {
		t.Fatalf("second worker got %v, want errLocked", err)
	}
	releaseA()
	heldB, releaseB, err := b.acquire(ctx, "kv:secret/app", "CHG2")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	defer releaseB()
	if heldB.Err() != nil {
		t.Errorf("a fresh lock's context has already ended: %v", context.Cause(heldB))
	}
}

// A holder whose lock is taken over (its record changed under it) is told: its work context
// ends with errLockLost, so it stops before its next step.
func TestLockLossEndsTheHoldersWork(t *testing.T) {
	kv := lockBucket(t)
	ctx := context.Background()
	l := newLocks(kv, "agent", 300*time.Millisecond)
	held, release, err := l.acquire(ctx, "kv:secret/app", "CHG1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// Another worker that saw the lock expired takes it over.
	if _, err := kv.Put(ctx, lockKey("kv:secret/app"), []byte(`{"owner":"other","change_id":"CHG2"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder was not told it lost the lock")
	}
	if cause := context.Cause(held); !errors.Is(cause, errLockLost) {
		t.Errorf("cause = %v, want errLockLost", cause)
	}
	release()
	if entry, err := kv.Get(ctx, lockKey("kv:secret/app")); err != nil || string(entry.Value()) != `{"owner":"other","change_id":"CHG2"}` {
		t.Errorf("the stale holder's release touched the new holder's lock: %v %s", err, entry.Value())
	}
}
