package persist

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// Persister stores events; its methods are the persist stage's sink
// handlers, one per input topic.
type Persister struct {
	Store *Store
	// Version is recorded for the persist stage's own stage run; may be
	// empty.
	Version string
}

// Document statuses.
const (
	StatusProcessing = "processing"
	StatusDone       = "done"
	StatusFailed     = "failed"
)

// docUpsert is what one event says about its document row. Nil pointers
// are facts the event does not carry.
type docUpsert struct {
	doc         events.Document
	meta        events.Meta
	receivedAt  time.Time
	status      string
	pageCount   *int32
	language    *string
	category    *string
	confidence  *float64
	needsReview *bool
	doneAt      *time.Time
}

// upsertDocumentSQL merges one event into the document row; see the
// package doc for the rules. $13 is the event's run.
const upsertDocumentSQL = `
INSERT INTO documents AS d (id, tenant, filename, content_type, size_bytes, sha256, blob, source,
	sender, subject, parent_id, status, run, page_count, language, category, confidence,
	needs_review, received_at, updated_at, done_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (id) DO UPDATE SET
	tenant       = COALESCE(NULLIF(EXCLUDED.tenant, ''), d.tenant),
	filename     = COALESCE(NULLIF(EXCLUDED.filename, ''), d.filename),
	content_type = COALESCE(NULLIF(EXCLUDED.content_type, ''), d.content_type),
	size_bytes   = CASE WHEN EXCLUDED.size_bytes <> 0 THEN EXCLUDED.size_bytes ELSE d.size_bytes END,
	sha256       = COALESCE(NULLIF(EXCLUDED.sha256, ''), d.sha256),
	blob         = COALESCE(NULLIF(EXCLUDED.blob, ''), d.blob),
	source       = COALESCE(NULLIF(EXCLUDED.source, ''), d.source),
	sender       = COALESCE(NULLIF(EXCLUDED.sender, ''), d.sender),
	subject      = COALESCE(NULLIF(EXCLUDED.subject, ''), d.subject),
	parent_id    = COALESCE(NULLIF(EXCLUDED.parent_id, ''), d.parent_id),
	run          = GREATEST(d.run, EXCLUDED.run),
	status = CASE
		WHEN EXCLUDED.run > d.run THEN EXCLUDED.status
		WHEN EXCLUDED.run < d.run THEN d.status
		WHEN 'done' IN (d.status, EXCLUDED.status) THEN 'done'
		WHEN 'failed' IN (d.status, EXCLUDED.status) THEN 'failed'
		ELSE 'processing' END,
	error = CASE WHEN EXCLUDED.run > d.run THEN NULL ELSE d.error END,
	page_count = CASE WHEN EXCLUDED.run > d.run THEN EXCLUDED.page_count
		WHEN EXCLUDED.run < d.run THEN d.page_count ELSE COALESCE(EXCLUDED.page_count, d.page_count) END,
	language = CASE WHEN EXCLUDED.run > d.run THEN EXCLUDED.language
		WHEN EXCLUDED.run < d.run THEN d.language ELSE COALESCE(EXCLUDED.language, d.language) END,
	category = CASE WHEN EXCLUDED.run > d.run THEN EXCLUDED.category
		WHEN EXCLUDED.run < d.run THEN d.category ELSE COALESCE(EXCLUDED.category, d.category) END,
	confidence = CASE WHEN EXCLUDED.run > d.run THEN EXCLUDED.confidence
		WHEN EXCLUDED.run < d.run THEN d.confidence ELSE COALESCE(EXCLUDED.confidence, d.confidence) END,
	needs_review = CASE WHEN EXCLUDED.run > d.run THEN EXCLUDED.needs_review
		WHEN EXCLUDED.run < d.run THEN d.needs_review ELSE COALESCE(EXCLUDED.needs_review, d.needs_review) END,
	done_at = CASE WHEN EXCLUDED.run > d.run THEN EXCLUDED.done_at
		WHEN EXCLUDED.run < d.run THEN d.done_at ELSE LEAST(d.done_at, EXCLUDED.done_at) END,
	received_at = LEAST(d.received_at, EXCLUDED.received_at),
	updated_at  = GREATEST(d.updated_at, EXCLUDED.updated_at)`

// upsertDocument merges u into the documents row and so locks it for the
// rest of the transaction.
func upsertDocument(ctx context.Context, tx pgx.Tx, u docUpsert) error {
	d := u.doc
	if d.ID == "" {
		return pipeline.Permanent(errors.New("persist: event without a document id"))
	}
	at := eventTime(u.meta)
	received := u.receivedAt
	if received.IsZero() {
		received = at
	}
	_, err := tx.Exec(ctx, upsertDocumentSQL,
		clean(d.ID), clean(d.Tenant), clean(d.Filename), clean(d.ContentType), d.SizeBytes,
		clean(d.SHA256), clean(d.Blob), clean(d.Source), clean(d.Sender), clean(d.Subject), clean(d.ParentID),
		u.status, u.meta.Run, u.pageCount, cleanPtr(u.language), cleanPtr(u.category), u.confidence,
		u.needsReview, received, at, u.doneAt)
	return classify("upsert document "+d.ID, err)
}

// eventTime is the event's production time. An event without one (a
// producer bug) gets the zero Unix time rather than the wall clock, which
// would make a replay write different rows.
func eventTime(m events.Meta) time.Time {
	if m.ProducedAt.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return m.ProducedAt
}

func cleanPtr(s *string) *string {
	if s == nil {
		return nil
	}
	c := clean(*s)
	return &c
}

func ptr[T any](v T) *T { return &v }

// recordStage upserts what a stage did in a run. Within a run done wins
// over failed, and the earliest time of the winning status is kept, so
// the result does not depend on delivery order.
func recordStage(ctx context.Context, tx pgx.Tx, docID string, m events.Meta, fallback, status string) error {
	stage := m.Stage
	if stage == "" {
		stage = fallback
	}
	_, err := tx.Exec(ctx, `
INSERT INTO stage_runs AS s (document, run, stage, status, finished_at, stage_version)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (document, run, stage) DO UPDATE SET
	status = CASE WHEN 'done' IN (s.status, EXCLUDED.status) THEN 'done' ELSE 'failed' END,
	finished_at = CASE
		WHEN EXCLUDED.status = s.status THEN LEAST(s.finished_at, EXCLUDED.finished_at)
		WHEN EXCLUDED.status = 'done' THEN EXCLUDED.finished_at
		ELSE s.finished_at END,
	stage_version = CASE
		WHEN EXCLUDED.status = 'done' AND s.status = 'failed' THEN EXCLUDED.stage_version
		WHEN EXCLUDED.status = s.status AND EXCLUDED.finished_at < s.finished_at THEN EXCLUDED.stage_version
		ELSE s.stage_version END`,
		docID, m.Run, clean(stage), status, eventTime(m), clean(m.StageVersion))
	return classify("record stage "+stage, err)
}

// handle runs fn in one transaction.
func (p *Persister) handle(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, p.Store.pool, fn)
	if err == nil {
		return nil
	}
	if pipeline.IsPermanent(err) {
		return err
	}
	return classify(op, err)
}

// Received stores a DocumentReceived.
func (p *Persister) Received(ctx context.Context, e events.DocumentReceived) error {
	return p.handle(ctx, "received", func(tx pgx.Tx) error {
		if err := upsertDocument(ctx, tx, docUpsert{doc: e.Document, meta: e.Meta, receivedAt: e.ReceivedAt, status: StatusProcessing}); err != nil {
			return err
		}
		return recordStage(ctx, tx, e.Document.ID, e.Meta, "ingest", StatusDone)
	})
}

// Extracted stores the pages of a TextExtracted.
func (p *Persister) Extracted(ctx context.Context, e events.TextExtracted) error {
	return p.handle(ctx, "text extracted", func(tx pgx.Tx) error {
		u := docUpsert{doc: e.Document, meta: e.Meta, status: StatusProcessing, pageCount: ptr(e.PageCount), language: ptr(e.Language)}
		if err := upsertDocument(ctx, tx, u); err != nil {
			return err
		}
		id, run := e.Document.ID, e.Meta.Run
		if _, err := tx.Exec(ctx, `DELETE FROM pages WHERE document = $1 AND run = $2`, id, run); err != nil {
			return classify("replace pages", err)
		}
		rows := make([][]any, len(e.Pages))
		for i, pg := range e.Pages {
			rows[i] = []any{id, run, pg.Number, clean(pg.Text), clean(string(pg.Method)), pg.Confidence, pg.NeedsOCR}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pages"},
			[]string{"document", "run", "number", "text", "method", "confidence", "needs_ocr"}, pgx.CopyFromRows(rows)); err != nil {
			return classify("insert pages", err)
		}
		return recordStage(ctx, tx, id, e.Meta, "extract", StatusDone)
	})
}

// Split stores the sections of a SectionsSplit, unless analyze's copy of
// the same run is already stored (it wins, whichever came first).
func (p *Persister) Split(ctx context.Context, e events.SectionsSplit) error {
	return p.handle(ctx, "sections split", func(tx pgx.Tx) error {
		u := docUpsert{doc: e.Document, meta: e.Meta, status: StatusProcessing, pageCount: ptr(e.PageCount), language: ptr(e.Language)}
		if err := upsertDocument(ctx, tx, u); err != nil {
			return err
		}
		var analyzed bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sections WHERE document = $1 AND run = $2 AND origin = 'analyze')`,
			e.Document.ID, e.Meta.Run).Scan(&analyzed); err != nil {
			return classify("look up sections", err)
		}
		if !analyzed {
			if err := replaceSections(ctx, tx, e.Document.ID, e.Meta.Run, "split", e.Sections); err != nil {
				return err
			}
		}
		return recordStage(ctx, tx, e.Document.ID, e.Meta, "split", StatusDone)
	})
}

func replaceSections(ctx context.Context, tx pgx.Tx, id string, run int32, origin string, ss []events.Section) error {
	if _, err := tx.Exec(ctx, `DELETE FROM sections WHERE document = $1 AND run = $2`, id, run); err != nil {
		return classify("replace sections", err)
	}
	rows := make([][]any, len(ss))
	for i, s := range ss {
		rows[i] = []any{id, run, s.Index, origin, clean(s.Title), clean(s.Text), s.PageStart, s.PageEnd}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"sections"},
		[]string{"document", "run", "index", "origin", "title", "text", "page_start", "page_end"}, pgx.CopyFromRows(rows))
	return classify("insert sections", err)
}

func replaceFeedback(ctx context.Context, tx pgx.Tx, id string, run int32, origin string, items []events.FeedbackItem) error {
	if _, err := tx.Exec(ctx, `DELETE FROM feedback_items WHERE document = $1 AND run = $2 AND origin = $3`, id, run, origin); err != nil {
		return classify("replace feedback", err)
	}
	rows := make([][]any, len(items))
	for i, f := range items {
		rows[i] = []any{id, run, origin, clean(f.ID), int32(i), f.SectionIndex, clean(f.Type), clean(string(f.Severity)),
			clean(f.Message), clean(f.Suggestion), clean(f.Quote)}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"feedback_items"},
		[]string{"document", "run", "origin", "id", "position", "section_index", "type", "severity", "message", "suggestion", "quote"},
		pgx.CopyFromRows(rows))
	return classify("insert feedback", err)
}

// Analyzed stores the sections and feedback of a SectionsAnalyzed.
func (p *Persister) Analyzed(ctx context.Context, e events.SectionsAnalyzed) error {
	return p.handle(ctx, "sections analyzed", func(tx pgx.Tx) error {
		u := docUpsert{doc: e.Document, meta: e.Meta, status: StatusProcessing, pageCount: ptr(e.PageCount), language: ptr(e.Language)}
		if err := upsertDocument(ctx, tx, u); err != nil {
			return err
		}
		if err := replaceSections(ctx, tx, e.Document.ID, e.Meta.Run, "analyze", e.Sections); err != nil {
			return err
		}
		if err := replaceFeedback(ctx, tx, e.Document.ID, e.Meta.Run, "analyze", e.Feedback); err != nil {
			return err
		}
		return recordStage(ctx, tx, e.Document.ID, e.Meta, "analyze", StatusDone)
	})
}

// Classified stores the category, fields and feedback of a
// DocumentClassified.
func (p *Persister) Classified(ctx context.Context, e events.DocumentClassified) error {
	return p.handle(ctx, "document classified", func(tx pgx.Tx) error {
		u := docUpsert{doc: e.Document, meta: e.Meta, status: StatusProcessing, pageCount: ptr(e.PageCount),
			category: ptr(e.Category), confidence: ptr(e.Confidence), needsReview: ptr(e.NeedsReview)}
		if err := upsertDocument(ctx, tx, u); err != nil {
			return err
		}
		id, run := e.Document.ID, e.Meta.Run
		if _, err := tx.Exec(ctx, `DELETE FROM fields WHERE document = $1 AND run = $2`, id, run); err != nil {
			return classify("replace fields", err)
		}
		rows := make([][]any, len(e.Fields))
		for i, f := range e.Fields {
			rows[i] = []any{id, run, int32(i), clean(f.Name), clean(f.Value), f.Page, f.SectionIndex, f.Start, f.End}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fields"},
			[]string{"document", "run", "position", "name", "value", "page", "section_index", "span_start", "span_end"},
			pgx.CopyFromRows(rows)); err != nil {
			return classify("insert fields", err)
		}
		if err := replaceFeedback(ctx, tx, id, run, "classify", e.Feedback); err != nil {
			return err
		}
		if err := upsertClassification(ctx, tx, e); err != nil {
			return err
		}
		return recordStage(ctx, tx, id, e.Meta, "classify", StatusDone)
	})
}

// Rendered stores the outputs of a FormRendered and marks the run done.
func (p *Persister) Rendered(ctx context.Context, e events.FormRendered) error {
	return p.handle(ctx, "form rendered", func(tx pgx.Tx) error {
		u := docUpsert{doc: e.Document, meta: e.Meta, status: StatusDone, category: ptr(e.Category), doneAt: ptr(eventTime(e.Meta))}
		if err := upsertDocument(ctx, tx, u); err != nil {
			return err
		}
		id, run := e.Document.ID, e.Meta.Run
		if _, err := tx.Exec(ctx, `DELETE FROM outputs WHERE document = $1 AND run = $2`, id, run); err != nil {
			return classify("replace outputs", err)
		}
		rows := make([][]any, len(e.Outputs))
		for i, o := range e.Outputs {
			rows[i] = []any{id, run, clean(o.Name), clean(o.Blob), clean(o.ContentType), o.SizeBytes, clean(o.SHA256)}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outputs"},
			[]string{"document", "run", "name", "blob", "content_type", "size_bytes", "sha256"}, pgx.CopyFromRows(rows)); err != nil {
			return classify("insert outputs", err)
		}
		if err := recordStage(ctx, tx, id, e.Meta, "render", StatusDone); err != nil {
			return err
		}
		// The persist stage itself is done with the run once its last
		// event is stored. The first time counts: a replay leaves the row
		// as it is.
		_, err := tx.Exec(ctx, `
INSERT INTO stage_runs (document, run, stage, status, finished_at, stage_version)
VALUES ($1, $2, 'persist', 'done', now(), $3)
ON CONFLICT (document, run, stage) DO UPDATE SET status = 'done'`, id, run, clean(p.Version))
		return classify("record stage persist", err)
	})
}

// DeadLettered records a dead letter and marks its document's run
// failed, creating a placeholder document row if none exists yet so the
// failure is visible.
func (p *Persister) DeadLettered(ctx context.Context, e events.DeadLetter) error {
	return p.handle(ctx, "dead letter", func(tx pgx.Tx) error {
		var docID *string
		if e.DocumentID != "" {
			id := clean(e.DocumentID)
			docID = &id
			u := docUpsert{doc: events.Document{ID: id, Tenant: e.Tenant}, meta: e.Meta, status: StatusFailed}
			if err := upsertDocument(ctx, tx, u); err != nil {
				return err
			}
		}
		dlID := fmt.Sprintf("%s/%d/%d", e.Topic, e.Partition, e.Offset)
		// The same record dead-lettered again (after a redrive) keeps the
		// newest attempt.
		_, err := tx.Exec(ctx, `
INSERT INTO dead_letters AS l (id, stage, document, tenant, run, error, permanent, attempts, topic, "partition", "offset", created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id, stage) DO UPDATE SET
	document = EXCLUDED.document, tenant = EXCLUDED.tenant, run = EXCLUDED.run, error = EXCLUDED.error,
	permanent = EXCLUDED.permanent, attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at
WHERE EXCLUDED.created_at > l.created_at`,
			clean(dlID), clean(e.Meta.Stage), docID, clean(e.Tenant), e.Meta.Run, clean(e.Error), e.Permanent, e.Attempts,
			clean(e.Topic), e.Partition, e.Offset, eventTime(e.Meta))
		if err != nil {
			return classify("insert dead letter", err)
		}
		if docID == nil {
			return nil
		}
		if err := recordStage(ctx, tx, *docID, e.Meta, "unknown", StatusFailed); err != nil {
			return err
		}
		// The document shows the newest error of its current run, chosen
		// from the stored dead letters so the result is order-free.
		_, err = tx.Exec(ctx, `
UPDATE documents d SET error = (
	SELECT l.error FROM dead_letters l WHERE l.document = d.id AND l.run = d.run
	ORDER BY l.created_at DESC, l.id DESC, l.stage DESC LIMIT 1)
WHERE d.id = $1`, *docID)
		return classify("set document error", err)
	})
}

// upsertClassification stores both classifiers' answers for the run;
// a redelivered event overwrites the row with the same values.
func upsertClassification(ctx context.Context, tx pgx.Tx, e events.DocumentClassified) error {
	var answered, cached, fallback *bool
	var in, out, latency *int64
	var cost *float64
	if u := e.LLM; u != nil {
		answered, cached, fallback = ptr(u.Sections > 0), ptr(u.CachedSections > 0), ptr(u.FallbackSections > 0)
		in, out, latency, cost = ptr(u.InputTokens), ptr(u.OutputTokens), ptr(u.LatencyMS), ptr(u.CostUSD)
	}
	_, err := tx.Exec(ctx, `
INSERT INTO classifications (document, run, provider, builtin_category, builtin_confidence, llm_category, llm_confidence,
	disagreement, llm_answered, llm_cached, llm_fallback, llm_input_tokens, llm_output_tokens, llm_cost_usd, llm_latency_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (document, run) DO UPDATE SET provider = EXCLUDED.provider,
	builtin_category = EXCLUDED.builtin_category, builtin_confidence = EXCLUDED.builtin_confidence,
	llm_category = EXCLUDED.llm_category, llm_confidence = EXCLUDED.llm_confidence, disagreement = EXCLUDED.disagreement,
	llm_answered = EXCLUDED.llm_answered, llm_cached = EXCLUDED.llm_cached, llm_fallback = EXCLUDED.llm_fallback,
	llm_input_tokens = EXCLUDED.llm_input_tokens, llm_output_tokens = EXCLUDED.llm_output_tokens,
	llm_cost_usd = EXCLUDED.llm_cost_usd, llm_latency_ms = EXCLUDED.llm_latency_ms`,
		e.Document.ID, e.Meta.Run, clean(e.Provider), clean(e.BuiltinCategory), e.BuiltinConfidence, clean(e.LLMCategory),
		e.LLMConfidence, e.Disagreement, answered, cached, fallback, in, out, cost, latency)
	return classify("store classification", err)
}
