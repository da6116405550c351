package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"prismflow/connectors/blob"
	"prismflow/schemas/events"
)

// claimPrefix is where claim-checked texts live in the blob store. Keys
// are content addressed per document, so a retried or replayed stage
// writes the same key again instead of leaking new blobs.
const claimPrefix = "claims/"

// claimKey is the blob key of text moved out of an event of document doc.
func claimKey(doc, text string) string {
	sum := sha256.Sum256([]byte(text))
	return claimPrefix + doc + "/" + hex.EncodeToString(sum[:])
}

// checkOut moves every non-empty text of ev to the blob store and points
// its Ref at it. The caller re-encodes ev afterwards.
func checkOut(ctx context.Context, store blob.Store, doc string, ev events.TextCarrier) error {
	for _, f := range ev.TextFields() {
		if *f.Text == "" {
			continue
		}
		key := claimKey(doc, *f.Text)
		ok, err := store.Exists(ctx, key)
		if err != nil {
			return fmt.Errorf("claim check %s: %w", key, err)
		}
		if !ok {
			if err := store.Put(ctx, key, strings.NewReader(*f.Text)); err != nil {
				return fmt.Errorf("claim check %s: %w", key, err)
			}
		}
		*f.Ref, *f.Text = key, ""
	}
	return nil
}

// checkIn loads every referenced text of ev back inline and clears the
// Ref, so handlers always see whole texts. A missing or altered blob can
// never load, so it is permanent; other store errors are transient.
func checkIn(ctx context.Context, store blob.Store, ev events.TextCarrier) error {
	for _, f := range ev.TextFields() {
		if *f.Ref == "" {
			continue
		}
		key := *f.Ref
		text, err := loadClaim(ctx, store, key)
		if err != nil {
			return err
		}
		*f.Text, *f.Ref = text, ""
	}
	return nil
}

func loadClaim(ctx context.Context, store blob.Store, key string) (string, error) {
	rc, err := store.Get(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return "", Permanent(fmt.Errorf("claim check %s: %w", key, err))
	}
	if err != nil {
		return "", fmt.Errorf("claim check %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		return "", fmt.Errorf("claim check %s: read: %w", key, err)
	}
	// Our own keys end in the text's sha256: verify it, so a damaged blob
	// is caught here rather than passed on as a document's text.
	if strings.HasPrefix(key, claimPrefix) {
		sum := sha256.Sum256(buf.Bytes())
		if path.Base(key) != hex.EncodeToString(sum[:]) {
			return "", Permanent(fmt.Errorf("claim check %s: content does not match its sha256", key))
		}
	}
	return buf.String(), nil
}
