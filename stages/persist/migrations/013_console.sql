-- The reviewer console: reviewers' corrections, the chat kept with each
-- document, and a text search over the listing that stays fast at
-- 100,000 documents.

-- Every correction is kept (who, when, on which run, and what the
-- pipeline had said); the newest per field is the one shown. field is
-- 'category' or a field name of the taxonomy.
CREATE TABLE reviewer_corrections (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document     text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run          integer NOT NULL,
    field        text NOT NULL CHECK (field <> ''),
    original     text NOT NULL DEFAULT '',
    value        text NOT NULL,
    actor        text NOT NULL DEFAULT '',
    corrected_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX reviewer_corrections_field ON reviewer_corrections (document, field, corrected_at DESC, id DESC);

-- Questions and answers about a document, in the order they were asked
-- (id). citations is a JSON array of {"section", "quote"}.
CREATE TABLE chat_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document   text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('question', 'answer')),
    text       text NOT NULL,
    citations  jsonb NOT NULL DEFAULT '[]',
    grounding  text NOT NULL DEFAULT '',
    provider   text NOT NULL DEFAULT '',
    actor      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX chat_messages_document ON chat_messages (document, id);

-- search_text is what the listing's text search reads: filename, sender,
-- subject and the values of the fields of the newest run that has any
-- (so a replay does not hide a document from search until classify has
-- run again), plus reviewers' corrected values, lower-cased. Triggers
-- keep it, so the writers (persister, Correct) need not know it exists,
-- and a search is one indexed predicate on one table instead of a join
-- over fields. Lower-cased once here, a search is a LIKE of
-- lower(text): checking a row is then a byte comparison, many times
-- cheaper than ILIKE's per-row case folding when the planner walks the
-- date order and filters.
ALTER TABLE documents ADD COLUMN search_text text NOT NULL DEFAULT '';
-- Searches are estimated from this column's histogram; a finer one tells
-- a rare term (read the matches, sort them) from a common one (walk the
-- newest documents until a page is full).
ALTER TABLE documents ALTER COLUMN search_text SET STATISTICS 1000;

CREATE FUNCTION documents_search_text(doc text, filename text, sender text, subject text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT lower(concat_ws(' ', filename, sender, subject,
        (SELECT string_agg(f.value, ' ' ORDER BY f.position) FROM fields f
            WHERE f.document = doc AND f.run = (SELECT max(run) FROM fields WHERE document = doc)),
        (SELECT string_agg(DISTINCT c.value, ' ') FROM reviewer_corrections c WHERE c.document = doc)))
$$;

CREATE FUNCTION documents_search_text_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_text := documents_search_text(NEW.id, NEW.filename, NEW.sender, NEW.subject);
    RETURN NEW;
END
$$;

-- Most upserts change none of these, and then the (indexed) column is
-- left alone.
CREATE TRIGGER documents_search_text_insert BEFORE INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_search_text_row();
CREATE TRIGGER documents_search_text_update BEFORE UPDATE OF filename, sender, subject ON documents
    FOR EACH ROW
    WHEN (OLD.filename IS DISTINCT FROM NEW.filename OR OLD.sender IS DISTINCT FROM NEW.sender
        OR OLD.subject IS DISTINCT FROM NEW.subject)
    EXECUTE FUNCTION documents_search_text_row();

-- Fields and corrections arrive in bulk (COPY) or one by one; a
-- statement trigger with a transition table refreshes each document once.
CREATE FUNCTION documents_search_text_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE documents d SET search_text = documents_search_text(d.id, d.filename, d.sender, d.subject)
    WHERE d.id IN (SELECT DISTINCT document FROM changed);
    RETURN NULL;
END
$$;
CREATE TRIGGER fields_search_text_insert AFTER INSERT ON fields
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION documents_search_text_refresh();
CREATE TRIGGER fields_search_text_delete AFTER DELETE ON fields
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION documents_search_text_refresh();
CREATE TRIGGER reviewer_corrections_search_text AFTER INSERT ON reviewer_corrections
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION documents_search_text_refresh();

UPDATE documents d SET search_text = documents_search_text(d.id, d.filename, d.sender, d.subject);

-- A trigram GIN index serves LIKE '%text%' at any position. pg_trgm
-- ships with PostgreSQL's contrib and is a trusted extension (PG >= 13),
-- but a server without contrib must still migrate: then the search is the
-- same LIKE without an index (Store.TextSearchIndexed reports it, so the
-- process can log it), and installing pg_trgm later and running
-- CREATE INDEX documents_search_trgm ... as below brings the index.
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'prismflow: pg_trgm unavailable (%), document search runs without an index', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX documents_search_trgm ON documents USING gin (search_text gin_trgm_ops)';
    END IF;
END
$$;

-- Listing with both a status and a category filter (the inbox's usual
-- "done, Flotta Auto"): read in order from one index instead of filtering
-- the rows of either single-filter index.
CREATE INDEX documents_tenant_status_category_received ON documents (tenant, status, category, received_at, id);
