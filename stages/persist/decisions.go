package persist

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline"
)

// DecisionView is a reviewer's decision on a feedback item.
type DecisionView struct {
	Action    string    `json:"action"` // accept or reject
	Comment   string    `json:"comment"`
	Actor     string    `json:"actor"`
	DecidedAt time.Time `json:"decided_at"`
}

// Decide records a reviewer's decision on a feedback item of a document
// of tenant (tenant "" = any). The item must exist in some run of the
// document; an unknown document or item is ErrNotFound, bad input is
// permanent. Decisions accumulate: the newest is the one shown.
func (s *Store) Decide(ctx context.Context, tenant, doc, item string, d DecisionView) (DecisionView, error) {
	if d.Action != "accept" && d.Action != "reject" {
		return DecisionView{}, pipeline.Permanent(fmt.Errorf("persist: decision %q: action must be accept or reject", d.Action))
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO feedback_decisions (document, item, action, comment, actor)
		SELECT d.id, f.id, $3, $4, $5
		FROM documents d JOIN feedback_items f ON f.document = d.id AND f.id = $2
		WHERE d.id = $1 AND ($6 = '' OR d.tenant = $6)
		LIMIT 1
		RETURNING decided_at`, doc, item, d.Action, clean(d.Comment), clean(d.Actor), tenant).Scan(&d.DecidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return DecisionView{}, fmt.Errorf("persist: feedback item %s of document %s: %w", item, doc, ErrNotFound)
	}
	if err != nil {
		return DecisionView{}, fmt.Errorf("persist: record decision: %w", err)
	}
	return d, nil
}

// latestDecisions returns the newest decision per feedback item of doc.
func latestDecisions(ctx context.Context, tx pgx.Tx, doc string) (map[string]*DecisionView, error) {
	rows, _ := tx.Query(ctx, `SELECT DISTINCT ON (item) item, action, comment, actor, decided_at
		FROM feedback_decisions WHERE document = $1 ORDER BY item, decided_at DESC`, doc)
	out := map[string]*DecisionView{}
	var item string
	var d DecisionView
	if _, err := pgx.ForEachRow(rows, []any{&item, &d.Action, &d.Comment, &d.Actor, &d.DecidedAt}, func() error {
		dd := d
		out[item] = &dd
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return out, nil
}
