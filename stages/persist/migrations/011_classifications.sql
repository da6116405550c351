-- How the classify stage chose a run's category: the built-in model's
-- answer, which always exists, and an LLM's when one is configured, with
-- whether they disagreed and what the LLM cost. One row per run, so a
-- replay keeps the earlier runs' answers readable. The llm_* usage
-- columns are NULL when no LLM provider was configured.
CREATE TABLE classifications (
    document           text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    run                integer NOT NULL,
    provider           text NOT NULL,
    builtin_category   text NOT NULL DEFAULT '',
    builtin_confidence double precision NOT NULL DEFAULT 0,
    llm_category       text NOT NULL DEFAULT '',
    llm_confidence     double precision NOT NULL DEFAULT 0,
    disagreement       boolean NOT NULL DEFAULT false,
    llm_answered       boolean,
    llm_cached         boolean,
    llm_fallback       boolean,
    llm_input_tokens   bigint,
    llm_output_tokens  bigint,
    llm_cost_usd       double precision,
    llm_latency_ms     bigint,
    PRIMARY KEY (document, run)
);

-- The review queue asks for the documents the two classifiers disagree on.
CREATE INDEX classifications_disagreement ON classifications (document) WHERE disagreement;
