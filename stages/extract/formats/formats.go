package formats

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"prismflow/stages/internal/sniff"
	"strings"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// Content types this package reads or recognises. Ingest writes these
// strings into Document.ContentType.
// They are package sniff's, which names every type from the bytes.
const (
	TypeDOCX  = sniff.DOCX
	TypeODT   = sniff.ODT
	TypeXLSX  = sniff.XLSX
	TypeHTML  = sniff.HTML
	TypeXHTML = sniff.XHTML
	TypeText  = sniff.Text
	TypeEML   = sniff.EML
	// TypeMSG is recognised so that it can be refused by name: see the
	// package documentation.
	TypeMSG = sniff.MSG
)

// Defaults for the zero values of Limits' fields.
const (
	DefaultMaxEntryBytes      = 64 << 20  // 64 MiB
	DefaultMaxUnzippedBytes   = 256 << 20 // 256 MiB
	DefaultMaxZipEntries      = 20000
	DefaultMaxTextBytes       = 32 << 20 // 32 MiB
	DefaultMaxAttachments     = 100
	DefaultMaxAttachmentBytes = 100 << 20 // 100 MiB
	DefaultMaxParts           = 1000
	DefaultMaxDepth           = 20
)

// Limits bound the work one document may cause. The zero value of each
// field means its default.
type Limits struct {
	// MaxEntryBytes is the largest uncompressed size of one zip entry that
	// is read (an Office XML part). Default 64 MiB.
	MaxEntryBytes int64
	// MaxUnzippedBytes is the most uncompressed bytes read from one
	// archive, all entries together. Default 256 MiB.
	MaxUnzippedBytes int64
	// MaxZipEntries is the most entries an archive may list. Default 20000.
	MaxZipEntries int
	// MaxTextBytes is the most text, in bytes, a document may produce.
	// Default 32 MiB.
	MaxTextBytes int64
	// MaxAttachments is the most attachments an e-mail may carry.
	// Default 100.
	MaxAttachments int
	// MaxAttachmentBytes is the most decoded bytes of all attachments of
	// one e-mail together. Default 100 MiB.
	MaxAttachmentBytes int64
	// MaxParts is the most MIME parts (of any kind) in one e-mail.
	// Default 1000.
	MaxParts int
	// MaxDepth is the deepest nesting of multipart bodies. Default 20.
	MaxDepth int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxEntryBytes, DefaultMaxEntryBytes)
	def(&l.MaxUnzippedBytes, DefaultMaxUnzippedBytes)
	defInt(&l.MaxZipEntries, DefaultMaxZipEntries)
	def(&l.MaxTextBytes, DefaultMaxTextBytes)
	defInt(&l.MaxAttachments, DefaultMaxAttachments)
	def(&l.MaxAttachmentBytes, DefaultMaxAttachmentBytes)
	defInt(&l.MaxParts, DefaultMaxParts)
	defInt(&l.MaxDepth, DefaultMaxDepth)
	return l
}

// Reader reads documents of the types in Handles. Blobs is needed only
// for e-mails, whose attachments it stores.
type Reader struct {
	// Blobs receives e-mail attachments, content addressed.
	Blobs  blob.Store
	Limits Limits
}

// Result is what Read found in a document.
type Result struct {
	// Pages are the texts of the pages in order, at least one. The texts
	// are raw: line ends and blank lines are left for the caller to
	// normalise.
	Pages []string
	// Sender is the address in an e-mail's From header; Subject its
	// decoded Subject. Both are empty for other formats.
	Sender  string
	Subject string
	// Attachments are an e-mail's attachments, already stored in Blobs.
	Attachments []events.Attachment
}

// Handles reports whether Read reads documents of contentType (a bare
// media type, without parameters). Plain text is read too, but the
// extract stage has its own reader for it.
func Handles(contentType string) bool {
	switch contentType {
	case TypeDOCX, TypeODT, TypeXLSX, TypeHTML, TypeXHTML, TypeText, TypeEML, TypeMSG:
		return true
	}
	return false
}

// Read returns the text of b, a document of contentType named name (the
// name is used only in error messages). contentType may carry parameters;
// an HTML file's charset parameter is used when the file names none.
func (r *Reader) Read(ctx context.Context, contentType, name string, b []byte) (Result, error) {
	lim := r.Limits.withDefaults()
	var (
		res Result
		err error
	)
	mt, _, perr := mime.ParseMediaType(contentType)
	if perr != nil {
		mt = strings.ToLower(strings.TrimSpace(contentType))
	}
	switch mt {
	case TypeDOCX:
		res.Pages, err = readDOCX(b, lim)
	case TypeODT:
		res.Pages, err = readODT(b, lim)
	case TypeXLSX:
		res.Pages, err = readXLSX(b, lim)
	case TypeHTML, TypeXHTML:
		var s string
		s, err = readHTMLFile(b, contentType, lim)
		res.Pages = []string{s}
	case TypeText:
		var s string
		s, err = decodeText(b)
		res.Pages = []string{s}
	case TypeEML:
		res, err = r.readMail(ctx, b, lim)
	case TypeMSG:
		err = pipeline.Permanent(errors.New("Outlook .msg (application/vnd.ms-outlook) is not supported: there is no maintained pure-Go reader; ask the sender to forward the message as .eml"))
	default:
		err = pipeline.Permanent(fmt.Errorf("unsupported content type %q", mt))
	}
	if err != nil {
		return Result{}, fmt.Errorf("formats: %s: %w", name, err)
	}
	return res, nil
}

// errTextLimit is returned (marked permanent) when a document produces
// more text than Limits.MaxTextBytes.
var errTextLimit = errors.New("text over the size limit")

// textBuilder collects text up to a cap, so that a small file which
// expands (a spreadsheet of empty-but-styled cells, a table nested a
// thousand deep) cannot grow the output without bound.
type textBuilder struct {
	b   strings.Builder
	max int64
	err error
}

func (t *textBuilder) WriteString(s string) {
	if t.err != nil {
		return
	}
	if int64(t.b.Len()+len(s)) > t.max {
		t.err = pipeline.Permanent(fmt.Errorf("%w of %d bytes", errTextLimit, t.max))
		return
	}
	t.b.WriteString(s)
}

func (t *textBuilder) Len() int { return t.b.Len() }

func (t *textBuilder) String() string { return t.b.String() }
