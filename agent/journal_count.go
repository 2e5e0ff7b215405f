package agent

import (
	"context"
	"time"
)

// notFinal counts the journal records of credentials that are still in progress or wait to
// retire their old value.
func (j *journal) notFinal(ctx context.Context) (int, error) {
	entries, _, _, err := listRecords[struct {
		Final bool `json:"final"`
	}](ctx, j.kv, "cred.>")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Final {
			n++
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
