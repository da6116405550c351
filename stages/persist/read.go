package persist

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline"
)

// DocumentView is a document as the HTTP API shows it: its latest run
// with everything the stages found.
type DocumentView struct {
	ID          string     `json:"id"`
	Tenant      string     `json:"tenant"`
	Filename    string     `json:"filename"`
	ContentType string     `json:"content_type"`
	SizeBytes   int64      `json:"size_bytes"`
	SHA256      string     `json:"sha256"`
	Blob        string     `json:"blob"`
	Source      string     `json:"source"`
	Sender      string     `json:"sender"`
	Subject     string     `json:"subject"`
	ParentID    string     `json:"parent_id"`
	Status      string     `json:"status"` // processing, done or failed
	Error       string     `json:"error"`  // newest dead letter of the run
	PageCount   int32      `json:"page_count"`
	Language    string     `json:"language"`
	Run         int32      `json:"run"`
	Runs        []int32    `json:"runs"` // every run stored, oldest first
	ReceivedAt  time.Time  `json:"received_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DoneAt      *time.Time `json:"done_at,omitempty"`
	// Stages maps a stage name to what it did in this run.
	Stages      map[string]StageView `json:"stages"`
	Category    string               `json:"category"`
	Confidence  float64              `json:"confidence"`
	NeedsReview bool                 `json:"needs_review"`
	// Fields maps a field name to its first occurrence; FieldList has
	// them all in the classifier's order.
	Fields    map[string]FieldView `json:"fields"`
	FieldList []FieldView          `json:"field_list"`
	Pages     []PageView           `json:"pages"`
	Sections  []SectionView        `json:"sections"`
	// Feedback holds the items not tied to any section of the run.
	Feedback []FeedbackView `json:"feedback"`
	Outputs  []OutputView   `json:"outputs"`
	// Classification says how the run's category was chosen; absent
	// until the classify stage has stored the run.
	Classification *ClassificationView `json:"classification,omitempty"`
	// Corrections are the newest reviewer correction per field (and
	// "category") of the document, whichever run they were made on,
	// oldest first.
	Corrections []CorrectionView `json:"corrections"`
}

// ClassificationView is the built-in model's answer and, with an LLM
// provider configured, the LLM's, and whether they disagreed.
type ClassificationView struct {
	Provider          string  `json:"provider"`
	BuiltinCategory   string  `json:"builtin_category"`
	BuiltinConfidence float64 `json:"builtin_confidence"`
	LLMCategory       string  `json:"llm_category"` // "" when no LLM answered
	LLMConfidence     float64 `json:"llm_confidence"`
	Disagreement      bool    `json:"disagreement"`
	// LLM is what the LLM call cost; absent when no LLM is configured.
	LLM *ClassificationLLMView `json:"llm,omitempty"`
}

// ClassificationLLMView is the usage of the classify stage's LLM call.
type ClassificationLLMView struct {
	Answered     bool    `json:"answered"` // the model's answer was valid (cache hits included)
	Cached       bool    `json:"cached"`   // served from the response cache, at no cost
	Fallback     bool    `json:"fallback"` // invalid output or provider down: the built-in model alone
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	LatencyMS    int64   `json:"latency_ms"`
}

// StageView is what one stage did in a run.
type StageView struct {
	Status  string    `json:"status"` // done or failed
	At      time.Time `json:"at"`     // when the stage produced its event
	Version string    `json:"version"`
}

type FieldView struct {
	Name         string `json:"name"`
	Value        string `json:"value"`
	Page         int32  `json:"page"`
	SectionIndex int32  `json:"section_index"`
	Start        int32  `json:"start"` // rune offsets in the section text, -1 if unknown
	End          int32  `json:"end"`
}

type PageView struct {
	Number     int32   `json:"number"`
	Method     string  `json:"method"`
	Confidence float64 `json:"confidence"`
	NeedsOCR   bool    `json:"needs_ocr"`
	Text       string  `json:"text"`
}

type SectionView struct {
	Index     int32          `json:"index"`
	Title     string         `json:"title"`
	Text      string         `json:"text"`
	PageStart int32          `json:"page_start"`
	PageEnd   int32          `json:"page_end"`
	Feedback  []FeedbackView `json:"feedback"`
}

type FeedbackView struct {
	ID           string `json:"id"`
	Source       string `json:"source"` // analyze or classify
	SectionIndex int32  `json:"section_index"`
	Type         string `json:"type"`
	Severity     string `json:"severity"`
	Message      string `json:"message"`
	Suggestion   string `json:"suggestion"`
	Quote        string `json:"quote"`
	// Decision is the newest reviewer decision on the item, if any.
	Decision *DecisionView `json:"decision,omitempty" db:"-"`
}

type OutputView struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	SizeBytes   int64  `json:"size_bytes"`
	SHA256      string `json:"sha256"`
	Blob        string `json:"blob"`
}

// DocumentSummary is one line of a document listing.
type DocumentSummary struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	SizeBytes   int64     `json:"size_bytes"`
	Source      string    `json:"source"`
	Sender      string    `json:"sender"`
	Subject     string    `json:"subject"`
	ParentID    string    `json:"parent_id"`
	Status      string    `json:"status"`
	Error       string    `json:"error"`
	PageCount   int32     `json:"page_count"`
	Language    string    `json:"language"`
	Category    string    `json:"category"`
	Confidence  float64   `json:"confidence"`
	NeedsReview bool      `json:"needs_review"`
	Run         int32     `json:"run"`
	ReceivedAt  time.Time `json:"received_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

const summaryColumns = `id, tenant, filename, content_type, size_bytes, source, sender, subject, parent_id,
	status, COALESCE(error, ''), COALESCE(page_count, 0), COALESCE(language, ''), COALESCE(category, ''),
	COALESCE(confidence, 0), COALESCE(needs_review, false), run, received_at, updated_at`

func (d *DocumentSummary) scanArgs() []any {
	return []any{&d.ID, &d.Tenant, &d.Filename, &d.ContentType, &d.SizeBytes, &d.Source, &d.Sender, &d.Subject,
		&d.ParentID, &d.Status, &d.Error, &d.PageCount, &d.Language, &d.Category, &d.Confidence, &d.NeedsReview,
		&d.Run, &d.ReceivedAt, &d.UpdatedAt}
}

// Document returns the view of one document. tenant "" matches any
// tenant; a document of another tenant is ErrNotFound, not a different
// error, so ids of other tenants cannot be probed.
func (s *Store) Document(ctx context.Context, tenant, id string) (DocumentView, error) {
	return s.DocumentRun(ctx, tenant, id, 0)
}

// DocumentRun returns the view of one run of a document: its pages,
// sections, feedback, fields, outputs and stages as that run left them
// (run 0: the latest). Runs are kept: a replay adds one, and the earlier
// ones stay readable. The document-wide figures (status, category) are
// the latest run's.
func (s *Store) DocumentRun(ctx context.Context, tenant, id string, run int32) (DocumentView, error) {
	var v DocumentView
	// One snapshot for all queries, so a view never mixes two moments.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var sum DocumentSummary
		args := append(sum.scanArgs(), &v.SHA256, &v.Blob, &v.DoneAt)
		err := tx.QueryRow(ctx, `SELECT `+summaryColumns+`, sha256, blob, done_at FROM documents
			WHERE id = $1 AND ($2 = '' OR tenant = $2)`, id, tenant).Scan(args...)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read document: %w", err)
		}
		v.ID, v.Tenant, v.Filename, v.ContentType, v.SizeBytes = sum.ID, sum.Tenant, sum.Filename, sum.ContentType, sum.SizeBytes
		v.Source, v.Sender, v.Subject, v.ParentID = sum.Source, sum.Sender, sum.Subject, sum.ParentID
		v.Status, v.Error, v.PageCount, v.Language = sum.Status, sum.Error, sum.PageCount, sum.Language
		v.Category, v.Confidence, v.NeedsReview = sum.Category, sum.Confidence, sum.NeedsReview
		v.Run, v.ReceivedAt, v.UpdatedAt = sum.Run, sum.ReceivedAt, sum.UpdatedAt
		rows, _ := tx.Query(ctx, `SELECT DISTINCT run FROM stage_runs WHERE document = $1 ORDER BY run`, id)
		runs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		v.Runs = append([]int32{}, runs...)
		if run != 0 {
			if !slices.Contains(runs, run) {
				return ErrNotFound
			}
			v.Run = run
		}
		if v.Corrections, err = latestCorrections(ctx, tx, id); err != nil {
			return err
		}
		return readRun(ctx, tx, &v)
	})
	if errors.Is(err, ErrNotFound) {
		return DocumentView{}, fmt.Errorf("persist: document %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return DocumentView{}, fmt.Errorf("persist: document %s: %w", id, err)
	}
	return v, nil
}

// readRun fills in the per-run parts of v for v.Run.
func readRun(ctx context.Context, tx pgx.Tx, v *DocumentView) error {
	id, run := v.ID, v.Run
	v.Stages = map[string]StageView{}
	rows, _ := tx.Query(ctx, `SELECT stage, status, finished_at, stage_version FROM stage_runs WHERE document = $1 AND run = $2`, id, run)
	var st StageView
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&name, &st.Status, &st.At, &st.Version}, func() error {
		v.Stages[name] = st
		return nil
	}); err != nil {
		return fmt.Errorf("read stages: %w", err)
	}

	rows, _ = tx.Query(ctx, `SELECT number, method, confidence, needs_ocr, text FROM pages
		WHERE document = $1 AND run = $2 ORDER BY number`, id, run)
	pages, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PageView])
	if err != nil {
		return fmt.Errorf("read pages: %w", err)
	}
	v.Pages = pages

	rows, _ = tx.Query(ctx, `SELECT index, title, text, page_start, page_end FROM sections
		WHERE document = $1 AND run = $2 ORDER BY index`, id, run)
	v.Sections = []SectionView{}
	var sec SectionView
	if _, err := pgx.ForEachRow(rows, []any{&sec.Index, &sec.Title, &sec.Text, &sec.PageStart, &sec.PageEnd}, func() error {
		sec.Feedback = []FeedbackView{}
		v.Sections = append(v.Sections, sec)
		return nil
	}); err != nil {
		return fmt.Errorf("read sections: %w", err)
	}

	// Classify may repeat analyze's items; an id is shown once, from
	// analyze (the origin that wrote it first in the pipeline).
	rows, _ = tx.Query(ctx, `SELECT DISTINCT ON (id) id, origin, section_index, type, severity, message, suggestion, quote
		FROM feedback_items WHERE document = $1 AND run = $2
		ORDER BY id, origin = 'analyze' DESC, position`, id, run)
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FeedbackView])
	if err != nil {
		return fmt.Errorf("read feedback: %w", err)
	}
	decisions, err := latestDecisions(ctx, tx, id)
	if err != nil {
		return err
	}
	for i := range items {
		items[i].Decision = decisions[items[i].ID]
	}
	v.Feedback = []FeedbackView{}
	bySection := make(map[int32]int, len(v.Sections))
	for i, s := range v.Sections {
		bySection[s.Index] = i
	}
	for _, f := range items {
		if i, ok := bySection[f.SectionIndex]; ok {
			v.Sections[i].Feedback = append(v.Sections[i].Feedback, f)
		} else {
			v.Feedback = append(v.Feedback, f)
		}
	}

	rows, _ = tx.Query(ctx, `SELECT name, value, page, section_index, span_start, span_end FROM fields
		WHERE document = $1 AND run = $2 ORDER BY position`, id, run)
	fields, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FieldView])
	if err != nil {
		return fmt.Errorf("read fields: %w", err)
	}
	v.FieldList = fields
	v.Fields = make(map[string]FieldView, len(fields))
	for _, f := range fields {
		if _, dup := v.Fields[f.Name]; !dup {
			v.Fields[f.Name] = f
		}
	}

	var c ClassificationView
	var answered, cached, fallback *bool
	var in, out, latency *int64
	var cost *float64
	err = tx.QueryRow(ctx, `SELECT provider, builtin_category, builtin_confidence, llm_category, llm_confidence, disagreement,
		llm_answered, llm_cached, llm_fallback, llm_input_tokens, llm_output_tokens, llm_cost_usd, llm_latency_ms
		FROM classifications WHERE document = $1 AND run = $2`, id, run).Scan(&c.Provider, &c.BuiltinCategory,
		&c.BuiltinConfidence, &c.LLMCategory, &c.LLMConfidence, &c.Disagreement, &answered, &cached, &fallback, &in, &out, &cost, &latency)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read classification: %w", err)
	default:
		if answered != nil {
			c.LLM = &ClassificationLLMView{Answered: *answered, Cached: deref(cached), Fallback: deref(fallback),
				InputTokens: deref(in), OutputTokens: deref(out), CostUSD: deref(cost), LatencyMS: deref(latency)}
		}
		v.Classification = &c
	}

	rows, _ = tx.Query(ctx, `SELECT name, content_type, size_bytes, sha256, blob FROM outputs
		WHERE document = $1 AND run = $2 ORDER BY name`, id, run)
	outputs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OutputView])
	if err != nil {
		return fmt.Errorf("read outputs: %w", err)
	}
	v.Outputs = outputs
	return nil
}

// ListQuery selects documents for a listing, newest first.
type ListQuery struct {
	Tenant   string    // "" = all tenants
	Status   string    // "" or processing, done, failed
	Category string    // "" = any
	ParentID string    // "" = any; else only the documents found in that one (its attachments)
	Since    time.Time // zero = no lower bound on received_at (inclusive)
	Until    time.Time // zero = no upper bound on received_at (exclusive: Since..Until is a half-open range)
	// Query searches filename, sender, subject and field values (of the
	// newest run that has fields, and reviewers' corrections) for a
	// case-insensitive substring of at least MinQueryRunes characters;
	// "" = no search.
	Query  string
	Limit  int    // page size; 0 = 50, at most 1000
	Cursor string // from a previous page; "" = first page
}

// MinQueryRunes is the shortest text search: the trigram index serves
// terms of three characters or more.
const MinQueryRunes = 3

const (
	defaultLimit = 50
	maxLimit     = 1000
)

// ListDocuments returns one page of documents newest first (by received
// time, then id) and the cursor of the next page, "" after the last.
// Paging is by keyset, not offset: it costs the same on page 1000 as on
// page 1 and neither skips nor repeats documents while new ones arrive.
// Bad queries (unknown status, foreign cursor) are pipeline.Permanent.
func (s *Store) ListDocuments(ctx context.Context, q ListQuery) ([]DocumentSummary, string, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultLimit
	case limit > maxLimit:
		limit = maxLimit
	}
	// Only the predicates in use go into the SQL, so each shape gets a
	// plan that uses the matching index.
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if q.Tenant != "" {
		add("tenant = $?", q.Tenant)
	}
	switch q.Status {
	case "":
	case StatusProcessing, StatusDone, StatusFailed:
		add("status = $?", q.Status)
	default:
		return nil, "", pipeline.Permanent(fmt.Errorf("persist: list: unknown status %q (want processing, done or failed)", q.Status))
	}
	if q.Category != "" {
		add("category = $?", q.Category)
	}
	if q.ParentID != "" {
		add("parent_id = $?", q.ParentID)
	}
	if !q.Since.IsZero() {
		add("received_at >= $?", q.Since)
	}
	if !q.Until.IsZero() {
		add("received_at < $?", q.Until)
	}
	if text := strings.TrimSpace(q.Query); text != "" {
		if utf8.RuneCountInString(text) < MinQueryRunes {
			// Trigrams cannot serve a shorter term: it would scan every
			// document of the tenant (0.5 s at 100,000).
			return nil, "", pipeline.Permanent(fmt.Errorf("persist: list: search %q: at least %d characters", text, MinQueryRunes))
		}
		// One LIKE on the trigger-maintained, lower-cased search_text,
		// which the trigram index serves (migration 013). PostgreSQL
		// lower-cases both sides, so they agree on every letter.
		add(`search_text LIKE lower($?) ESCAPE '\'`, "%"+likeEscaper.Replace(clean(text))+"%")
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", pipeline.Permanent(fmt.Errorf("persist: list: %w", err))
		}
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(received_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	sql := `SELECT ` + summaryColumns + ` FROM documents`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	sql += fmt.Sprintf(` ORDER BY received_at DESC, id DESC LIMIT $%d`, len(args))

	// Planned for these values every time (an unnamed statement, its
	// description cached): a cached generic plan, which PostgreSQL picks
	// after five runs of a prepared statement, cannot know how many rows
	// a search term or a date range selects, and reading every match of
	// a common term to sort them is many times slower than walking the
	// newest documents.
	rows, _ := s.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	var d DocumentSummary
	out := make([]DocumentSummary, 0, limit)
	if _, err := pgx.ForEachRow(rows, d.scanArgs(), func() error {
		out = append(out, d)
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("persist: list documents: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(last.ReceivedAt, last.ID)
	}
	return out, next, nil
}

// likeEscaper makes a user's text match literally inside a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// A cursor is the (received_at, id) of the last document of a page, in
// microseconds because that is PostgreSQL's timestamp precision.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + ":" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: %v", ErrInvalidCursor, err)
	}
	micros, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrInvalidCursor
	}
	return time.UnixMicro(n).UTC(), id, nil
}

// deref reads a nullable column the writer fills together with another.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
