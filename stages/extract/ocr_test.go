package extract

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"prismflow/pipeline/testenv"
	"prismflow/stages/internal/pdfconf"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	fitz "github.com/gen2brain/go-fitz"
	"github.com/pdfcpu/pdfcpu/pkg/api"

	"prismflow/pipeline"
	"prismflow/schemas/events"
	"prismflow/stages/extract/ocr"
)

// ocrEngine is shared by the tests of this package, as one process shares
// one Engine; a missing tesseract fails the test naming the package.
var (
	ocrOnce   sync.Once
	ocrShared *ocr.Engine
	ocrErr    error
)

func engine(tb testing.TB) *ocr.Engine {
	tb.Helper()
	ocrOnce.Do(func() { ocrShared, ocrErr = ocr.New(context.Background(), ocr.Config{}) })
	if ocrErr != nil {
		tb.Fatalf("OCR tests need tesseract (Debian packages tesseract-ocr tesseract-ocr-ita tesseract-ocr-eng tesseract-ocr-osd): %v", ocrErr)
	}
	return ocrShared
}

func scannedAttachments(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir, "insurance-dev", "*", "attachment-*.scanned.pdf"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no scanned attachments under %s/insurance-dev (err %v)", corpusDir, err)
	}
	return files
}

// digitalText is the text layer of a PDF, the truth for its scanned twin.
func digitalText(tb testing.TB, path string) string {
	tb.Helper()
	fd, err := fitz.New(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	defer fd.Close()
	var b strings.Builder
	for i := range fd.NumPage() {
		s, err := fd.Text(i)
		if err != nil {
			tb.Fatalf("%s page %d: %v", path, i+1, err)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}

// wordRecall is the share of truth's words (a multiset, lower case) found
// in got.
func wordRecall(truth, got string) float64 {
	have := map[string]int{}
	for _, w := range strings.Fields(strings.ToLower(got)) {
		have[w]++
	}
	total, found := 0, 0
	for _, w := range strings.Fields(strings.ToLower(truth)) {
		total++
		if have[w] > 0 {
			have[w]--
			found++
		}
	}
	if total == 0 {
		return 0
	}
	return float64(found) / float64(total)
}

// cer is the character error rate the tests judge OCR by (ocr.CER).
var cer = ocr.CER

func TestCER(t *testing.T) {
	for _, tc := range []struct {
		truth, got string
		want       float64
	}{
		{"abc", "abc", 0}, {"abc", "abd", 1.0 / 3}, {"a  b\nc", "a b c", 0}, {"kitten", "sitting", 0.5},
	} {
		if got := cer(tc.truth, tc.got); got != tc.want {
			t.Errorf("cer(%q, %q) = %v, want %v", tc.truth, tc.got, got, tc.want)
		}
	}
}

// tesseractCLI reads a PNG with the plain tesseract command, as a user
// would, for the comparison.
func tesseractCLI(tb testing.TB, pngPath string) string {
	tb.Helper()
	cmd := exec.Command("tesseract", pngPath, "-", "-l", ocr.DefaultLanguages)
	cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("tesseract CLI (Debian package tesseract-ocr) on %s: %v", pngPath, err)
	}
	return string(out)
}

func renderPage(tb testing.TB, path string, page int, dpi float64) *image.Gray {
	tb.Helper()
	fd, err := fitz.New(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	defer fd.Close()
	g, err := ocr.Render(fd, page, dpi)
	if err != nil {
		tb.Fatalf("render %s page %d: %v", path, page+1, err)
	}
	return g
}

func writePNG(tb testing.TB, path string, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	b := withDPI(buf.Bytes(), 300)
	if path != "" {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// withDPI adds a pHYs chunk to an encoded PNG (image/png writes none), so
// that the tesseract CLI knows the resolution the page was rendered at
// just as prismflow tells it: the comparison is then of the same image.
func withDPI(b []byte, dpi float64) []byte {
	ppm := uint32(dpi/0.0254 + 0.5)
	chunk := make([]byte, 4+4+9+4)
	binary.BigEndian.PutUint32(chunk, 9)
	copy(chunk[4:], "pHYs")
	binary.BigEndian.PutUint32(chunk[8:], ppm)
	binary.BigEndian.PutUint32(chunk[12:], ppm)
	chunk[16] = 1 // unit: metre
	binary.BigEndian.PutUint32(chunk[17:], crc32.ChecksumIEEE(chunk[4:17]))
	const ihdrEnd = 8 + 4 + 4 + 13 + 4 // signature, IHDR length, type, data, CRC
	return slices.Concat(b[:ihdrEnd], chunk, b[ihdrEnd:])
}

// TestOCRScanned: every scanned attachment reads back with at least 95% of
// its digital twin's words and no more character errors than the tesseract
// CLI makes on the same rendered page.
func TestOCRScanned(t *testing.T) {
	eng := engine(t)
	for _, f := range scannedAttachments(t) {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			t.Parallel()
			truth := digitalText(t, strings.Replace(f, ".scanned.pdf", ".digital.pdf", 1))
			out, err := extract(t, &Extractor{OCR: eng}, f, TypePDF, readFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			for _, p := range out.Pages {
				if p.Method != events.MethodOCR || p.NeedsOCR || p.Confidence <= 0.5 || p.Confidence > 1 || p.Rotation != 0 {
					t.Errorf("page %d: Method %q NeedsOCR %v Confidence %v Rotation %d, want an upright OCR page with confidence", p.Number, p.Method, p.NeedsOCR, p.Confidence, p.Rotation)
				}
				got.WriteString(p.Text + "\n")
			}
			if r := wordRecall(truth, got.String()); r < 0.95 {
				t.Errorf("OCR found %.1f%% of the digital twin's words, want >= 95%%\n%s", 100*r, got.String())
			}
			if out.Language != "it" {
				t.Errorf("language %q, want it", out.Language)
			}
			var cli strings.Builder
			for i := range out.Pages {
				p := filepath.Join(t.TempDir(), fmt.Sprintf("page-%d.png", i+1))
				writePNG(t, p, renderPage(t, f, i, ocr.DefaultDPI))
				cli.WriteString(tesseractCLI(t, p) + "\n")
			}
			ours, theirs := cer(truth, got.String()), cer(truth, cli.String())
			t.Logf("CER prismflow %.4f, tesseract CLI %.4f", ours, theirs)
			if ours > theirs {
				t.Errorf("CER %.4f is worse than the tesseract CLI's %.4f on the same page images", ours, theirs)
			}
		})
	}
}

// TestOCRMixed: in a PDF of a digital page, a scanned one, the same scan
// stamped with a digital page number (a thin text layer over a large
// image) and the digital page again, only the two scans are OCRed.
func TestOCRMixed(t *testing.T) {
	eng := engine(t)
	dir := filepath.Join(corpusDir, "insurance-dev", "0003")
	var mixed bytes.Buffer
	digital, err := os.Open(filepath.Join(dir, "attachment-1.digital.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer digital.Close()
	scanned, err := os.Open(filepath.Join(dir, "attachment-1.scanned.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer scanned.Close()
	_ = pdfconf.New() // pdfcpu must not create a config folder in $HOME
	stampedPath := filepath.Join(t.TempDir(), "stamped.pdf")
	if err := api.AddTextWatermarksFile(filepath.Join(dir, "attachment-1.scanned.pdf"), stampedPath, nil, true,
		"Pagina 2 di 4 - protocollo 2026/0042", "pos:bl, scale:0.4 abs, rot:0", nil); err != nil {
		t.Fatalf("stamp: %v", err)
	}
	stamped, err := os.Open(stampedPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stamped.Close()
	digital2, err := os.Open(filepath.Join(dir, "attachment-1.digital.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	defer digital2.Close()
	if err := api.MergeRaw([]io.ReadSeeker{digital, scanned, stamped, digital2}, &mixed, false, nil); err != nil {
		t.Fatalf("merge: %v", err)
	}
	out, err := extract(t, &Extractor{OCR: eng}, "mixed.pdf", TypePDF, mixed.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []events.ExtractionMethod{events.MethodDigital, events.MethodOCR, events.MethodOCR, events.MethodDigital}
	if len(out.Pages) != len(want) {
		t.Fatalf("%d pages, want %d", len(out.Pages), len(want))
	}
	for i, p := range out.Pages {
		if p.Method != want[i] || p.NeedsOCR || p.Text == "" {
			t.Errorf("page %d: Method %q NeedsOCR %v text %d bytes, want %q with text", p.Number, p.Method, p.NeedsOCR, len(p.Text), want[i])
		}
	}
	for _, i := range []int{1, 2} {
		if r := wordRecall(out.Pages[0].Text, out.Pages[i].Text); r < 0.95 {
			t.Errorf("OCR page %d has %.1f%% of the digital page's words", i+1, 100*r)
		}
	}
	if !strings.Contains(out.Pages[2].Text, "Pagina 2 di 4") {
		t.Errorf("stamped page lost its stamp:\n%s", out.Pages[2].Text)
	}
}

// rotate90 turns g a quarter turn clockwise.
func rotate90(g *image.Gray) *image.Gray {
	w, h := g.Bounds().Dx(), g.Bounds().Dy()
	r := image.NewGray(image.Rect(0, 0, h, w))
	for y := range h {
		for x := range w {
			r.Pix[x*r.Stride+(h-1-y)] = g.Pix[y*g.Stride+x]
		}
	}
	return r
}

// TestOCRImages: a PNG, a PNG turned a quarter turn and a two-page TIFF
// give the text of the scan they were made from.
func TestOCRImages(t *testing.T) {
	eng := engine(t)
	dir := filepath.Join(corpusDir, "insurance-dev", "0006")
	truth := digitalText(t, filepath.Join(dir, "attachment-1.digital.pdf"))
	page := renderPage(t, filepath.Join(dir, "attachment-1.scanned.pdf"), 0, 300)
	other := renderPage(t, filepath.Join(corpusDir, "insurance-dev", "0003", "attachment-1.scanned.pdf"), 0, 300)
	otherTruth := digitalText(t, filepath.Join(corpusDir, "insurance-dev", "0003", "attachment-1.digital.pdf"))

	for _, tc := range []struct {
		name, contentType string
		file              []byte
		truths            []string
		rotation          int32
	}{
		{"page.png", TypePNG, writePNG(t, "", page), []string{truth}, 0},
		{"rotated.png", TypePNG, writePNG(t, "", rotate90(page)), []string{truth}, 270},
		{"pages.tiff", TypeTIFF, multiPageTIFF(t, page, other), []string{truth, otherTruth}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := extract(t, &Extractor{OCR: eng}, tc.name, tc.contentType, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Pages) != len(tc.truths) {
				t.Fatalf("%d pages, want %d", len(out.Pages), len(tc.truths))
			}
			for i, p := range out.Pages {
				if p.Method != events.MethodOCR || p.Rotation != tc.rotation {
					t.Errorf("page %d: Method %q Rotation %d, want ocr, %d", p.Number, p.Method, p.Rotation, tc.rotation)
				}
				if r := wordRecall(tc.truths[i], p.Text); r < 0.95 {
					t.Errorf("page %d: %.1f%% of the words, want >= 95%%\n%s", p.Number, 100*r, p.Text)
				}
			}
		})
	}
}

// multiPageTIFF writes uncompressed 8-bit grey pages as one TIFF (the
// x/image encoder writes a single page).
func multiPageTIFF(tb testing.TB, pages ...*image.Gray) []byte {
	tb.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{'I', 'I', 42, 0, 8, 0, 0, 0})
	for i, g := range pages {
		w, h := g.Bounds().Dx(), g.Bounds().Dy()
		const entries = 11
		ifd := b.Len()
		res := ifd + 2 + entries*12 + 4 // the rational 300/1 follows the IFD
		data := res + 8
		next := 0
		if i < len(pages)-1 {
			next = data + w*h
		}
		binary.Write(&b, le, uint16(entries))
		tag := func(t, typ uint16, v uint32) {
			binary.Write(&b, le, t)
			binary.Write(&b, le, typ)
			binary.Write(&b, le, uint32(1))
			binary.Write(&b, le, v)
		}
		tag(256, 4, uint32(w))    // ImageWidth
		tag(257, 4, uint32(h))    // ImageLength
		tag(258, 3, 8)            // BitsPerSample
		tag(259, 3, 1)            // Compression: none
		tag(262, 3, 1)            // Photometric: black is zero
		tag(273, 4, uint32(data)) // StripOffsets
		tag(278, 4, uint32(h))    // RowsPerStrip
		tag(279, 4, uint32(w*h))  // StripByteCounts
		tag(282, 5, uint32(res))  // XResolution
		tag(283, 5, uint32(res))  // YResolution
		tag(296, 3, 2)            // ResolutionUnit: inch
		binary.Write(&b, le, uint32(next))
		binary.Write(&b, le, [2]uint32{300, 1})
		for y := range h {
			b.Write(g.Pix[y*g.Stride : y*g.Stride+w])
		}
	}
	return b.Bytes()
}

// TestOCRLimits: bombs, huge documents, huge pages and encryption fail
// fast with a permanent error that says why.
func TestOCRLimits(t *testing.T) {
	eng := engine(t)
	small, err := ocr.New(context.Background(), ocr.Config{MaxPixels: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	scan := readFile(t, filepath.Join(corpusDir, "insurance-dev", "0003", "attachment-1.scanned.pdf"))
	for _, tc := range []struct {
		name, contentType string
		e                 *Extractor
		file              []byte
		password          string
		want              string
	}{
		{"bomb.png", TypePNG, &Extractor{OCR: eng}, testenv.BombPNG(100000, 100000), "", "100000x100000 png image, over the 100000000 pixel limit"},
		{"10000-pages.pdf", TypePDF, &Extractor{OCR: eng}, testenv.ManyPagesPDF(10000), "", "has 10000 pages, over the 2000 page limit"},
		{"scan.pdf", TypePDF, &Extractor{OCR: small}, scan, "", "over the 1000000 pixel limit"},
		{"no-ocr.png", TypePNG, &Extractor{}, testenv.BombPNG(10, 10), "", "OCR is not configured"},
		{"password.pdf", TypePDF, &Extractor{OCR: eng}, readFile(t, filepath.Join(corpusDir, "real", "005-libreoffice-writer-password", "libreoffice-writer-password.pdf")), "", "encrypted"},
		{"password.pdf", TypePDF, &Extractor{OCR: eng}, readFile(t, filepath.Join(corpusDir, "real", "005-libreoffice-writer-password", "libreoffice-writer-password.pdf")), "wrong", "password supplied does not open it"},
	} {
		t.Run(tc.name+"/"+tc.want, func(t *testing.T) {
			start := time.Now()
			_, err := extractWithPassword(t, tc.e, tc.name, tc.contentType, tc.file, tc.password)
			if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a permanent error containing %q", err, tc.want)
			}
			// Failing fast is the point: nothing was rendered or decoded.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s to refuse", d)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	f := filepath.Join(corpusDir, "real", "005-libreoffice-writer-password", "libreoffice-writer-password.pdf")
	out, err := extractWithPassword(t, &Extractor{}, "password.pdf", TypePDF, readFile(t, f), "openpassword")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Pages) == 0 || out.Pages[0].Method != events.MethodDigital || out.Pages[0].Text == "" {
		t.Fatalf("pages %+v, want digital text", out.Pages)
	}
}

func extractWithPassword(tb testing.TB, e *Extractor, name, contentType string, b []byte, password string) (events.TextExtracted, error) {
	tb.Helper()
	store := newStore()
	store.blobs[name] = b
	e.Blobs = store
	in := events.DocumentReceived{Password: password, Document: events.Document{
		ID: "doc-" + name, Filename: name, ContentType: contentType, SizeBytes: int64(len(b)), Blob: name,
	}}
	return e.Handle(context.Background(), in)
}
