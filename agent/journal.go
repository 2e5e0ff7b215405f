package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators"
)

// errStaleJournal means another worker advanced a journal record first; this worker must stop
// acting on the credential and let the message be redelivered.
var errStaleJournal = errors.New("journal record was advanced by another worker")

// journalEntry is the durable state of one (change, credential) pair. It is written before
// every side effect, so a restarted agent resumes where the last one stopped.
type journalEntry struct {
	ChangeID   string               `json:"change_id"`
	EventID    string               `json:"event_id"`
	ChangeType events.ChangeType    `json:"change_type"`
	Credential string               `json:"credential"`
	Ref        events.CredentialRef `json:"ref"`
	State      rotators.State       `json:"state"`
	// RetirePending is set while the old credential waits for the end of its overlap window.
	RetirePending bool `json:"retire_pending,omitempty"`
	// Final is set once nothing more will be done; Evidence is then the last word.
	Final     bool                       `json:"final"`
	Evidence  *events.CredentialEvidence `json:"evidence,omitempty"`
	UpdatedAt time.Time                  `json:"updated_at"`
}

// journal keeps journal entries and the final evidence of each change in a JetStream key-value
// bucket. Every update is a compare-and-set on the revision last read, which fences a stale worker.
type journal struct {
	kv jetstream.KeyValue
}

// hashToken is a fixed-length key token for an arbitrary identifier; distinct identifiers
// never share a key, unlike with events.Token.
func hashToken(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func credentialKey(changeID, credential string) string {
	return "cred." + hashToken(changeID) + "." + hashToken(credential)
}

func evidenceKey(changeID string) string { return "evidence." + hashToken(changeID) }

// entry returns the journal entry of a credential and its revision; revision 0 means none.
func (j *journal) entry(ctx context.Context, changeID, credential string) (journalEntry, uint64, error) {
	var e journalEntry
	kve, err := j.kv.Get(ctx, credentialKey(changeID, credential))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return e, 0, nil
	}
	if err != nil {
		return e, 0, fmt.Errorf("read journal: %w", err)
	}
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return e, 0, fmt.Errorf("decode journal entry %s: %w", kve.Key(), err)
	}
	return e, kve.Revision(), nil
}

// put writes e if the stored revision is still rev (0: the entry must not exist yet) and returns
// the new revision.
func (j *journal) put(ctx context.Context, e journalEntry, rev uint64) (uint64, error) {
	e.UpdatedAt = time.Now().UTC()
	raw, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	key := credentialKey(e.ChangeID, e.Credential)
	var newRev uint64
	if rev == 0 {
		newRev, err = j.kv.Create(ctx, key, raw)
	} else {
		newRev, err = j.kv.Update(ctx, key, raw, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return 0, fmt.Errorf("%w: %s", errStaleJournal, key)
	}
	if err != nil {
		return 0, fmt.Errorf("write journal: %w", err)
	}
	return newRev, nil
}

// finalEvidence returns the evidence already published for a change, if any.
func (j *journal) finalEvidence(ctx context.Context, changeID string) (*events.Envelope[events.Evidence], error) {
	kve, err := j.kv.Get(ctx, evidenceKey(changeID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var env events.Envelope[events.Evidence]
	if err := json.Unmarshal(kve.Value(), &env); err != nil {
		return nil, fmt.Errorf("decode evidence of %s: %w", changeID, err)
	}
	return &env, nil
}

// storeEvidence records the evidence published for a change; the first record wins.
func (j *journal) storeEvidence(ctx context.Context, env events.Envelope[events.Evidence]) error {
	raw, err := json.Marshal(env)
	if err != nil {
		return err
	}
	_, err = j.kv.Create(ctx, evidenceKey(env.Data.ChangeID), raw)
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// retireIndex is the small record under retire.<...> that lets the sweeper find credentials
// whose old version waits for the end of its overlap window.
type retireIndex struct {
	ChangeID   string    `json:"change_id"`
	Credential string    `json:"credential"`
	RetireAt   time.Time `json:"retire_at"`
}

func retireKey(changeID, credential string) string {
	return "retire." + hashToken(changeID) + "." + hashToken(credential)
}

// scheduleRetire indexes an entry whose old credential is to be retired later.
func (j *journal) scheduleRetire(ctx context.Context, e journalEntry) error {
	raw, err := json.Marshal(retireIndex{ChangeID: e.ChangeID, Credential: e.Credential, RetireAt: e.State.RetireAt})
	if err != nil {
		return err
	}
	if _, err := j.kv.Put(ctx, retireKey(e.ChangeID, e.Credential), raw); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

// dueRetirements lists the indexed retirements due at now.
func (j *journal) dueRetirements(ctx context.Context, now time.Time) ([]retireIndex, error) {
	all, _, _, err := listRecords[retireIndex](ctx, j.kv, "retire.>")
	var due []retireIndex
	for _, idx := range all {
		if !idx.RetireAt.After(now) {
			due = append(due, idx)
		}
	}
	return due, err
}

// listRecords decodes every record of the journal bucket whose key matches filter.
func listRecords[T any](ctx context.Context, kv jetstream.KeyValue, filter string) ([]T, []uint64, []string, error) {
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list %s: %w", filter, err)
	}
	defer func() { _ = lister.Stop() }()
	var out []T
	var revs []uint64
	var keys []string
	for key := range lister.Keys() {
		kve, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return out, revs, keys, fmt.Errorf("read journal: %w", err)
		}
		var rec T
		if err := json.Unmarshal(kve.Value(), &rec); err != nil {
			return out, revs, keys, fmt.Errorf("decode %s: %w", key, err)
		}
		out, revs, keys = append(out, rec), append(revs, kve.Revision()), append(keys, key)
	}
	return out, revs, keys, nil
}

// retired removes a retirement from the index.
func (j *journal) retired(ctx context.Context, idx retireIndex) error {
	err := j.kv.Delete(ctx, retireKey(idx.ChangeID, idx.Credential))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}
