package imap

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// State is where a message is in its way through the connector.
type State string

// States of a recorded message, in the order they are reached.
const (
	Reserved State = "reserved" // id chosen, event not yet acknowledged
	Ingested State = "ingested" // acknowledged by Kafka, not yet marked
	Marked   State = "marked"   // flagged or moved on the server
	Skipped  State = "skipped"  // no attachment passed the rules
	Refused  State = "refused"  // ingest refused the message as bad input
)

// key is the IMAP identity of a message.
type key struct {
	mailbox     string // the configured name, stable across restarts
	uidValidity uint32
	uid         uint32
}

// store is the record of messages in table imap_messages.
type store struct{ pool *pgxpool.Pool }

// reserve returns the message's record, creating it as Reserved with a
// new document id when there is none. Two connectors racing on the same
// message get the same id.
func (s store) reserve(ctx context.Context, k key, messageID string) (id string, st State, err error) {
	_, err = s.pool.Exec(ctx, `INSERT INTO imap_messages (mailbox, uidvalidity, uid, document_id, state, message_id)
		VALUES ($1, $2, $3, $4, 'reserved', $5) ON CONFLICT DO NOTHING`,
		k.mailbox, int64(k.uidValidity), int64(k.uid), uuid.Must(uuid.NewV7()).String(), messageID)
	if err != nil {
		return "", "", fmt.Errorf("reserve %s: %w", k, err)
	}
	id, st, _, err = s.get(ctx, k)
	return id, st, err
}

// get returns the record of k; found is false when there is none.
func (s store) get(ctx context.Context, k key) (id string, st State, found bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT document_id, state FROM imap_messages WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3`,
		k.mailbox, int64(k.uidValidity), int64(k.uid)).Scan(&id, &st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("read record of %s: %w", k, err)
	}
	return id, st, true, nil
}

// set moves k's record to st, creating it if needed (skipped messages
// are recorded without a reservation).
func (s store) set(ctx context.Context, k key, st State, detail string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO imap_messages (mailbox, uidvalidity, uid, document_id, state, detail)
		VALUES ($1, $2, $3, '', $4, $5)
		ON CONFLICT (mailbox, uidvalidity, uid) DO UPDATE SET state = $4, detail = $5, updated_at = now()`,
		k.mailbox, int64(k.uidValidity), int64(k.uid), string(st), detail)
	if err != nil {
		return fmt.Errorf("record %s as %s: %w", k, st, err)
	}
	return nil
}

func (k key) String() string {
	return fmt.Sprintf("%s uidvalidity %d uid %d", k.mailbox, k.uidValidity, k.uid)
}

// inState lists the UIDs of a mailbox's messages in state st.
func (s store) inState(ctx context.Context, mailbox string, uidValidity uint32, st State) ([]uint32, error) {
	rows, err := s.pool.Query(ctx, `SELECT uid FROM imap_messages WHERE mailbox = $1 AND uidvalidity = $2 AND state = $3`,
		mailbox, int64(uidValidity), string(st))
	if err != nil {
		return nil, fmt.Errorf("list %s messages of %s: %w", st, mailbox, err)
	}
	uids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uint32, error) {
		var u int64
		err := r.Scan(&u)
		return uint32(u), err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s messages of %s: %w", st, mailbox, err)
	}
	return uids, nil
}
