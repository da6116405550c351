package extract

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"prismflow/stages/internal/sniff"

	"prismflow/pipeline"
	"prismflow/schemas/events"
	"prismflow/stages/extract/formats"
)

// Content types Handle passes to readFormat. They are package formats'
// own, repeated here so that Handle's dispatch names them like TypePDF.
const (
	TypeDOCX  = formats.TypeDOCX
	TypeODT   = formats.TypeODT
	TypeXLSX  = formats.TypeXLSX
	TypeHTML  = formats.TypeHTML
	TypeXHTML = formats.TypeXHTML
	TypeEML   = formats.TypeEML
	TypeMSG   = formats.TypeMSG
	// TypeZip is what sniffing calls any zip container; readFormat looks
	// inside it.
	TypeZip = sniff.Zip
)

// readFormat extracts the documents package formats reads: DOCX, ODT,
// XLSX, HTML, e-mails (and .msg, which it refuses by name). Their text is
// the file's own, so every page is digital, scored by Confidence like a
// PDF's text layer. An e-mail also fills out's Sender, Subject and
// Attachments.
//
// A zip container is identified by its entries whatever its label: mail
// clients send Office files as application/zip or octet-stream, and a
// DOCX renamed .odt is still a DOCX.
func (e *Extractor) readFormat(ctx context.Context, out *events.TextExtracted, ct string, b []byte) ([]events.Page, error) {
	doc := out.Document
	if detected, ok := sniff.Detect(bytes.NewReader(b), int64(len(b))); ok && (ct == TypeZip || isZipType(detected)) {
		ct = detected
	}
	// The declared type's parameters (an HTML charset) count when the
	// bytes agreed with it.
	full := ct
	if mt, _, err := mime.ParseMediaType(doc.ContentType); err == nil && mt == ct {
		full = doc.ContentType
	}
	r := formats.Reader{Blobs: e.Blobs}
	res, err := r.Read(ctx, full, doc.Filename, b)
	if err != nil {
		return nil, fmt.Errorf("extract: %w", err)
	}
	maxPages := e.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	if len(res.Pages) > maxPages {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s has %d pages, over the %d page limit", doc.Filename, len(res.Pages), maxPages))
	}
	pages := make([]events.Page, len(res.Pages))
	empty := true
	for i, raw := range res.Pages {
		text := cleanText(raw)
		empty = empty && text == ""
		pages[i] = events.Page{Number: int32(i + 1), Text: text, Method: events.MethodDigital, Confidence: Confidence(text)}
	}
	if empty {
		// Images inside an Office file are not OCRed: say so rather than
		// pass on a document without words.
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s (%s) has no text", doc.Filename, ct))
	}
	if ct == formats.TypeEML {
		out.Document.Sender = res.Sender
		out.Document.Subject = res.Subject
		out.Attachments = res.Attachments
	}
	return pages, nil
}

func isZipType(ct string) bool {
	return ct == formats.TypeDOCX || ct == formats.TypeODT || ct == formats.TypeXLSX
}
