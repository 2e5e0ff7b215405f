package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// errLocked means another worker is rotating the same credential; the change is retried later.
var errLocked = errors.New("credential is locked by another worker")

// locks serialises work on one credential across replicas with records in the journal bucket.
// A lock carries its expiry; its holder renews it while working, and a holder that dies
// releases it by expiry. Every step is a compare-and-set, so two workers never both hold it.
type locks struct {
	kv    jetstream.KeyValue
	owner string
	ttl   time.Duration
}

func newLocks(kv jetstream.KeyValue, agentID string, ttl time.Duration) *locks {
	// One agent id may run several processes (replicas); each gets its own owner name.
	return &locks{kv: kv, owner: agentID + "/" + nuid.Next(), ttl: ttl}
}

type lockRecord struct {
	Owner    string    `json:"owner"`
	ChangeID string    `json:"change_id"`
	Expires  time.Time `json:"expires"`
}

func lockKey(credential string) string { return "lock." + hashToken(credential) }

// errLockLost ends the work of a holder whose lock expired or was taken over: another worker
// may now be rotating the credential, so the stale holder must stop before its next step.
var errLockLost = errors.New("credential lock lost")

// acquire takes the lock of a credential for a change, or returns an error wrapping
// errLocked naming the holder. The returned context ends, with errLockLost as its cause, if
// the lock is lost while held; work on the credential must use it. release stops the renewal
// and removes the lock.
func (l *locks) acquire(ctx context.Context, credential, changeID string) (held context.Context, release func(), err error) {
	key := lockKey(credential)
	rec := lockRecord{Owner: l.owner, ChangeID: changeID, Expires: time.Now().Add(l.ttl).UTC()}
	raw, _ := json.Marshal(rec)
	rev, err := l.kv.Create(ctx, key, raw)
	if errors.Is(err, jetstream.ErrKeyExists) {
		rev, err = l.takeOver(ctx, key, raw)
	}
	if err != nil {
		return nil, nil, err
	}
	held, lost := context.WithCancelCause(ctx)
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.renew(renewCtx, key, rec, &rev); err != nil {
			lost(err)
		}
	}()
	return held, func() {
		stop()
		<-done
		lost(context.Canceled)
		// Only our own revision is deleted; a lock taken over after expiry stays its new holder's.
		_ = l.kv.Delete(context.WithoutCancel(ctx), key, jetstream.LastRevision(rev))
	}, nil
}

// takeOver replaces an expired lock (its holder died); a live one is refused.
func (l *locks) takeOver(ctx context.Context, key string, raw []byte) (uint64, error) {
	entry, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return l.kv.Create(ctx, key, raw) // released meanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("read lock: %w", err)
	}
	var held lockRecord
	if err := json.Unmarshal(entry.Value(), &held); err == nil && time.Now().Before(held.Expires) {
		return 0, fmt.Errorf("%w: %s holds it for change %s until %s", errLocked, held.Owner, held.ChangeID, held.Expires.Format(time.RFC3339))
	}
	rev, err := l.kv.Update(ctx, key, raw, entry.Revision())
	if err != nil {
		return 0, fmt.Errorf("%w: another worker took the expired lock first", errLocked)
	}
	return rev, nil
}

// renew pushes the expiry forward every third of the TTL until ctx ends. It returns an error
// wrapping errLockLost when the lock is no longer the caller's: its record changed under it
// (taken over after expiry), or it could not be renewed before it expired.
func (l *locks) renew(ctx context.Context, key string, rec lockRecord, rev *uint64) error {
	ticker := time.NewTicker(l.ttl / 3)
	defer ticker.Stop()
	expires := rec.Expires
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if time.Now().After(expires) {
				// Frozen or cut off past the expiry: someone may have taken it over already.
				return fmt.Errorf("%w: not renewed before it expired at %s", errLockLost, expires.Format(time.RFC3339))
			}
			rec.Expires = time.Now().Add(l.ttl).UTC()
			raw, _ := json.Marshal(rec)
			newRev, err := l.kv.Update(ctx, key, raw, *rev)
			var apiErr *jetstream.APIError
			switch {
			case err == nil:
				*rev, expires = newRev, rec.Expires
			case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
				return fmt.Errorf("%w: its record was changed by another worker", errLockLost)
			}
		}
	}
}
