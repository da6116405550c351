-- One row per document, showing its latest run. Per-run facts that are
-- not known yet are NULL (not 0 or ''), so an upsert can tell "this event
-- does not say" from "this event says zero".
CREATE TABLE documents (
    id           text PRIMARY KEY,
    tenant       text NOT NULL DEFAULT '',
    filename     text NOT NULL DEFAULT '',
    content_type text NOT NULL DEFAULT '',
    size_bytes   bigint NOT NULL DEFAULT 0,
    sha256       text NOT NULL DEFAULT '',
    blob         text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT '',
    sender       text NOT NULL DEFAULT '',
    subject      text NOT NULL DEFAULT '',
    parent_id    text NOT NULL DEFAULT '',
    status       text NOT NULL CHECK (status IN ('processing', 'done', 'failed')),
    error        text,
    run          integer NOT NULL,
    page_count   integer,
    language     text,
    category     text,
    confidence   double precision,
    needs_review boolean,
    received_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    done_at      timestamptz
);

-- Listing is newest first with keyset pagination on (received_at, id),
-- per tenant and optionally per status or category. A backward scan of
-- these serves ORDER BY received_at DESC, id DESC with a row-comparison
-- cursor.
CREATE INDEX documents_tenant_received ON documents (tenant, received_at, id);
CREATE INDEX documents_tenant_status_received ON documents (tenant, status, received_at, id);
CREATE INDEX documents_tenant_category_received ON documents (tenant, category, received_at, id);
CREATE INDEX documents_received ON documents (received_at, id);
CREATE INDEX documents_parent ON documents (parent_id) WHERE parent_id <> '';

-- What each stage did for each run of a document.
CREATE TABLE stage_runs (
    document      text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run           integer NOT NULL,
    stage         text NOT NULL,
    status        text NOT NULL CHECK (status IN ('done', 'failed')),
    finished_at   timestamptz NOT NULL, -- the produced_at of the stage's event
    stage_version text NOT NULL DEFAULT '',
    PRIMARY KEY (document, run, stage)
);

CREATE TABLE pages (
    document   text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run        integer NOT NULL,
    number     integer NOT NULL CHECK (number >= 1),
    text       text NOT NULL,
    method     text NOT NULL,
    confidence double precision NOT NULL,
    needs_ocr  boolean NOT NULL,
    PRIMARY KEY (document, run, number)
);

-- Sections come from split and again from analyze; analyze's copy wins
-- (origin), whichever arrives first.
CREATE TABLE sections (
    document   text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run        integer NOT NULL,
    index      integer NOT NULL,
    origin     text NOT NULL CHECK (origin IN ('split', 'analyze')),
    title      text NOT NULL,
    text       text NOT NULL,
    page_start integer NOT NULL,
    page_end   integer NOT NULL,
    PRIMARY KEY (document, run, index)
);

-- Feedback comes from analyze and classify (origin); each replaces only
-- its own items.
CREATE TABLE feedback_items (
    document      text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run           integer NOT NULL,
    origin        text NOT NULL,
    id            text NOT NULL,
    position      integer NOT NULL, -- order within the event
    section_index integer NOT NULL,
    type          text NOT NULL,
    severity      text NOT NULL,
    message       text NOT NULL,
    suggestion    text NOT NULL,
    quote         text NOT NULL,
    PRIMARY KEY (document, run, origin, id)
);

-- A name may occur more than once (two insured persons); position keeps
-- the order the classifier gave.
CREATE TABLE fields (
    document      text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run           integer NOT NULL,
    position      integer NOT NULL,
    name          text NOT NULL,
    value         text NOT NULL,
    page          integer NOT NULL,
    section_index integer NOT NULL,
    span_start    integer NOT NULL,
    span_end      integer NOT NULL,
    PRIMARY KEY (document, run, position)
);

CREATE TABLE outputs (
    document     text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run          integer NOT NULL,
    name         text NOT NULL,
    blob         text NOT NULL,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       text NOT NULL,
    PRIMARY KEY (document, run, name)
);

-- A dead letter is identified by the record it failed on and the stage
-- that failed: several stages read the same topics.
CREATE TABLE dead_letters (
    id           text NOT NULL, -- topic/partition/offset
    stage        text NOT NULL,
    document     text REFERENCES documents (id) ON DELETE CASCADE, -- NULL if the record named none
    tenant       text NOT NULL DEFAULT '',
    run          integer NOT NULL,
    error        text NOT NULL,
    permanent    boolean NOT NULL,
    attempts     integer NOT NULL,
    topic        text NOT NULL,
    "partition"  integer NOT NULL,
    "offset"     bigint NOT NULL,
    created_at   timestamptz NOT NULL, -- the dead letter's produced_at
    PRIMARY KEY (id, stage)
);
CREATE INDEX dead_letters_document ON dead_letters (document, run, created_at);
CREATE INDEX dead_letters_created ON dead_letters (created_at);
