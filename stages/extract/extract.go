package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image.DecodeConfig reads the headers of uploads
	_ "image/png"
	"io"
	"log/slog"
	"mime"
	"prismflow/stages/internal/pdfconf"
	"prismflow/stages/internal/sniff"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	fitz "github.com/gen2brain/go-fitz"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	_ "golang.org/x/image/tiff"
	"golang.org/x/text/encoding/charmap"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
	"prismflow/stages/extract/mupdf"
	"prismflow/stages/extract/ocr"
)

// Defaults for the zero values of Extractor's fields.
const (
	DefaultMaxPages      = 2000
	DefaultMaxBytes      = 50 << 20 // 50 MiB
	DefaultMinConfidence = 0.5
)

// Thresholds of the decision to OCR a page that has a text layer.
const (
	// MinWordQuality is the lowest WordQuality of a text layer kept as
	// text: below it the layer is garbage (a bad invisible OCR layer, a
	// font mapped to the wrong letters) and the page is OCRed. Real text
	// layers of the corpus score 0.95-1, formula-heavy pages of a maths
	// text down to 0.59.
	MinWordQuality = 0.4
	// ThinTextLetters: a page with fewer letters and digits than this in
	// its text layer is checked for a large image (see largeImagePages).
	ThinTextLetters = 200
	// LargeImagePixels is the size from which an image on a thin page is
	// taken for a scan: an A4 page scanned at 100 dpi is about 1 megapixel.
	LargeImagePixels = 1_000_000
)

// Content types Handle accepts.
const (
	TypePDF  = "application/pdf"
	TypeText = "text/plain"
	TypePNG  = "image/png"
	TypeJPEG = "image/jpeg"
	TypeTIFF = "image/tiff"
)

// Extractor extracts the text of each page of a document. The zero value
// of every field but Blobs is usable.
type Extractor struct {
	// Blobs holds the originals, under Document.Blob.
	Blobs blob.Store
	// MaxPages is the most pages a document may have; more is a permanent
	// error. Default 2000 pages.
	MaxPages int
	// MaxBytes is the largest original accepted, in bytes; larger is a
	// permanent error. Default 50 MiB.
	MaxBytes int64
	// MinConfidence is the lowest Confidence (0..1) a page's text layer may
	// score and still count as digital text; below it the page needs OCR.
	// Default 0.5.
	MinConfidence float64
	// OCR reads the pages that have no usable text layer, and images. Nil
	// leaves such pages with Method none and NeedsOCR set, and refuses
	// images. Share one Engine per process: it bounds OCR workers.
	OCR *ocr.Engine
	// Logger receives page-level warnings. Default slog.Default().
	Logger *slog.Logger
}

// Handle extracts the text of in's document. The output copies
// in.Document and leaves Meta for the runtime to stamp.
func (e *Extractor) Handle(ctx context.Context, in events.DocumentReceived) (events.TextExtracted, error) {
	doc := in.Document
	out := events.TextExtracted{Document: doc}

	b, err := e.read(ctx, doc)
	if err != nil {
		return out, err
	}
	var pages []events.Page
	switch ct := contentType(doc.ContentType, b); ct {
	case TypePDF:
		pages, err = e.pdf(ctx, doc, b, in.Password)
	case TypePNG, TypeJPEG, TypeTIFF:
		pages, err = e.image(ctx, doc, b)
	case TypeText:
		pages, err = e.text(doc, b)
	case TypeDOCX, TypeODT, TypeXLSX, TypeHTML, TypeXHTML, TypeEML, TypeMSG, TypeZip:
		pages, err = e.readFormat(ctx, &out, ct, b)
	default:
		err = pipeline.Permanent(fmt.Errorf("extract: %s: unsupported content type %q", doc.Filename, ct))
	}
	if err != nil {
		return out, err
	}

	out.Pages = pages
	out.PageCount = int32(len(pages))
	// The first 64 KiB of text say the language as well as a whole book.
	var all strings.Builder
	for _, p := range pages {
		if p.Method != events.MethodNone && all.Len() < 64<<10 {
			all.WriteString(p.Text)
			all.WriteByte('\n')
		}
	}
	out.Language = DetectLanguage(all.String())
	return out, nil
}

// read loads the original, refusing it without reading it all when it is
// larger than MaxBytes.
func (e *Extractor) read(ctx context.Context, doc events.Document) ([]byte, error) {
	maxBytes := e.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if doc.SizeBytes > maxBytes {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is %d bytes, over the %d byte limit", doc.Filename, doc.SizeBytes, maxBytes))
	}
	rc, err := e.Blobs.Get(ctx, doc.Blob)
	if errors.Is(err, blob.ErrNotFound) {
		// The key came from the event itself; retrying cannot make it appear.
		return nil, pipeline.Permanent(fmt.Errorf("extract: original of %s: %w", doc.Filename, err))
	}
	if err != nil {
		return nil, fmt.Errorf("extract: get original %s: %w", doc.Blob, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("extract: read original %s: %w", doc.Blob, err)
	}
	if int64(len(b)) > maxBytes {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is over the %d byte limit", doc.Filename, maxBytes))
	}
	if len(b) == 0 {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is empty", doc.Filename))
	}
	return b, nil
}

// contentType decides how to read b. A PDF is recognised by its bytes
// whatever its label, because mail clients send PDFs as
// application/octet-stream or under made-up types; otherwise the declared
// type is trusted unless it is missing or generic, in which case the bytes
// are sniffed.
func contentType(declared string, b []byte) string {
	if bytes.HasPrefix(b, []byte("%PDF-")) {
		return TypePDF
	}
	mt, _, err := mime.ParseMediaType(declared)
	if err == nil && mt != "application/octet-stream" {
		return mt
	}
	// No useful declared type: name it from the bytes the way ingest
	// does (TIFF, zip containers and e-mail included).
	mt, _ = sniff.Detect(bytes.NewReader(b), int64(len(b)))
	return mt
}

func (e *Extractor) pdf(ctx context.Context, doc events.Document, b []byte, password string) ([]events.Page, error) {
	name := doc.Filename
	// The header may follow a few bytes of junk; readers accept up to 1 KiB.
	if !bytes.Contains(b[:min(len(b), 1024)], []byte("%PDF-")) {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is not a PDF: no %%PDF- header", name))
	}
	// ISO 32000 has readers look for %%EOF in the last 1024 bytes; every
	// writer puts it there, so its absence means the upload was cut short.
	if !bytes.Contains(b[max(0, len(b)-1024):], []byte("%%EOF")) {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is truncated: no %%%%EOF marker at the end", name))
	}

	// go-fitz runs opening, page loading and text extraction inside MuPDF's
	// fz_try, so damage comes back as an error; one page's failure is
	// handled below without failing the document. OpenPDF refuses the
	// files that would abort the process instead.
	fd, b, err := mupdf.OpenPDF(b, password)
	if err != nil {
		return nil, openError(name, err)
	}
	defer fd.Close()

	n := fd.NumPage()
	if err := e.checkPageCount(name, n); err != nil {
		return nil, err
	}

	minConf := e.MinConfidence
	if minConf <= 0 {
		minConf = DefaultMinConfidence
	}
	pages := make([]events.Page, n)
	failed := 0
	var thin []int // pages with good but little text: maybe a scan with a stamp
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("extract: %s page %d: %w", name, i+1, err)
		}
		pages[i] = events.Page{Number: int32(i + 1), Method: events.MethodNone, NeedsOCR: true}
		raw, err := fd.Text(i)
		if err != nil {
			// One damaged page must not cost the others; OCR of the
			// rendered page may still recover it.
			failed++
			e.logger().WarnContext(ctx, "extract: page unreadable, left for OCR",
				"document", doc.ID, "file", name, "page", i+1, "err", err)
			continue
		}
		text := cleanText(raw)
		conf := Confidence(raw)
		if text == "" || conf < minConf || WordQuality(text) < MinWordQuality {
			continue
		}
		pages[i] = events.Page{Number: int32(i + 1), Text: text, Method: events.MethodDigital, Confidence: conf}
		if e.OCR != nil && letters(text) < ThinTextLetters {
			thin = append(thin, i)
		}
	}
	if len(thin) > 0 {
		big, err := largeImagePages(b, thin)
		if err != nil {
			// The text layer stands; pdfcpu is stricter than MuPDF and
			// refuses some files MuPDF reads.
			e.logger().WarnContext(ctx, "extract: cannot list page images; pages with little text keep it",
				"document", doc.ID, "file", name, "err", err)
		}
		for _, i := range big {
			pages[i] = events.Page{Number: int32(i + 1), Method: events.MethodNone, NeedsOCR: true}
		}
	}
	if failed == n && e.OCR == nil {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is corrupt: none of its %d pages can be read", name, n))
	}
	if err := e.ocrPages(ctx, name, fd, pages, 0); err != nil {
		return nil, err
	}
	return pages, nil
}

// openError words an error of mupdf.OpenPDF for the uploader of name.
func openError(name string, err error) error {
	var me *mupdf.Error
	if !errors.As(err, &me) {
		return fmt.Errorf("extract: %s: %w", name, err)
	}
	switch me.Reason {
	case mupdf.NegativeCount:
		return pipeline.Permanent(fmt.Errorf("extract: %s is corrupt: its page tree has a negative /Count", name))
	case mupdf.NeedsPassword:
		return pipeline.Permanent(fmt.Errorf("extract: %s is encrypted; upload it with its password or ask the sender for a copy without one", name))
	case mupdf.WrongPassword:
		return pipeline.Permanent(fmt.Errorf("extract: %s is encrypted and the password supplied does not open it: %w", name, me.Err))
	default:
		return pipeline.Permanent(fmt.Errorf("extract: %s is corrupt: %w", name, me.Err))
	}
}

// largeImagePages returns those of pages (0-based) that show an image of
// at least LargeImagePixels: on a page with little text, that is a scan
// (perhaps stamped with a digital page number or header) whose words are
// in the picture. pdfcpu lists images without decoding them; MuPDF, which
// reads the text, has no such call through go-fitz.
func largeImagePages(b []byte, pages []int) ([]int, error) {
	sel := make([]string, len(pages))
	for k, i := range pages {
		sel[k] = strconv.Itoa(i + 1)
	}
	all, err := api.Images(bytes.NewReader(b), sel, pdfconf.New())
	if err != nil {
		return nil, err
	}
	big := map[int]bool{}
	for _, m := range all {
		for _, img := range m {
			if int64(img.Width)*int64(img.Height) >= LargeImagePixels && !img.Thumb {
				big[img.PageNr-1] = true
			}
		}
	}
	var out []int
	for _, i := range pages {
		if big[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

// ocrPages fills in, with OCR, the pages still marked NeedsOCR. dpi 0
// means the Engine's. Without an Engine the pages stay as they are.
func (e *Extractor) ocrPages(ctx context.Context, name string, fd *fitz.Document, pages []events.Page, dpi float64) error {
	if e.OCR == nil {
		return nil
	}
	if dpi <= 0 {
		dpi = e.OCR.DPI()
	}
	var todo []int
	for i, p := range pages {
		if p.NeedsOCR {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	res, err := e.OCR.Pages(ctx, name, fd, todo, dpi)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	for k, i := range todo {
		r := res[k]
		pages[i] = events.Page{Number: int32(i + 1), Text: cleanText(r.Text), Method: events.MethodOCR,
			Confidence: r.Confidence, Rotation: int32(r.Rotation)}
	}
	return nil
}

// image reads a PNG, JPEG or TIFF (every page of a multi-page TIFF) with
// OCR. The dimensions in the header are checked before anything is
// decoded, so a small file claiming a huge image (a decompression bomb)
// is refused without allocating it.
func (e *Extractor) image(ctx context.Context, doc events.Document, b []byte) ([]events.Page, error) {
	name := doc.Filename
	if e.OCR == nil {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is an image and OCR is not configured", name))
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is not a readable image: %w", name, err))
	}
	if px := int64(cfg.Width) * int64(cfg.Height); cfg.Width <= 0 || cfg.Height <= 0 || px > e.OCR.MaxPixels() {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is a %dx%d %s image, over the %d pixel limit", name, cfg.Width, cfg.Height, format, e.OCR.MaxPixels()))
	}
	fd, err := fitz.NewFromMemory(b)
	if err != nil {
		if fd != nil {
			fd.Close()
		}
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s: MuPDF cannot open the image: %w", name, err))
	}
	defer fd.Close()
	n := fd.NumPage()
	if err := e.checkPageCount(name, n); err != nil {
		return nil, err
	}
	// MuPDF sizes an image page from the resolution in its header (72 or
	// 96 dpi when there is none); rendering at the image's own pixel size
	// neither blurs nor inflates it. The first frame's ratio stands for all
	// frames of a TIFF, which scanners write at one resolution.
	bound, err := fd.Bound(0)
	if err != nil || bound.Dx() <= 0 {
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s: MuPDF cannot size the image: %v", name, err))
	}
	dpi := 72 * float64(cfg.Width) / float64(bound.Dx())
	pages := make([]events.Page, n)
	for i := range pages {
		pages[i] = events.Page{Number: int32(i + 1), Method: events.MethodNone, NeedsOCR: true}
	}
	if err := e.ocrPages(ctx, name, fd, pages, dpi); err != nil {
		return nil, err
	}
	return pages, nil
}

func (e *Extractor) checkPageCount(name string, n int) error {
	maxPages := e.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	switch {
	case n <= 0:
		return pipeline.Permanent(fmt.Errorf("extract: %s is corrupt: MuPDF finds no pages", name))
	case n > maxPages:
		return pipeline.Permanent(fmt.Errorf("extract: %s has %d pages, over the %d page limit", name, n, maxPages))
	}
	return nil
}

func (e *Extractor) text(doc events.Document, b []byte) ([]events.Page, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var s string
	if utf8.Valid(b) {
		s = string(b)
	} else {
		// Not UTF-8: Windows-1252 decodes every byte, and is what Italian
		// and English Windows mail clients write when they are not UTF-8.
		d, err := charmap.Windows1252.NewDecoder().Bytes(b)
		if err != nil {
			return nil, pipeline.Permanent(fmt.Errorf("extract: %s: decode text: %w", doc.Filename, err))
		}
		s = string(d)
	}
	conf := Confidence(s)
	minConf := e.MinConfidence
	if minConf <= 0 {
		minConf = DefaultMinConfidence
	}
	text := cleanText(s)
	switch {
	case text == "":
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s has no text", doc.Filename))
	case conf < minConf:
		// OCR cannot help a text file; it is binary data under a text label.
		return nil, pipeline.Permanent(fmt.Errorf("extract: %s is labelled %s but is not readable text (quality %.2f)", doc.Filename, TypeText, conf))
	}
	return []events.Page{{Number: 1, Text: text, Method: events.MethodDigital, Confidence: conf}}, nil
}

// cleanText normalises line ends, drops control characters (PostgreSQL
// text cannot hold NUL, and none of them carry meaning), trims trailing
// spaces, keeps at most one blank line between paragraphs and trims the
// ends. It never drops a printable character.
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, " \t\n\u00a0")
		if strings.TrimSpace(line) == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
			if blank > 0 {
				b.WriteString("\n")
			}
		}
		blank = 0
		b.WriteString(line)
	}
	return b.String()
}

func (e *Extractor) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// letters counts the letters and digits of s.
func letters(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			n++
		}
	}
	return n
}
