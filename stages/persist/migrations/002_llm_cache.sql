-- Validated LLM answers, keyed by sha256 of (provider, model, prompt
-- version, input text), so a replay or a duplicate document costs no
-- tokens. Owned by package prismflow/stages/internal/llm; created here so
-- one migrator owns the schema.
CREATE TABLE llm_cache (
    key            bytea PRIMARY KEY,
    provider       text NOT NULL,
    model          text NOT NULL,
    prompt_version text NOT NULL,
    response       text NOT NULL,
    input_tokens   bigint NOT NULL DEFAULT 0,
    output_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd       double precision NOT NULL DEFAULT 0,
    hits           bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_hit_at    timestamptz
);
