-- The IMAP connector's record of every message it has seen, keyed by
-- (mailbox name, UIDVALIDITY, UID): the IMAP identity of a message, valid
-- as long as the server keeps UIDVALIDITY. Owned by package
-- prismflow/connectors/imap; created here so one migrator owns the schema.
--
-- state: reserved (document id chosen, event not yet acknowledged),
-- ingested (acknowledged by Kafka, message not yet marked), marked
-- (flagged or moved on the server), skipped (no attachment passed the
-- mailbox's rules) or refused (ingest refused it as bad input).
CREATE TABLE imap_messages (
    mailbox      text NOT NULL,
    uidvalidity  bigint NOT NULL,
    uid          bigint NOT NULL,
    document_id  text NOT NULL,
    state        text NOT NULL CHECK (state IN ('reserved', 'ingested', 'marked', 'skipped', 'refused')),
    message_id   text NOT NULL DEFAULT '',
    detail       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox, uidvalidity, uid)
);
