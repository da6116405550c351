// Package ingest is where a file enters prismflow: it checks the file
// (size, type by magic bytes), stores it content addressed in the blob
// store and announces it with a DocumentReceived event.
//
// Every way in (HTTP upload, CLI, IMAP, replay) goes through Ingest, so
// the checks are the same whatever the source. The file is streamed to the
// blob store while its sha256 is computed; it is never held in memory and
// never put into Kafka. The same bytes uploaded twice are stored once but
// become two documents: a document is an arrival, not a file.
//
// The type is decided by the bytes alone (Sniff, Detect): PDF, text,
// HTML, PNG, JPEG, TIFF, DOCX, ODT, XLSX, e-mail and Outlook .msg. Zip and
// OLE2 containers need their whole file to be told apart; they are
// spooled to a local temporary file within the size limit and checked
// there, so a refused file never reaches the blob store.
//
// ingest is also a consumer stage: Unpacker turns the attachments the
// extract stage found (an e-mail's files) into documents of their own,
// with the same checks, linked to their parent by ParentID. Their ids are
// derived from the parent's id, the attachment's position and its hash,
// so a replay of the parent yields the same children, not new ones.
package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"prismflow/stages/internal/sniff"
	"strings"
	"time"

	"github.com/google/uuid"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// ErrTooLarge is returned (wrapped, permanent) for a file over MaxBytes.
var ErrTooLarge = errors.New("file too large")

// ErrUnsupportedType is returned (wrapped, permanent) for a file whose
// content is not of an accepted type, whatever its name says.
var ErrUnsupportedType = errors.New("unsupported file type")

// DefaultMaxBytes is the size limit when Ingester.MaxBytes is zero.
const DefaultMaxBytes = 50 << 20

// Upload is one file arriving, with what is known about where it came from.
type Upload struct {
	Tenant   string
	Filename string
	Body     io.Reader
	Source   string // upload, imap, replay; default upload
	Sender   string
	Subject  string
	ParentID string
	// Password opens an encrypted PDF; it travels on the event to the
	// extract stage and must never be logged.
	Password string
	// ID, when set, is the document id instead of a new one: a source
	// that records the id before sending (the IMAP connector) resends an
	// arrival under the same id, so a retry is not a second document.
	ID string
}

// Ingester validates, stores and announces uploads.
type Ingester struct {
	Blobs blob.Store
	// MaxBytes is the largest file accepted. Default DefaultMaxBytes.
	MaxBytes int64
	// Publish sends the event and returns once the broker acknowledged it.
	Publish func(context.Context, events.DocumentReceived) error
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Ingest stores u's file and publishes its DocumentReceived event. It
// returns only after the broker acknowledged the event, so an id returned
// to a caller always names a document the pipeline will process.
func (in *Ingester) Ingest(ctx context.Context, u Upload) (events.DocumentReceived, error) {
	if u.Tenant == "" {
		return events.DocumentReceived{}, pipeline.Permanent(errors.New("ingest: upload has no tenant"))
	}
	name := baseName(u.Filename)
	f, err := admit(name, u.Body, maxBytes(in.MaxBytes))
	if err != nil {
		return events.DocumentReceived{}, err
	}
	defer f.close()
	key, sum, size, err := blob.PutContent(ctx, in.Blobs, f.body)
	if f.body.over {
		return events.DocumentReceived{}, pipeline.Permanent(fmt.Errorf("ingest %s: %w: more than %d bytes", name, ErrTooLarge, f.body.max))
	}
	if err != nil {
		return events.DocumentReceived{}, fmt.Errorf("ingest %s: store: %w", name, err)
	}

	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	source := u.Source
	if source == "" {
		source = "upload"
	}
	id := u.ID
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	ev := events.DocumentReceived{
		Document: events.Document{
			ID:          id,
			Tenant:      u.Tenant,
			Filename:    name,
			ContentType: f.ctype,
			SizeBytes:   size,
			SHA256:      sum,
			Blob:        key,
			Source:      source,
			Sender:      u.Sender,
			Subject:     u.Subject,
			ParentID:    u.ParentID,
		},
		ReceivedAt: now().UTC(),
		Password:   u.Password,
	}
	if err := in.Publish(ctx, ev); err != nil {
		return events.DocumentReceived{}, fmt.Errorf("ingest %s: publish: %w", name, err)
	}
	return ev, nil
}

// baseName is the last element of a client's file name, whatever the
// client's path separator; "document" if there is none.
func baseName(filename string) string {
	name := path.Base(strings.ReplaceAll(filename, "\\", "/"))
	if name == "." || name == "/" || name == "" {
		return "document"
	}
	return name
}

func maxBytes(max int64) int64 {
	if max <= 0 {
		return DefaultMaxBytes
	}
	return max
}

// admitted is a file that passed the type check: its type and the reader
// of its bytes, which fails once they pass the size limit.
type admitted struct {
	ctype string
	body  *limitReader
	close func() // removes the spool, if any
}

// admit applies the checks every file entering prismflow gets, uploads
// and attachments alike: not empty, an accepted type by its bytes, at
// most max bytes. A type the head tells is decided before anything is
// stored, and the body is streamed on. A container (zip, OLE2) is spooled
// to a local temporary file first, within the size limit, and its type
// decided on the whole file: that way a refused file never reaches the
// blob store, which has no delete (and must not need one: content
// addressed blobs may be shared by documents).
func admit(name string, r io.Reader, max int64) (admitted, error) {
	br := bufio.NewReaderSize(r, sniff.HeadSize)
	head, err := br.Peek(sniff.HeadSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return admitted{}, fmt.Errorf("ingest %s: read: %w", name, err)
	}
	if len(head) == 0 {
		return admitted{}, pipeline.Permanent(fmt.Errorf("ingest %s: empty file", name))
	}
	ctype, ok := sniff.Head(head)
	if !sniff.NeedsWhole(ctype) {
		if !ok {
			return admitted{}, refused(name, ctype)
		}
		return admitted{ctype: ctype, body: &limitReader{r: br, left: max, max: max}, close: func() {}}, nil
	}

	spool, err := os.CreateTemp("", "prismflow-ingest-*")
	if err != nil {
		return admitted{}, fmt.Errorf("ingest %s: spool: %w", name, err)
	}
	cleanup := func() {
		spool.Close()
		os.Remove(spool.Name())
	}
	lr := &limitReader{r: br, left: max, max: max}
	size, err := io.Copy(spool, lr)
	if lr.over {
		cleanup()
		return admitted{}, pipeline.Permanent(fmt.Errorf("ingest %s: %w: more than %d bytes", name, ErrTooLarge, max))
	}
	if err != nil {
		cleanup()
		return admitted{}, fmt.Errorf("ingest %s: spool: %w", name, err)
	}
	if ctype, ok = sniff.Detect(spool, size); !ok {
		cleanup()
		return admitted{}, refused(name, ctype)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return admitted{}, fmt.Errorf("ingest %s: rewind spool: %w", name, err)
	}
	return admitted{ctype: ctype, body: &limitReader{r: spool, left: max, max: max}, close: cleanup}, nil
}

func refused(name, ctype string) error {
	return pipeline.Permanent(fmt.Errorf("ingest %s: %w: content looks like %s; accepted: %s",
		name, ErrUnsupportedType, ctype, strings.Join(sniff.Accepted, ", ")))
}

// limitReader fails once more than left bytes were read, so an oversized
// upload stops streaming at the limit instead of filling the disk.
type limitReader struct {
	r    io.Reader
	left int64
	max  int64 // the limit, for messages
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		l.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, ErrTooLarge
	}
	return n, err
}
