-- API keys, stored as SHA-256 hashes: a key is 32 random bytes, so a
-- plain hash is as strong as a slow one, and lookups stay one index probe.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    name        text NOT NULL DEFAULT '',
    hash        bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Idempotency-Key of uploads: the same key of the same tenant names the
-- same document. document is NULL while the first upload is under way.
CREATE TABLE idempotency_keys (
    tenant      text NOT NULL,
    key         text NOT NULL,
    document    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
);
