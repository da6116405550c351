package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline"
)

// CategoryField is the Field of a correction of the document's category.
const CategoryField = "category"

// CorrectionView is a reviewer's correction of a document's category or
// of one of its fields.
type CorrectionView struct {
	Field    string    `json:"field"`    // "category" or a field name of the taxonomy
	Original string    `json:"original"` // the pipeline's value when corrected ("" when it found none)
	Value    string    `json:"value"`    // the reviewer's value
	Run      int32     `json:"run"`      // run the correction was made on
	Actor    string    `json:"actor"`
	At       time.Time `json:"corrected_at"`
}

// fieldName is what a field name may look like: the taxonomy's names
// are snake_case, and anything else (spaces, markup) is a client's bug.
var fieldName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,99}$`)

// Correct records a reviewer's correction of the category or a field of
// a document of tenant (tenant "" = any). Original and Run are taken
// from the document's latest run, whatever c says: the pipeline's value
// is what the reviewer saw and overruled. An unknown document (or one of
// another tenant) is ErrNotFound; an empty or malformed field name, or
// an empty category, is pipeline.Permanent. Corrections accumulate: the
// newest per field is the one shown, and a replay of the document keeps
// them.
func (s *Store) Correct(ctx context.Context, tenant, doc string, c CorrectionView) (CorrectionView, error) {
	if !fieldName.MatchString(c.Field) {
		return CorrectionView{}, pipeline.Permanent(fmt.Errorf("persist: correction: field %q must be %q or a field name", c.Field, CategoryField))
	}
	c.Value = clean(c.Value)
	if c.Field == CategoryField && c.Value == "" {
		return CorrectionView{}, pipeline.Permanent(errors.New("persist: correction: the category must not be empty"))
	}
	// The pipeline's field value is its first occurrence in the latest
	// run, the one DocumentView.Fields shows.
	err := s.pool.QueryRow(ctx, `INSERT INTO reviewer_corrections (document, run, field, original, value, actor)
		SELECT d.id, d.run, $3,
			CASE WHEN $3 = 'category' THEN COALESCE(d.category, '')
			ELSE COALESCE((SELECT f.value FROM fields f WHERE f.document = d.id AND f.run = d.run AND f.name = $3
				ORDER BY f.position LIMIT 1), '') END,
			$4, $5
		FROM documents d WHERE d.id = $1 AND ($2 = '' OR d.tenant = $2)
		RETURNING run, original, corrected_at`, doc, tenant, c.Field, c.Value, clean(c.Actor)).Scan(&c.Run, &c.Original, &c.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return CorrectionView{}, fmt.Errorf("persist: correct document %s: %w", doc, ErrNotFound)
	}
	if err != nil {
		return CorrectionView{}, classify("correct document "+doc, err)
	}
	c.Actor = clean(c.Actor)
	return c, nil
}

// latestCorrections returns the newest correction per field of doc,
// oldest first.
func latestCorrections(ctx context.Context, q pgx.Tx, doc string) ([]CorrectionView, error) {
	rows, _ := q.Query(ctx, `SELECT field, original, value, run, actor, corrected_at FROM (
			SELECT DISTINCT ON (field) * FROM reviewer_corrections WHERE document = $1
			ORDER BY field, corrected_at DESC, id DESC) latest
		ORDER BY corrected_at, id`, doc)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CorrectionView])
	if err != nil {
		return nil, fmt.Errorf("read corrections: %w", err)
	}
	return out, nil
}

// Chat message roles.
const (
	RoleQuestion = "question"
	RoleAnswer   = "answer"
)

// ChatCitation points an answer at the text it rests on.
type ChatCitation struct {
	Section int32  `json:"section"` // SectionView.Index
	Quote   string `json:"quote"`   // exact span of that section's text
}

// ChatMessage is one question about a document or its answer.
type ChatMessage struct {
	ID        int64          `json:"id"`
	Role      string         `json:"role"` // question or answer
	Text      string         `json:"text"`
	Citations []ChatCitation `json:"citations"`
	Grounding string         `json:"grounding"` // answers: llm or retrieval
	Provider  string         `json:"provider"`  // answers: rules, openai, bedrock
	Actor     string         `json:"actor"`     // questions: who asked
	At        time.Time      `json:"at"`
}

// AddChatMessage keeps a question or an answer with a document of
// tenant (tenant "" = any) and returns it with its ID and time. An
// unknown document is ErrNotFound; an unknown role or an empty text is
// pipeline.Permanent.
func (s *Store) AddChatMessage(ctx context.Context, tenant, doc string, m ChatMessage) (ChatMessage, error) {
	if m.Role != RoleQuestion && m.Role != RoleAnswer {
		return ChatMessage{}, pipeline.Permanent(fmt.Errorf("persist: chat message: role %q must be question or answer", m.Role))
	}
	m.Text = clean(m.Text)
	if m.Text == "" {
		return ChatMessage{}, pipeline.Permanent(errors.New("persist: chat message: empty text"))
	}
	// A copy: cleaning the quotes must not change the caller's slice.
	m.Citations = append([]ChatCitation{}, m.Citations...)
	for i := range m.Citations {
		m.Citations[i].Quote = clean(m.Citations[i].Quote)
	}
	cites, err := json.Marshal(m.Citations)
	if err != nil {
		return ChatMessage{}, fmt.Errorf("persist: chat message: %w", err)
	}
	m.Grounding, m.Provider, m.Actor = clean(m.Grounding), clean(m.Provider), clean(m.Actor)
	err = s.pool.QueryRow(ctx, `INSERT INTO chat_messages (document, role, text, citations, grounding, provider, actor)
		SELECT d.id, $3, $4, $5, $6, $7, $8 FROM documents d WHERE d.id = $1 AND ($2 = '' OR d.tenant = $2)
		RETURNING id, created_at`, doc, tenant, m.Role, m.Text, cites, m.Grounding, m.Provider, m.Actor).Scan(&m.ID, &m.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return ChatMessage{}, fmt.Errorf("persist: chat about document %s: %w", doc, ErrNotFound)
	}
	if err != nil {
		return ChatMessage{}, classify("add chat message to document "+doc, err)
	}
	return m, nil
}

// ChatHistory returns the questions and answers kept with a document of
// tenant (tenant "" = any), oldest first; an unknown document is
// ErrNotFound, a document without chat an empty slice.
func (s *Store) ChatHistory(ctx context.Context, tenant, doc string) ([]ChatMessage, error) {
	var out []ChatMessage
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM documents WHERE id = $1 AND ($2 = '' OR tenant = $2))`,
			doc, tenant).Scan(&found); err != nil {
			return fmt.Errorf("look up document: %w", err)
		}
		if !found {
			return ErrNotFound
		}
		rows, _ := tx.Query(ctx, `SELECT id, role, text, citations, grounding, provider, actor, created_at
			FROM chat_messages WHERE document = $1 ORDER BY id`, doc)
		var m ChatMessage
		out = []ChatMessage{}
		_, err := pgx.ForEachRow(rows, []any{&m.ID, &m.Role, &m.Text, &m.Citations, &m.Grounding, &m.Provider, &m.Actor, &m.At}, func() error {
			if m.Citations == nil {
				m.Citations = []ChatCitation{}
			}
			out = append(out, m)
			m.Citations = nil // the next row decodes into a fresh slice, not this message's
			return nil
		})
		if err != nil {
			return fmt.Errorf("read chat: %w", err)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("persist: chat of document %s: %w", doc, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("persist: chat of document %s: %w", doc, err)
	}
	return out, nil
}

// Summary returns one document's listing row, for live inbox updates.
// tenant "" matches any tenant; another tenant's document is ErrNotFound.
func (s *Store) Summary(ctx context.Context, tenant, id string) (DocumentSummary, error) {
	var d DocumentSummary
	err := s.pool.QueryRow(ctx, `SELECT `+summaryColumns+` FROM documents WHERE id = $1 AND ($2 = '' OR tenant = $2)`,
		id, tenant).Scan(d.scanArgs()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return DocumentSummary{}, fmt.Errorf("persist: document %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return DocumentSummary{}, fmt.Errorf("persist: document %s: %w", id, err)
	}
	return d, nil
}

// LabelledDocument is a document a reviewer corrected, as training data:
// its text as the classifier reads it, and its category and fields with
// the reviewer's values winning over the pipeline's.
type LabelledDocument struct {
	ID, Tenant, Text, Category string
	Fields                     map[string]string
}

// LabelledCorrections returns the documents of tenant (tenant "" = all)
// whose category or fields a reviewer corrected, for `prismflow train`.
// Text is the subject and the latest run's sections, titled, the way
// package classify builds the text it classifies. Category and Fields
// are the latest run's, overlaid with the newest correction of each.
// Documents are in id order, so a training run is reproducible.
func (s *Store) LabelledCorrections(ctx context.Context, tenant string) ([]LabelledDocument, error) {
	var out []LabelledDocument
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The format of classify's documentText: the subject, then
		// "\n\n" title "\n" text per section in order (the test of
		// `prismflow train --corrections` checks they agree).
		rows, _ := tx.Query(ctx, `SELECT d.id, d.tenant,
				d.subject || COALESCE((SELECT string_agg(E'\n\n' || s.title || E'\n' || s.text, '' ORDER BY s.index)
					FROM sections s WHERE s.document = d.id AND s.run = d.run), ''),
				COALESCE(d.category, '')
			FROM documents d
			WHERE EXISTS (SELECT 1 FROM reviewer_corrections c WHERE c.document = d.id) AND ($1 = '' OR d.tenant = $1)
			ORDER BY d.id`, tenant)
		var l LabelledDocument
		docs := map[string]int{}
		if _, err := pgx.ForEachRow(rows, []any{&l.ID, &l.Tenant, &l.Text, &l.Category}, func() error {
			l.Fields = map[string]string{}
			docs[l.ID] = len(out)
			out = append(out, l)
			return nil
		}); err != nil {
			return fmt.Errorf("read corrected documents: %w", err)
		}
		if len(out) == 0 {
			return nil
		}
		ids := make([]string, len(out))
		for i, d := range out {
			ids[i] = d.ID
		}
		// The pipeline's fields first (first occurrence per name, as
		// DocumentView.Fields), then the corrections over them.
		rows, _ = tx.Query(ctx, `SELECT DISTINCT ON (f.document, f.name) f.document, f.name, f.value
			FROM fields f JOIN documents d ON d.id = f.document AND d.run = f.run
			WHERE f.document = ANY($1) ORDER BY f.document, f.name, f.position`, ids)
		var doc, name, value string
		if _, err := pgx.ForEachRow(rows, []any{&doc, &name, &value}, func() error {
			out[docs[doc]].Fields[name] = value
			return nil
		}); err != nil {
			return fmt.Errorf("read fields: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT DISTINCT ON (document, field) document, field, value
			FROM reviewer_corrections WHERE document = ANY($1) ORDER BY document, field, corrected_at DESC, id DESC`, ids)
		if _, err := pgx.ForEachRow(rows, []any{&doc, &name, &value}, func() error {
			l := &out[docs[doc]]
			switch {
			case name == CategoryField:
				l.Category = value
			case value == "":
				delete(l.Fields, name) // the reviewer found the pipeline's value wrong and none right
			default:
				l.Fields[name] = value
			}
			return nil
		}); err != nil {
			return fmt.Errorf("read corrections: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persist: labelled corrections: %w", err)
	}
	return out, nil
}

// TextSearchIndexed reports whether the listing's text search has its
// trigram index. Without it (a server without the pg_trgm extension) the
// search still works, by a scan; a process logs this once at start.
func (s *Store) TextSearchIndexed(ctx context.Context) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'documents_search_trgm')`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("persist: look up search index: %w", err)
	}
	return ok, nil
}
