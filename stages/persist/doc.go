// Package persist is the pipeline's sink: it stores every event of a
// document in PostgreSQL and answers the HTTP API's reads from there.
//
// # Idempotent and order-free
//
// Kafka delivers at least once, persist reads seven topics whose
// partitions lag independently, and a replay re-reads everything from
// offset 0. So every handler is one transaction that converges to the
// same rows whatever the order and however often an event comes:
//
//   - Each handler first upserts the document row from the Document the
//     event carries (events are fat), so no event depends on
//     DocumentReceived having been stored first. That upsert also takes
//     the row lock which serialises all handlers of one document.
//   - Identity fields only ever fill in (a non-empty value wins); times
//     converge (received_at is the least seen, updated_at the greatest
//     event time, never the wall clock), so re-delivery changes nothing.
//   - Per-run results (pages, sections, feedback, fields, outputs) are
//     keyed by (document, run, ...) and a handler replaces exactly its
//     own rows for its run with delete+insert.
//   - Status never goes backwards within a run: processing < failed <
//     done. done wins over failed because a dead letter in a run that
//     still rendered its outputs was retried or redriven to success; the
//     dead letter's error stays visible. An event of a newer run
//     (Meta.Run greater) resets the document to processing and clears the
//     per-run facts; events of older runs add their own per-run rows but
//     do not touch the document's status.
//
// # Errors
//
// Database errors that mean the data itself is bad (SQLSTATE classes 22,
// data exception, and 23, integrity violation) are marked
// pipeline.Permanent so the record is dead-lettered; everything else
// (connection loss, serialisation failures, timeouts) is returned plain
// for the runtime to retry. Texts are made valid UTF-8 without NUL bytes
// first, since PostgreSQL's text type rejects those and a single odd
// byte in a PDF must not lose a whole document.
//
// # Schema
//
// Migrations are the embedded migrations/NNN_name.sql files, applied by
// Open in one transaction under an advisory lock and recorded in
// schema_migrations, so several processes may start at once. A tiny owned
// migrator is used instead of a library because forward-only, in-order,
// all-or-nothing is all that is needed.
package persist
