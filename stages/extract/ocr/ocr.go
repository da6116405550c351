// Package ocr reads the text of rendered pages with Tesseract.
//
// An Engine renders each page with MuPDF (go-fitz) to 8-bit grey at the
// requested resolution, pipes it to a `tesseract` process as a binary PGM
// and reads back tesseract's own plain text and its hOCR, from which it
// takes the mean word confidence (0..1) and the page's orientation.
//
// Orientation and skew: a page is first read as upright with tesseract's
// default segmentation (psm 3, what the tesseract CLI does). When that
// reading is poor (mean word confidence under 0.7, as for a page lying on
// its side) it is read again with page segmentation mode 1 (automatic
// segmentation with orientation and script detection), in which tesseract
// itself turns pages that lie at 90, 180 or 270 degrees and reports the
// angle per line (hOCR textangle); the more confident reading wins and
// Result.Rotation is the angle most of its words were read at. Reading
// every page with psm 1 was measured and rejected: it costs 0.3 s more per
// page and its segmentation read one corpus page slightly worse than psm 3
// (CER 0.3337 vs 0.3325). Small skew (a few degrees, as from a sheet fed
// askew) is corrected by tesseract's own line finding, which fits
// baselines at any small angle, so no separate deskew pass is made.
// Measured on the 7 scanned insurance-dev pages (300 dpi, one core,
// OMP_THREAD_LIMIT=1, tesseract 5.3.0): psm 3 took 2.54 s on a page, psm 1
// 2.86 s (+0.3 s for orientation detection), while a separate OSD run
// (psm 0) cost 1.68 s at 300 dpi and was unreliable at 100 dpi
// (confidence 1.07): detection inside the recognition run is the cheapest.
//
// Why a tesseract process per page and not libtesseract through cgo
// (gosseract): measured, starting tesseract and loading ita+eng costs
// 0.31 s against 2.5-2.9 s of recognition per page, about 11%. For that
// price the process gives what an in-process engine cannot: a page that
// runs past PageTimeout is killed (libtesseract offers no cancel through
// gosseract), a crash on hostile input costs one page and not the stage,
// the ~200 MB tesseract holds per page is returned to the system when the
// page ends instead of growing the Go process (in process, two workers'
// 2x200 MB would alone break the stage's 300 MB budget), and the build
// keeps no libtesseract-dev/libleptonica-dev dependency. The page goes to
// tesseract as a grey PGM on stdin, not as a PNG: MuPDF's PNG encoding of
// an A4 page at 300 dpi took 1.39 s against 0.87 s for the raw pixmap. Each process runs with
// OMP_THREAD_LIMIT=1: tesseract's OpenMP threads fight each other and our
// own workers on small machines (6x slower on 2 cores).
//
// Guarantees:
//   - At most Workers pages are rendered or recognised at once across every
//     document the Engine serves, so one Engine per process caps OCR at
//     the cores available however many documents arrive together; a page
//     holds its worker slot from rendering to the end of recognition, so
//     rendered images never pile up in memory.
//   - Pages larger than MaxPixels at the requested resolution are refused
//     before rendering, and a page that takes longer than PageTimeout is
//     stopped; both are permanent errors (pipeline.Permanent).
//   - Results come back in the order of the pages asked for.
package ocr

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	fitz "github.com/gen2brain/go-fitz"
	"golang.org/x/sync/errgroup"

	"prismflow/pipeline"
)

// Defaults for the zero values of Config's fields.
const (
	DefaultLanguages   = "ita+eng"
	DefaultDPI         = 300
	DefaultMaxPixels   = 100_000_000
	DefaultPageTimeout = 120 * time.Second
)

// Config configures an Engine. The zero value uses the defaults.
type Config struct {
	// Languages for tesseract, joined by '+'. Default ita+eng.
	Languages string
	// DPI is the resolution PDF pages are rendered at. Default 300.
	DPI float64
	// MaxPixels is the largest rendered page, in pixels; larger pages are
	// refused before rendering. Default 100 megapixels.
	MaxPixels int64
	// PageTimeout bounds rendering and recognising one page. Default 120s.
	PageTimeout time.Duration
	// Workers is how many pages are processed at once by this Engine, over
	// all documents. Default GOMAXPROCS.
	Workers int
	// Command is the tesseract executable. Default "tesseract" on PATH.
	Command string
}

// Engine recognises pages. It is safe for concurrent use; create one per
// process so that Workers bounds the whole process.
type Engine struct {
	cfg  Config
	slot chan struct{}
}

// Result is the text of one page.
type Result struct {
	Text string
	// Confidence is the mean word confidence, 0..1; 0 when no word was read.
	Confidence float64
	// Rotation is the angle in degrees (0, 90, 180, 270) the page was
	// turned to read most of its words.
	Rotation int
}

// New checks that tesseract and every language asked for are installed
// and returns an Engine. A missing tool is reported here, at start, rather
// than at the first scanned page.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Languages == "" {
		cfg.Languages = DefaultLanguages
	}
	if cfg.DPI <= 0 {
		cfg.DPI = DefaultDPI
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.PageTimeout <= 0 {
		cfg.PageTimeout = DefaultPageTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Command == "" {
		cfg.Command = "tesseract"
	}
	path, err := exec.LookPath(cfg.Command)
	if err != nil {
		return nil, fmt.Errorf("ocr: %s not found (install the Debian package tesseract-ocr): %w", cfg.Command, err)
	}
	cfg.Command = path
	out, err := exec.CommandContext(ctx, path, "--list-langs").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ocr: %s --list-langs: %w: %s", path, err, bytes.TrimSpace(out))
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	for _, l := range append(strings.Split(cfg.Languages, "+"), "osd") {
		if !have[l] {
			return nil, fmt.Errorf("ocr: tesseract language %q is not installed (install the Debian package tesseract-ocr-%s)", l, l)
		}
	}
	return &Engine{cfg: cfg, slot: make(chan struct{}, cfg.Workers)}, nil
}

// DPI is the resolution PDF pages are rendered at.
func (e *Engine) DPI() float64 { return e.cfg.DPI }

// MaxPixels is the largest page accepted, in pixels.
func (e *Engine) MaxPixels() int64 { return e.cfg.MaxPixels }

// Pages recognises the pages (0-based) of doc rendered at dpi, in
// parallel, and returns their results in the same order. name labels
// errors. doc must not be used by the caller until Pages returns.
func (e *Engine) Pages(ctx context.Context, name string, doc *fitz.Document, pages []int, dpi float64) ([]Result, error) {
	// Refuse oversized pages before rendering any: MuPDF allocates the
	// whole pixmap up front, which is how a decompression bomb or a
	// billboard-sized page would exhaust memory.
	for _, p := range pages {
		b, err := doc.Bound(p)
		if err != nil {
			return nil, pipeline.Permanent(fmt.Errorf("ocr: %s page %d: %w", name, p+1, err))
		}
		w := int64(float64(b.Dx()) * dpi / 72)
		h := int64(float64(b.Dy()) * dpi / 72)
		if w <= 0 || h <= 0 || w*h > e.cfg.MaxPixels {
			return nil, pipeline.Permanent(fmt.Errorf("ocr: %s page %d is %dx%d pixels at %.0f dpi, over the %d pixel limit", name, p+1, w, h, dpi, e.cfg.MaxPixels))
		}
	}
	out := make([]Result, len(pages))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.cfg.Workers)
	for i, p := range pages {
		g.Go(func() error {
			select {
			case e.slot <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-e.slot }()
			r, err := e.page(gctx, name, doc, p, dpi)
			if err != nil {
				return err
			}
			out[i] = r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func (e *Engine) page(ctx context.Context, name string, doc *fitz.Document, p int, dpi float64) (Result, error) {
	pctx, cancel := context.WithTimeout(ctx, e.cfg.PageTimeout)
	defer cancel()
	start := time.Now()
	gray, err := Render(doc, p, dpi)
	if err != nil {
		return Result{}, pipeline.Permanent(fmt.Errorf("ocr: %s page %d: render: %w", name, p+1, err))
	}
	// Rendering an A4 page at 300 dpi leaves about 70 MB of garbage (go-fitz
	// copies MuPDF's RGBA pixmap twice) against a few MB that stay live.
	// Left to the pacer, the heap grows to twice its live size before it
	// is collected, and that doubled garbage took the stage over 300 MB on
	// a 100-page scan; collecting it here, once per page (milliseconds
	// against seconds of OCR), keeps the peak to one render's worth.
	runtime.GC()
	r, err := e.Recognize(pctx, gray, dpi)
	if err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			// Our own deadline, not the caller's: the same page would
			// time out again on retry.
			return Result{}, pipeline.Permanent(fmt.Errorf("ocr: %s page %d took longer than %s (after %s)", name, p+1, e.cfg.PageTimeout, time.Since(start).Round(time.Millisecond)))
		}
		return Result{}, fmt.Errorf("ocr: %s page %d: %w", name, p+1, err)
	}
	return r, nil
}

// Render draws page p (0-based) of doc at dpi in 8-bit grey. The RGBA
// image MuPDF returns is dropped as soon as it is converted: a grey page
// is a quarter of its size, and it is what tesseract binarises anyway.
func Render(doc *fitz.Document, p int, dpi float64) (*image.Gray, error) {
	rgba, err := doc.ImageDPI(p, dpi)
	if err != nil {
		return nil, err
	}
	b := rgba.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		src := rgba.Pix[y*rgba.Stride : y*rgba.Stride+4*b.Dx()]
		dst := g.Pix[y*g.Stride : y*g.Stride+b.Dx()]
		for x := range dst {
			r, gg, bb := uint32(src[4*x]), uint32(src[4*x+1]), uint32(src[4*x+2])
			// ITU-R BT.601 luma, as image/color.GrayModel computes it.
			dst[x] = uint8((19595*r + 38470*gg + 7471*bb + 1<<15) >> 16)
		}
	}
	return g, nil
}

// uprightConfidence is the mean word confidence below which a page read
// as upright is read again with orientation detection. Upright scans of
// the corpus score 0.85-0.95; a page lying on its side read as upright
// scores far less, being mostly noise.
const uprightConfidence = 0.7

// Recognize runs tesseract on a grey image at dpi. The page is first read
// as upright with tesseract's default segmentation (the same as the
// tesseract CLI's, so the text is never worse than the CLI's on upright
// pages); only when that reading is poor is it read again with orientation
// detection (psm 1), and the more confident reading is kept.
func (e *Engine) Recognize(ctx context.Context, img *image.Gray, dpi float64) (Result, error) {
	r, vertical, err := e.run(ctx, img, dpi, "3")
	if err != nil || (r.Confidence >= uprightConfidence && !vertical) {
		return r, err
	}
	turned, _, err := e.run(ctx, img, dpi, "1")
	if err != nil {
		return Result{}, err
	}
	// A page on its side is often read well by psm 3 too (tesseract
	// follows vertical lines), but only psm 1 says which way it lies.
	if vertical || turned.Confidence > r.Confidence {
		return turned, nil
	}
	return r, nil
}

// run reads img with one page segmentation mode; vertical reports that
// most words were found standing on end, as on a page lying on its side.
func (e *Engine) run(ctx context.Context, img *image.Gray, dpi float64, psm string) (r Result, vertical bool, err error) {
	dir, err := os.MkdirTemp("", "prismflow-ocr-")
	if err != nil {
		return Result{}, false, fmt.Errorf("ocr: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	base := filepath.Join(dir, "page")
	cmd := exec.CommandContext(ctx, e.cfg.Command, "stdin", base,
		"-l", e.cfg.Languages, "--psm", psm, "--dpi", strconv.Itoa(int(dpi+0.5)), "txt", "hocr")
	cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
	cmd.Stdin = pgmReader(img)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Result{}, false, ctx.Err()
		}
		return Result{}, false, fmt.Errorf("tesseract: %w: %s", err, lastLine(stderr.String()))
	}
	text, err := os.ReadFile(base + ".txt")
	if err != nil {
		return Result{}, false, fmt.Errorf("tesseract output: %w", err)
	}
	hocr, err := os.ReadFile(base + ".hocr")
	if err != nil {
		return Result{}, false, fmt.Errorf("tesseract output: %w", err)
	}
	h := parseHOCR(hocr)
	// Tesseract ends each page with a form feed.
	return Result{Text: strings.TrimRight(string(text), "\f\n "), Confidence: h.confidence, Rotation: h.rotation}, h.vertical, nil
}

// pgmReader streams img as a binary PGM; the pixels are not copied when
// the image is contiguous, which Render's always are.
func pgmReader(img *image.Gray) io.Reader {
	b := img.Bounds()
	header := strings.NewReader(fmt.Sprintf("P5\n%d %d\n255\n", b.Dx(), b.Dy()))
	if img.Stride == b.Dx() {
		return io.MultiReader(header, bytes.NewReader(img.Pix[:b.Dx()*b.Dy()]))
	}
	var buf bytes.Buffer
	for y := range b.Dy() {
		buf.Write(img.Pix[y*img.Stride : y*img.Stride+b.Dx()])
	}
	return io.MultiReader(header, &buf)
}

// hocrElem matches the lines and words of tesseract's hOCR: class, title
// and, for words, the start of the word's text.
var hocrElem = regexp.MustCompile(`class='(ocr_line|ocr_caption|ocr_header|ocr_textfloat|ocrx_word)'[^>]*?title=["']([^"']*)["'][^>]*>([^<]*)`)

type hocrSummary struct {
	confidence float64 // mean word confidence, 0..1
	rotation   int     // textangle most words were read at
	vertical   bool    // most words of 3+ letters are taller than wide
}

func parseHOCR(b []byte) hocrSummary {
	var sum float64
	var words, long, tall int
	angle := 0
	byAngle := map[int]int{}
	for _, m := range hocrElem.FindAllSubmatch(b, -1) {
		class, title := string(m[1]), string(m[2])
		if class != "ocrx_word" {
			angle = 0
			if v, ok := titleField(title, "textangle"); ok {
				angle = int(v) % 360
			}
			continue
		}
		if v, ok := titleField(title, "x_wconf"); ok {
			sum += v
			words++
			byAngle[angle]++
		}
		if utf8.RuneCount(m[3]) >= 3 {
			if box, ok := titleFields(title, "bbox", 4); ok {
				long++
				if box[3]-box[1] > 1.5*(box[2]-box[0]) {
					tall++
				}
			}
		}
	}
	if words == 0 {
		return hocrSummary{}
	}
	h := hocrSummary{confidence: sum / float64(words) / 100, vertical: long > 0 && 2*tall > long}
	best := 0
	for a, n := range byAngle {
		if n > best || (n == best && a < h.rotation) {
			h.rotation, best = a, n
		}
	}
	return h
}

// titleField reads a numeric property of an hOCR title ("bbox 1 2 3 4;
// x_wconf 91").
func titleField(title, key string) (float64, bool) {
	for _, f := range strings.Split(title, ";") {
		f = strings.TrimSpace(f)
		if v, ok := strings.CutPrefix(f, key+" "); ok {
			n, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return n, err == nil
		}
	}
	return 0, false
}

// titleFields reads n numbers of an hOCR title property ("bbox 1 2 3 4").
func titleFields(title, key string, n int) ([]float64, bool) {
	for _, f := range strings.Split(title, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), key+" "); ok {
			parts := strings.Fields(v)
			if len(parts) < n {
				return nil, false
			}
			out := make([]float64, n)
			for i := range n {
				x, err := strconv.ParseFloat(parts[i], 64)
				if err != nil {
					return nil, false
				}
				out[i] = x
			}
			return out, true
		}
	}
	return nil, false
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}
