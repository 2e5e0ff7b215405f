package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// notFinal counts the journal records of credentials that are still in progress or wait to
// retire their old value.
func (j *journal) notFinal(ctx context.Context) (int, error) {
	lister, err := j.kv.ListKeysFiltered(ctx, "cred.>")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list journal records: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	n := 0
	for key := range lister.Keys() {
		kve, err := j.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read journal: %w", err)
		}
		var e struct {
			Final bool `json:"final"`
		}
		if err := json.Unmarshal(kve.Value(), &e); err != nil || !e.Final {
			n++ // an unreadable record is not final either
		}
	}
	return n, nil
}

// countJournalLoop refreshes the journal_records_not_final and review gauges every interval
// until ctx ends.
func (p *pipeline) countJournalLoop(ctx context.Context, interval time.Duration) {
	for {
		n, err := p.journal.notFinal(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.log.WithError(err).Warn("count journal records failed")
		}
		p.metrics.journalPending(n, err)
		if p.reviews != nil {
			if open, overdue, err := p.reviews.counts(ctx); err == nil {
				p.metrics.SetReviews(open, overdue)
			} else if ctx.Err() == nil {
				p.log.WithError(err).Warn("count reviews failed")
			}
		}
		if !sleepCtx(ctx, interval) {
			return
		}
	}
}
