// Command benchextract measures the extract stage against the tools a user
// would otherwise reach for, on the same pages in one run (make
// bench-extract):
//
//   - digital PDFs of the shared corpus (corpus/real): pages/s of
//     prismflow's text extraction vs poppler's pdftotext;
//   - the scanned insurance-dev attachments: pages/s and character error
//     rate (against the text layer of each attachment's digital twin) of
//     prismflow's OCR vs the tesseract CLI on the same rendered pages vs
//     ocrmypdf;
//   - peak resident memory of the extract stage on a 100-page scanned
//     document, measured in a child process so that nothing else this
//     command holds is counted.
//
// Every tool gets the same parallelism: GOMAXPROCS workers (tesseract CLI
// pages run that many at once with OMP_THREAD_LIMIT=1; ocrmypdf gets
// --jobs GOMAXPROCS).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"image/png"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fitz "github.com/gen2brain/go-fitz"
	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"golang.org/x/sync/errgroup"

	"prismflow/connectors/blob"
	"prismflow/schemas/events"
	"prismflow/stages/extract"
	"prismflow/stages/extract/ocr"
)

func main() {
	corpus := flag.String("corpus", "../shared/corpus", "shared corpus folder")
	rssOf := flag.String("rss", "", "internal: extract this PDF and print peak RSS")
	rssOnly := flag.Bool("rss-only", false, "measure only the peak memory on 100 scanned pages")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	model.ConfigPath = "disable"
	if *rssOf != "" {
		if err := rss(ctx, *rssOf); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(ctx, *corpus, *rssOnly); err != nil {
		log.Fatal(err)
	}
}

type row struct {
	what, tool string
	pages      int
	d          time.Duration
	cer        float64 // <0: not measured
}

func run(ctx context.Context, corpus string, rssOnly bool) error {
	if !rssOnly {
		if err := speed(ctx, corpus); err != nil {
			return err
		}
	}
	return peakMemory(ctx, corpus)
}

func speed(ctx context.Context, corpus string) error {
	var rows []row
	r, err := digital(ctx, corpus)
	if err != nil {
		return err
	}
	rows = append(rows, r...)
	r, err = scanned(ctx, corpus)
	if err != nil {
		return err
	}
	rows = append(rows, r...)

	fmt.Printf("\n%-24s %-22s %6s %9s %8s %6s\n", "PAGES", "TOOL", "PAGES", "SECONDS", "PAGES/S", "CER")
	for _, r := range rows {
		c := "-"
		if r.cer >= 0 {
			c = fmt.Sprintf("%.4f", r.cer)
		}
		fmt.Printf("%-24s %-22s %6d %9.2f %8.2f %6s\n", r.what, r.tool, r.pages, r.d.Seconds(), float64(r.pages)/r.d.Seconds(), c)
	}
	return nil
}

func peakMemory(ctx context.Context, corpus string) error {
	// Peak memory on a 100-page scan, in a fresh process.
	big, err := hundredPages(corpus)
	if err != nil {
		return err
	}
	defer os.Remove(big)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, self, "-rss", big).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rss run: %w: %s", err, out)
	}
	fmt.Printf("\n%s", out)
	return nil
}

type memStore map[string][]byte

func (m memStore) Put(context.Context, string, io.Reader) error { return nil }
func (m memStore) Get(_ context.Context, k string) (io.ReadCloser, error) {
	b, ok := m[k]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
func (m memStore) Exists(_ context.Context, k string) (bool, error) { _, ok := m[k]; return ok, nil }
func (m memStore) Ping(context.Context) error                       { return nil }

func handle(ctx context.Context, e *extract.Extractor, path string) (events.TextExtracted, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return events.TextExtracted{}, err
	}
	e.Blobs = memStore{path: b}
	return e.Handle(ctx, events.DocumentReceived{Document: events.Document{
		ID: path, Filename: filepath.Base(path), ContentType: extract.TypePDF, SizeBytes: int64(len(b)), Blob: path}})
}

// digital times both tools over every text-bearing, unencrypted PDF of
// corpus/real, one file at a time each, as each would run in a pipeline.
func digital(ctx context.Context, corpus string) ([]row, error) {
	f, err := os.Open(filepath.Join(corpus, "real", "manifest.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var files []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Path      string `json:"path"`
			Encrypted bool   `json:"encrypted"`
			HasText   bool   `json:"has_text"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.HasText && !m.Encrypted {
			files = append(files, filepath.Join(corpus, "real", m.Path))
		}
	}
	ours, theirs := row{what: "digital corpus/real", tool: "prismflow extract", cer: -1}, row{what: "digital corpus/real", tool: "pdftotext", cer: -1}
	e := &extract.Extractor{}
	const rounds = 5 // the files are small: repeat to measure more than process start
	for range rounds {
		for _, p := range files {
			start := time.Now()
			out, err := handle(ctx, e, p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			ours.d += time.Since(start)
			ours.pages += len(out.Pages)
			start = time.Now()
			if out, err := exec.CommandContext(ctx, "pdftotext", "-q", p, "-").Output(); err != nil {
				return nil, fmt.Errorf("pdftotext (Debian package poppler-utils) %s: %w %s", p, err, out)
			}
			theirs.d += time.Since(start)
			theirs.pages += len(out.Pages)
		}
	}
	return []row{ours, theirs}, nil
}

func truthOf(scan string) (string, error) {
	fd, err := fitz.New(strings.Replace(scan, ".scanned.pdf", ".digital.pdf", 1))
	if err != nil {
		return "", err
	}
	defer fd.Close()
	var b strings.Builder
	for i := range fd.NumPage() {
		s, err := fd.Text(i)
		if err != nil {
			return "", err
		}
		b.WriteString(s + "\n")
	}
	return b.String(), nil
}

func scanned(ctx context.Context, corpus string) ([]row, error) {
	scans, err := filepath.Glob(filepath.Join(corpus, "insurance-dev", "*", "attachment-*.scanned.pdf"))
	if err != nil || len(scans) == 0 {
		return nil, fmt.Errorf("no scanned attachments in %s/insurance-dev", corpus)
	}
	workers := runtime.GOMAXPROCS(0)
	truth := make([]string, len(scans))
	for i, s := range scans {
		if truth[i], err = truthOf(s); err != nil {
			return nil, err
		}
	}
	what := fmt.Sprintf("%d scanned insurance-dev", len(scans))

	// prismflow: every document at once, as a busy stage would see them.
	eng, err := ocr.New(ctx, ocr.Config{})
	if err != nil {
		return nil, err
	}
	e := &extract.Extractor{OCR: eng}
	texts := make([]string, len(scans))
	pages := 0
	var mu sync.Mutex
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i, s := range scans {
		g.Go(func() error {
			out, err := handle(gctx, e, s)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, p := range out.Pages {
				b.WriteString(p.Text + "\n")
			}
			mu.Lock()
			defer mu.Unlock()
			texts[i] = b.String()
			pages += len(out.Pages)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	ours := row{what: what, tool: "prismflow OCR", pages: pages, d: time.Since(start), cer: meanCER(truth, texts)}

	// tesseract CLI on the same renders (rendering not timed).
	dir, err := os.MkdirTemp("", "benchextract-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var pngs [][]string
	for i, s := range scans {
		fd, err := fitz.New(s)
		if err != nil {
			return nil, err
		}
		var ps []string
		for p := range fd.NumPage() {
			img, err := ocr.Render(fd, p, ocr.DefaultDPI)
			if err != nil {
				fd.Close()
				return nil, err
			}
			name := filepath.Join(dir, fmt.Sprintf("%d-%d.png", i, p))
			var buf bytes.Buffer
			if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
				fd.Close()
				return nil, err
			}
			if err := os.WriteFile(name, withDPI(buf.Bytes(), ocr.DefaultDPI), 0o644); err != nil {
				fd.Close()
				return nil, err
			}
			ps = append(ps, name)
		}
		fd.Close()
		pngs = append(pngs, ps)
	}
	cli := make([][]string, len(scans))
	for i := range cli {
		cli[i] = make([]string, len(pngs[i]))
	}
	start = time.Now()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, ps := range pngs {
		for j, p := range ps {
			g.Go(func() error {
				cmd := exec.CommandContext(gctx, "tesseract", p, "-", "-l", ocr.DefaultLanguages)
				cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
				out, err := cmd.Output()
				if err != nil {
					return fmt.Errorf("tesseract CLI (Debian package tesseract-ocr): %w", err)
				}
				cli[i][j] = string(out)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cliTexts := make([]string, len(scans))
	for i := range cli {
		cliTexts[i] = strings.Join(cli[i], "\n")
	}
	theirs := row{what: what, tool: "tesseract CLI (png)", pages: pages, d: time.Since(start), cer: meanCER(truth, cliTexts)}

	// ocrmypdf, one document after another with --jobs = cores.
	rows := []row{ours, theirs}
	if _, err := exec.LookPath("ocrmypdf"); err != nil {
		log.Printf("ocrmypdf not installed (Debian package ocrmypdf; make bench-extract installs it): skipped")
		return rows, nil
	}
	omp := make([]string, len(scans))
	start = time.Now()
	for i, s := range scans {
		side := filepath.Join(dir, fmt.Sprintf("%d.txt", i))
		cmd := exec.CommandContext(ctx, "ocrmypdf", "-q", "--force-ocr", "-l", ocr.DefaultLanguages,
			"--jobs", fmt.Sprint(workers), "--output-type", "pdf", "--sidecar", side, s, filepath.Join(dir, fmt.Sprintf("%d.pdf", i)))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ocrmypdf %s: %w: %s", s, err, out)
		}
		b, err := os.ReadFile(side)
		if err != nil {
			return nil, err
		}
		omp[i] = string(b)
	}
	rows = append(rows, row{what: what, tool: "ocrmypdf", pages: pages, d: time.Since(start), cer: meanCER(truth, omp)})
	return rows, nil
}

// withDPI adds a pHYs chunk to an encoded PNG (image/png writes none) so
// that the tesseract CLI is told the resolution prismflow tells it.
func withDPI(b []byte, dpi float64) []byte {
	ppm := uint32(dpi/0.0254 + 0.5)
	chunk := make([]byte, 4+4+9+4)
	binary.BigEndian.PutUint32(chunk, 9)
	copy(chunk[4:], "pHYs")
	binary.BigEndian.PutUint32(chunk[8:], ppm)
	binary.BigEndian.PutUint32(chunk[12:], ppm)
	chunk[16] = 1 // unit: metre
	binary.BigEndian.PutUint32(chunk[17:], crc32.ChecksumIEEE(chunk[4:17]))
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	return slices.Concat(b[:ihdrEnd], chunk, b[ihdrEnd:])
}

// meanCER is the character error rate over all documents together.
func meanCER(truth, got []string) float64 {
	var dist, n int
	for i := range truth {
		d, l := ocr.Errors(truth[i], got[i])
		dist, n = dist+d, n+l
	}
	return float64(dist) / float64(n)
}

// hundredPages merges the scanned attachments, repeated, into one
// 100-page PDF.
func hundredPages(corpus string) (string, error) {
	scans, err := filepath.Glob(filepath.Join(corpus, "insurance-dev", "*", "attachment-*.scanned.pdf"))
	if err != nil || len(scans) == 0 {
		return "", fmt.Errorf("no scanned attachments")
	}
	var in []io.ReadSeeker
	for i := range 100 {
		b, err := os.ReadFile(scans[i%len(scans)])
		if err != nil {
			return "", err
		}
		in = append(in, bytes.NewReader(b))
	}
	f, err := os.CreateTemp("", "benchextract-100-*.pdf")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := api.MergeRaw(in, f, false, nil); err != nil {
		return "", fmt.Errorf("merge: %w", err)
	}
	return f.Name(), nil
}

// rss extracts path with OCR and prints this process's peak RSS.
func rss(ctx context.Context, path string) error {
	eng, err := ocr.New(ctx, ocr.Config{})
	if err != nil {
		return err
	}
	start := time.Now()
	out, err := handle(ctx, &extract.Extractor{OCR: eng}, path)
	if err != nil {
		return err
	}
	// Only this process: a child's ru_maxrss on Linux starts from the
	// parent's high-water mark (the child shares the parent's memory until
	// exec), so RUSAGE_CHILDREN would report this process again.
	var self syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return err
	}
	fmt.Printf("100-page scan: %d pages OCRed in %.1fs (%.2f pages/s); peak RSS of the extract process %d MB; %d OCR workers (each tesseract process holds its own ~200 MB while it reads a page)\n",
		len(out.Pages), time.Since(start).Seconds(), float64(len(out.Pages))/time.Since(start).Seconds(),
		self.Maxrss/1024, runtime.GOMAXPROCS(0))
	return nil
}
