package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/google/uuid"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// attachmentSpace is the UUID namespace of attachment documents' ids.
var attachmentSpace = uuid.MustParse("6f1c2b0e-4d4a-5b7e-9a57-7072697366c1")

// AttachmentID is the id of the document made of the index-th attachment
// (with content sha256) of document parent: a name-based UUID (version
// 5), so a replay of the parent yields the same children instead of new
// ones.
func AttachmentID(parent string, index int, sha256 string) string {
	return uuid.NewSHA1(attachmentSpace, []byte(parent+"\x00"+strconv.Itoa(index)+"\x00"+sha256)).String()
}

// Unpacker is ingest's consumer side: the attachments the extract stage
// found in a document (an e-mail's files) enter the pipeline as documents
// of their own, checked like uploads.
type Unpacker struct {
	Blobs blob.Store
	// MaxBytes is the largest attachment accepted. Default DefaultMaxBytes.
	MaxBytes int64
	// Log receives a line per skipped attachment; default slog.Default().
	Log *slog.Logger
}

// Attachments returns one DocumentReceived per acceptable attachment of
// in. An attachment that is too large, of a type prismflow does not read
// or missing from the blob store is skipped with a log line: it is the
// attachment's fault, not the parent's, which goes on. Errors reading the
// blob store are returned (transient) so that the parent is retried and
// no child is lost.
func (u *Unpacker) Attachments(ctx context.Context, in events.TextExtracted) ([]events.DocumentReceived, error) {
	parent := in.Document
	if len(in.Attachments) == 0 {
		return nil, nil
	}
	if parent.ID == "" {
		return nil, pipeline.Permanent(errors.New("ingest: attachments of a document without an id"))
	}
	log := u.Log
	if log == nil {
		log = slog.Default()
	}
	max := maxBytes(u.MaxBytes)
	var out []events.DocumentReceived
	for i, a := range in.Attachments {
		name := baseName(a.Filename)
		log := log.With("document_id", parent.ID, "attachment", i, "filename", name)
		ctype, err := u.check(ctx, name, a, max)
		if pipeline.IsPermanent(err) {
			log.Warn("attachment skipped", "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ingest: attachment %d of %s: %w", i, parent.ID, err)
		}
		out = append(out, events.DocumentReceived{
			Document: events.Document{
				ID:          AttachmentID(parent.ID, i, a.SHA256),
				Tenant:      parent.Tenant,
				Filename:    name,
				ContentType: ctype,
				SizeBytes:   a.SizeBytes,
				SHA256:      a.SHA256,
				Blob:        a.Blob,
				Source:      parent.Source,
				Sender:      parent.Sender,
				Subject:     parent.Subject,
				ParentID:    parent.ID,
			},
			// The arrival of the parent's text, not the wall clock: a
			// replay must produce the same event.
			ReceivedAt: in.Meta.ProducedAt,
		})
	}
	return out, nil
}

// check applies the upload checks to a stored attachment and returns its
// type by its bytes (the type the attachment declares is the sender's
// word, not evidence).
func (u *Unpacker) check(ctx context.Context, name string, a events.Attachment, max int64) (string, error) {
	if a.Blob == "" {
		return "", pipeline.Permanent(fmt.Errorf("ingest %s: attachment without a blob", name))
	}
	if a.SizeBytes > max {
		return "", pipeline.Permanent(fmt.Errorf("ingest %s: %w: %d bytes, more than %d", name, ErrTooLarge, a.SizeBytes, max))
	}
	rc, err := u.Blobs.Get(ctx, a.Blob)
	if errors.Is(err, blob.ErrNotFound) {
		return "", pipeline.Permanent(fmt.Errorf("ingest %s: blob %s: %w", name, a.Blob, err))
	}
	if err != nil {
		return "", fmt.Errorf("open blob %s: %w", a.Blob, err)
	}
	defer rc.Close()
	f, err := admit(name, rc, max)
	if err != nil {
		return "", err
	}
	f.close()
	return f.ctype, nil
}
