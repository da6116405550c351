-- Sessions of the reviewer console. A browser holds a random token in an
-- HttpOnly cookie; only its SHA-256 is stored, so a copy of this table
-- cannot be used to sign in. Each session has its own CSRF token, sent
-- back by the console's forms and scripts on every state-changing request.
-- key_id names the API key the reviewer signed in with ('' when the
-- console runs without authentication); revoking the key ends the session.
CREATE TABLE console_sessions (
    hash        bytea PRIMARY KEY,
    tenant      text NOT NULL,
    actor       text NOT NULL,
    key_id      text NOT NULL DEFAULT '',
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- Expired sessions are swept by expiry time.
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
