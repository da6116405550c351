// Package imap is the IMAP inbox connector: it watches mailboxes with
// emersion/go-imap v2 and turns each new message into one upload of the
// raw RFC 5322 message through ingest (source "imap", sender and subject
// from the envelope). The pipeline then makes the e-mail a document and
// each attachment a child document with ParentID, so the connector never
// parses or rewrites a message itself.
//
// Guarantees. A message is marked (keyword added or moved to a folder)
// only after its DocumentReceived event was acknowledged by Kafka, and a
// message is never ingested twice: before sending, the connector records
// (mailbox name, UIDVALIDITY, UID) → document id in PostgreSQL (table
// imap_messages, created by the persist migrator). The record moves
// reserved → ingested → marked. After a crash a message found
//   - reserved is sent again under the same document id (the pipeline is
//     idempotent by document id, and attachment ids derive from it), so a
//     lost acknowledgement does not make a second document;
//   - ingested is only marked;
//   - marked, skipped or refused is left alone.
//
// A new UIDVALIDITY (the server renumbered the folder) makes every
// message new to the record; marked messages are still excluded by the
// search when the mailbox marks with a keyword.
//
// Rules. Per mailbox, rules choose which messages are taken: a message is
// taken when at least one attachment (from BODYSTRUCTURE, before the
// message is downloaded) passes every rule set (content type, file name
// glob, size). That is decided here because it is the only decision the
// connector can make without parsing the message; the choice of which
// attachments of a taken message become documents stays with the ingest
// stage's Unpacker, which applies the same checks to every attachment
// from any source. Messages not taken are recorded as skipped and left
// unmarked for a person to see.
//
// Waiting. Each mailbox has its own connection and goroutine. It waits
// with IDLE when the server announces it (and idle is on), waking on a
// new EXISTS, and otherwise polls; in both cases the folder is searched
// again at least every poll interval. A broken connection is redialled
// with a capped exponential backoff; only a cancelled context stops Run.
package imap
