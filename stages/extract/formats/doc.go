// Package formats reads the text of the documents a broker receives that
// are not PDFs or images: Word (DOCX), OpenDocument text (ODT), Excel
// (XLSX), HTML, plain text and e-mails (RFC 5322 / MIME .eml). It also tells
// these formats apart from their bytes (Detect), for the ingest stage.
//
// Output shape: a document is a list of page texts. DOCX and ODT break
// pages only where the author asked for it (a page break, or a paragraph
// styled to start a page); the page layout a word processor would compute
// is not reproduced, so a document without explicit breaks is one page.
// XLSX gives one page per sheet, the sheet name on the first line and each
// non-empty row as a tab-separated line. HTML, text and e-mail give one
// page. Tables of DOCX, ODT and HTML are written row by row, cells
// separated by tabs, which keeps a row's values together for the later
// stages that look for key-value pairs.
//
// An e-mail's text is a short header summary (From, To, Cc, Date, Subject)
// followed by the body, its text/plain part preferred and its text/html
// part converted to text otherwise. Every attachment, including an inline
// part that carries a filename and a forwarded message/rfc822, is stored in
// the blob store under its content address and listed with its sniffed
// content type; it is not opened here. The ingest side makes each one a
// document of its own, so a nested e-mail is read by this package again
// when its turn comes, with the same limits, rather than recursively here.
// Attachments are collected in memory first and stored only when the whole
// message passed its limits, so a rejected e-mail leaves no blobs behind.
//
// Why these readers and not MuPDF: the go-fitz in go.mod (v1.24.15, with
// its bundled MuPDF) was tried on the fixtures in testdata. It opens the
// DOCX with zero pages, the ODT as an empty one-page archive, an HTML file
// from memory not at all ("cannot open memory"), and the XLSX as one page
// without sheet names or columns and with dates as serial numbers. The
// Office formats are zip archives of simple XML whose text is a streaming
// read of a few elements with encoding/xml, and golang.org/x/net/html is
// the WHATWG tokenizer. Outlook .msg (a Compound File Binary of MAPI
// properties) has no maintained pure-Go reader, so it is detected and
// refused with a permanent error that names the format.
//
// Guarantees:
//   - Bad input never crashes or exhausts memory: zip entries are refused
//     by their declared uncompressed size before they are inflated (one
//     entry and the total read from one archive are capped), inflating
//     stops at the declared size, XML is read as a stream by encoding/xml
//     (which expands no entities beyond the five predefined ones, so an
//     entity bomb is a syntax error), the text produced is capped, and
//     e-mails are capped in parts, nesting, attachments and their total
//     size. All of these, corrupt archives and malformed XML included, are
//     returned wrapped in pipeline.Permanent with a message naming the
//     cause. Failures of the blob store are returned unmarked, so the
//     runtime retries them.
//   - Reader is safe for concurrent use; it keeps no state between calls.
package formats
