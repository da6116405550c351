// Package extract turns an original file into the text of each of its
// pages: the first step after ingest.
//
// PDFs are read with MuPDF (go-fitz, statically linked). Each page gets its
// text in MuPDF's block order, which follows the content stream and keeps
// the columns of a multi-column layout apart (a column is read to its end
// before the next begins) and the cells of a table row together in one
// block. Plain text files (UTF-8, else Windows-1252) become a single
// digital page. A file starting with %PDF- is read as a PDF whatever its
// declared type. The document's language comes from DetectLanguage over
// the text of every page, digital or OCRed.
//
// The decision to OCR is made page by page, because mixed documents (typed
// pages with scanned annexes, scans stamped with a digital page number)
// are the normal case. A page is OCRed when its text layer is missing or
// unreadable; when it is garbage by encoding (Confidence under
// MinConfidence: replacement characters, control codes, private-use
// glyphs); when it is garbage by content (WordQuality under
// MinWordQuality: the invisible layer a poor OCR left behind); or when it
// holds little text (under ThinTextLetters) over a large image (at least
// LargeImagePixels), i.e. a scan with a stamp. A page with good text is
// never OCRed. The OCR itself is package ocr: the page is rendered by MuPDF
// and read by Tesseract, with its confidence and rotation recorded. With no
// OCR engine configured such pages keep Method none and NeedsOCR.
//
// Images (PNG, JPEG, TIFF, every frame of a multi-page TIFF) are OCRed
// directly: MuPDF opens them as documents of one page per frame, and each
// is rendered at its own pixel size.
//
// Limits, each a permanent error that names it: bytes (MaxBytes), pages
// (MaxPages, checked before any page is read), pixels per page or image
// (ocr's MaxPixels, checked from the page size or the image header before
// anything is rendered or decoded, so a decompression bomb costs nothing),
// time per OCRed page (ocr's PageTimeout). An encrypted PDF is opened with
// the password of the upload (DocumentReceived.Password; go-fitz has no
// call for it, so pdfcpu decrypts the file in memory first) and is
// otherwise refused.
//
// MuPDF reports damage by longjmp; go-fitz guards opening, page loading
// and text extraction with fz_try, but calls fz_count_pages bare, and an
// error there aborts the whole process. The one way it throws for a
// document held in memory is a negative page-tree /Count, so such files
// are refused before MuPDF sees them (the hostile-corpus end-to-end test
// in cmd/prismflow sends ~90 damaged files through one process to keep
// this true). Isolating MuPDF in a child process would cover faults not
// yet known, at the cost of a process per document; it is the next step
// if another unguarded abort turns up.
//
// Guarantees:
//   - Every page of the document appears in the output, numbered from 1, in
//     order; PageCount equals the number of pages.
//   - Bad input (encrypted, corrupt, truncated or empty PDFs, unsupported
//     content types, files over a limit) is returned wrapped in
//     pipeline.Permanent with a message naming the cause; a failure to read
//     the blob store is returned unmarked so the runtime retries it.
//   - Handle is safe for concurrent use: MuPDF documents are not, so each
//     call opens its own and closes it before returning; page texts are
//     taken one at a time, and pages are rendered for OCR one at a time
//     per document (go-fitz locks the document) while the OCR of rendered
//     pages runs in parallel, bounded process-wide by the shared Engine.
//
// Why plain text and not MuPDF's positioned HTML: go-fitz's HTML output
// always embeds every page image as a base64 data URI (the
// FZ_STEXT_PRESERVE_IMAGES flag is fixed), which re-encodes each scan and
// costs far more memory and CPU than the text itself; the plain text output
// already keeps the block order that matters for reading order.
//
// MuPDF reports structural damage by repairing what it can. A file whose
// tail lacks the %%EOF marker was cut short in transit, so it is rejected
// rather than half-read: a partial policy is worse than a dead letter.
//
// A stage knows nothing about Kafka: the runtime calls Handle and stamps
// the output's Meta.
package extract
