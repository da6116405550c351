-- Reviewers' decisions on feedback items. Every decision is kept (who,
-- when, what); the newest per item is the one shown. Items are keyed by
-- their stable id, which a replay producing the same remark keeps.
CREATE TABLE feedback_decisions (
    document    text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    item        text NOT NULL,
    action      text NOT NULL CHECK (action IN ('accept', 'reject')),
    comment     text NOT NULL DEFAULT '',
    actor       text NOT NULL DEFAULT '',
    decided_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX feedback_decisions_item ON feedback_decisions (document, item, decided_at DESC);
