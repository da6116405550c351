package extract

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

// corpusDir is the shared corpus, relative to this package.
const corpusDir = "../../../shared/corpus"

// memStore is a blob.Store over a map; Get of a key in errKeys fails with
// a transient error, as a flaky S3 would.
type memStore struct {
	blobs   map[string][]byte
	errKeys map[string]error
}

func (m *memStore) Put(_ context.Context, key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.blobs[key] = b
	return nil
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := m.errKeys[key]; err != nil {
		return nil, err
	}
	b, ok := m.blobs[key]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) Exists(_ context.Context, key string) (bool, error) {
	_, ok := m.blobs[key]
	return ok, nil
}

func (m *memStore) Ping(context.Context) error { return nil }

func newStore() *memStore {
	return &memStore{blobs: map[string][]byte{}, errKeys: map[string]error{}}
}

// readFile reads a test file, failing with a clear message when the shared
// corpus is not where the tests expect it.
func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("test file missing (the shared corpus is expected at /work/shared/corpus, i.e. %s from this package): %v", corpusDir, err)
	}
	return b
}

// extract runs an Extractor over b declared as contentType.
func extract(tb testing.TB, e *Extractor, name, contentType string, b []byte) (events.TextExtracted, error) {
	tb.Helper()
	store := newStore()
	store.blobs[name] = b
	e.Blobs = store
	in := events.DocumentReceived{Document: events.Document{
		ID: "doc-" + name, Filename: filepath.Base(name), ContentType: contentType,
		SizeBytes: int64(len(b)), Blob: name,
	}}
	out, err := e.Handle(context.Background(), in)
	if err == nil && out.Document != in.Document {
		tb.Errorf("%s: output Document %+v, want the input's %+v", name, out.Document, in.Document)
	}
	if out.Meta != (events.Meta{}) {
		tb.Errorf("%s: Meta was set (%+v); the runtime stamps it", name, out.Meta)
	}
	return out, err
}

type manifestEntry struct {
	Path      string `json:"path"`
	Pages     int    `json:"pages"`
	Encrypted bool   `json:"encrypted"`
	HasText   bool   `json:"has_text"`
}

func readManifest(tb testing.TB) []manifestEntry {
	tb.Helper()
	b := readFile(tb, filepath.Join(corpusDir, "real", "manifest.jsonl"))
	var es []manifestEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e manifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatalf("manifest line %q: %v", sc.Text(), err)
		}
		es = append(es, e)
	}
	if len(es) == 0 {
		tb.Fatal("manifest.jsonl lists no files")
	}
	return es
}

// checkPages asserts what must hold of every extraction: pages numbered
// from 1, and a page either has digital text with a confidence or none and
// needs OCR.
func checkPages(t *testing.T, out events.TextExtracted) {
	t.Helper()
	if int(out.PageCount) != len(out.Pages) {
		t.Errorf("PageCount %d, but %d pages", out.PageCount, len(out.Pages))
	}
	for i, p := range out.Pages {
		if p.Number != int32(i+1) {
			t.Errorf("page %d has Number %d", i+1, p.Number)
		}
		switch p.Method {
		case events.MethodDigital:
			if p.Text == "" || p.NeedsOCR || p.Confidence < DefaultMinConfidence || p.Confidence > 1 {
				t.Errorf("digital page %d: text %d bytes, NeedsOCR %v, Confidence %v", p.Number, len(p.Text), p.NeedsOCR, p.Confidence)
			}
		case events.MethodNone:
			if p.Text != "" || !p.NeedsOCR || p.Confidence != 0 {
				t.Errorf("page %d without text: text %q, NeedsOCR %v, Confidence %v", p.Number, p.Text, p.NeedsOCR, p.Confidence)
			}
		default:
			t.Errorf("page %d: unexpected method %q", p.Number, p.Method)
		}
	}
}

func TestRealCorpus(t *testing.T) {
	for _, m := range readManifest(t) {
		t.Run(m.Path, func(t *testing.T) {
			b := readFile(t, filepath.Join(corpusDir, "real", m.Path))
			out, err := extract(t, &Extractor{}, m.Path, TypePDF, b)
			switch {
			case m.Encrypted:
				if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "encrypted") {
					t.Fatalf("encrypted PDF: got error %v, want a permanent error mentioning encryption", err)
				}
				return
			case strings.HasPrefix(m.Path, "017-"):
				// The xref of this file is damaged past what MuPDF repairs
				// (it finds no page tree); pdfinfo still counts 4 pages. The
				// document must then fail as corrupt, not crash or pass empty.
				if err != nil {
					if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "corrupt") {
						t.Fatalf("unreadable PDF: got %v, want a permanent 'corrupt' error", err)
					}
					t.Logf("MuPDF cannot read it: %v", err)
					return
				}
			}
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			checkPages(t, out)
			if len(out.Pages) != m.Pages {
				t.Fatalf("got %d pages, manifest says %d", len(out.Pages), m.Pages)
			}
			for _, p := range out.Pages {
				switch {
				case m.HasText && p.Text == "":
					t.Errorf("page %d: no text (NeedsOCR %v), manifest says the PDF has text", p.Number, p.NeedsOCR)
				case !m.HasText && p.Text != "":
					// The manifest's has_text means "no meaningful text";
					// several of these files still draw a label or two
					// ("Background", "Hello, World!") as real text, which
					// is digital text and must be kept.
					t.Logf("page %d: manifest says no text, but the text layer holds %q", p.Number, p.Text)
				}
			}
			if !m.HasText {
				var none int
				for _, p := range out.Pages {
					if p.NeedsOCR {
						none++
					}
				}
				t.Logf("%d of %d pages need OCR", none, len(out.Pages))
			}
		})
	}
}

// TestImageOnly checks the pages of scans: no text layer, so NeedsOCR.
func TestImageOnly(t *testing.T) {
	files := []string{
		"testdata/image-only.pdf",
		filepath.Join(corpusDir, "real/007-imagemagick-images/imagemagick-CCITTFaxDecode.pdf"),
		filepath.Join(corpusDir, "real/019-grayscale-image/grayscale-image.pdf"),
		filepath.Join(corpusDir, "real/023-cmyk-image/cmyk-image.pdf"),
		filepath.Join(corpusDir, "insurance-dev/0003/attachment-1.scanned.pdf"),
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := extract(t, &Extractor{}, f, TypePDF, readFile(t, f))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			checkPages(t, out)
			if len(out.Pages) == 0 {
				t.Fatal("no pages")
			}
			for _, p := range out.Pages {
				if !p.NeedsOCR || p.Method != events.MethodNone {
					t.Errorf("page %d: Method %q NeedsOCR %v, want none/true for a scan", p.Number, p.Method, p.NeedsOCR)
				}
			}
			if out.Language != "" {
				t.Errorf("Language %q for a document without text, want \"\"", out.Language)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	pdf := readFile(t, "testdata/pdflatex-4-pages.pdf")
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	tests := []struct {
		name        string
		extractor   Extractor
		contentType string
		data        []byte
		want        string // in the error message
	}{
		{"encrypted", Extractor{}, TypePDF, readFile(t, "testdata/encrypted.pdf"), "encrypted"},
		{"truncated", Extractor{}, TypePDF, pdf[:len(pdf)/2], "truncated"},
		{"truncated tail", Extractor{}, TypePDF, pdf[:len(pdf)-10], "truncated"},
		{"random bytes", Extractor{}, TypePDF, random, "not a PDF"},
		{"random bytes sniffed", Extractor{}, "application/octet-stream", random, "unsupported content type"},
		{"PDF header then garbage", Extractor{}, TypePDF, append([]byte("%PDF-1.7\n"), append(random[:4096:4096], "\n%%EOF\n"...)...), "corrupt"},
		{"empty", Extractor{}, TypePDF, nil, "empty"},
		{"too many pages", Extractor{MaxPages: 3}, TypePDF, pdf, "over the 3 page limit"},
		{"too large", Extractor{MaxBytes: 1000}, TypePDF, pdf, "byte limit"},
		{"unsupported type", Extractor{}, "image/gif", []byte("GIF89a...."), `"image/gif"`},
		{"mislabelled PDF still checked", Extractor{}, "image/png", pdf[:len(pdf)/2], "truncated"},
		{"binary labelled text", Extractor{}, TypeText, bytes.Repeat([]byte{0, 1, 2, 0xfe}, 100), "not readable text"},
		{"blank text", Extractor{}, TypeText, []byte(" \n\t\n"), "no text"},
		// MuPDF would abort the process counting these pages.
		{"negative page count", Extractor{}, TypePDF, bytes.Replace(testenv.ManyPagesPDF(1), []byte("/Count 1"), []byte("/Count -1"), 1), "negative /Count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := extract(t, &tt.extractor, "f/"+tt.name, tt.contentType, tt.data)
			if !pipeline.IsPermanent(err) {
				t.Fatalf("got error %v, want a permanent one", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestFileBlobStore reads the original from the file blob store the
// pipeline uses, under its content address.
func TestFileBlobStore(t *testing.T) {
	store, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(corpusDir, "insurance-dev", "0001")
	var truth struct {
		Fields struct {
			Plates []string `json:"targhe"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "truth.json")), &truth); err != nil || len(truth.Fields.Plates) == 0 {
		t.Fatalf("truth.json: %v, plates %q", err, truth.Fields.Plates)
	}
	key, sum, size, err := blob.PutContent(context.Background(), store, bytes.NewReader(readFile(t, filepath.Join(dir, "attachment-1.pdf"))))
	if err != nil {
		t.Fatal(err)
	}
	in := events.DocumentReceived{Document: events.Document{ID: "d1", Filename: "Elenco_veicoli.pdf", ContentType: TypePDF, SizeBytes: size, SHA256: sum, Blob: key}}
	out, err := (&Extractor{Blobs: store}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Document != in.Document || out.PageCount != 1 || out.Language != "it" {
		t.Fatalf("got Document %+v, %d pages, language %q", out.Document, out.PageCount, out.Language)
	}
	// Every plate of the vehicle table must be in the text.
	for _, plate := range truth.Fields.Plates {
		if !strings.Contains(out.Pages[0].Text, plate) {
			t.Errorf("plate %s missing from the text", plate)
		}
	}
}

func TestBlobStoreErrors(t *testing.T) {
	store := newStore()
	store.errKeys["flaky"] = errors.New("connection reset by peer")
	e := &Extractor{Blobs: store}

	_, err := e.Handle(context.Background(), events.DocumentReceived{Document: events.Document{Blob: "flaky", ContentType: TypePDF}})
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("read failure: got %v, want a transient error with the cause", err)
	}
	_, err = e.Handle(context.Background(), events.DocumentReceived{Document: events.Document{Blob: "missing", ContentType: TypePDF}})
	if !pipeline.IsPermanent(err) || !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing blob: got %v, want a permanent ErrNotFound", err)
	}
}

// TestConcurrent runs one Extractor on several documents at once (MuPDF
// documents are not safe for concurrent use, so each call must open its
// own) and expects the results of one at a time.
func TestConcurrent(t *testing.T) {
	files := []string{"testdata/multicolumn.pdf", "testdata/elenco-veicoli-it.pdf", "testdata/pdflatex-4-pages.pdf", "testdata/image-only.pdf"}
	store := newStore()
	for _, f := range files {
		store.blobs[f] = readFile(t, f)
	}
	e := &Extractor{Blobs: store}
	handle := func(f string) (events.TextExtracted, error) {
		return e.Handle(context.Background(), events.DocumentReceived{Document: events.Document{Filename: f, Blob: f, ContentType: TypePDF}})
	}
	want := map[string]events.TextExtracted{}
	for _, f := range files {
		out, err := handle(f)
		if err != nil {
			t.Fatal(err)
		}
		want[f] = out
	}
	const rounds = 4
	errs := make(chan error, rounds*len(files))
	var wg sync.WaitGroup
	for range rounds {
		for _, f := range files {
			wg.Go(func() {
				out, err := handle(f)
				switch {
				case err != nil:
					errs <- err
				case !reflect.DeepEqual(out, want[f]):
					errs <- fmt.Errorf("%s: concurrent result differs from the sequential one", f)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCanceled(t *testing.T) {
	store := newStore()
	store.blobs["a.pdf"] = readFile(t, "testdata/pdflatex-4-pages.pdf")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Extractor{Blobs: store}).Handle(ctx, events.DocumentReceived{Document: events.Document{Blob: "a.pdf", ContentType: TypePDF}})
	if !errors.Is(err, context.Canceled) || pipeline.IsPermanent(err) {
		t.Fatalf("got %v, want a transient context.Canceled", err)
	}
}

// TestMulticolumn checks reading order on a two-column LaTeX page: the
// last sentence of the left column comes whole, and before the first
// sentence of the right column.
func TestMulticolumn(t *testing.T) {
	out, err := extract(t, &Extractor{}, "multicolumn.pdf", TypePDF, readFile(t, "testdata/multicolumn.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	page := out.Pages[0].Text
	col1 := "Nulla malesuada porttitor diam. Donec felis erat,\ncongue non, volutpat at, tincidunt tristique, libero."
	col2 := "pellentesque ante. Phasellus adipiscing semper elit."
	i, j := strings.Index(page, col1), strings.Index(page, col2)
	if i < 0 || j < 0 {
		t.Fatalf("column texts not found whole (left at %d, right at %d) in page 1:\n%s", i, j, page)
	}
	if i > j {
		t.Fatalf("right column (at %d) comes before the left one (at %d)", j, i)
	}
	// Interleaved columns would put right-column text between these lines.
	if between := page[i+len(col1) : j]; strings.Count(between, "\n") > 3 {
		t.Errorf("text between the end of column 1 and the start of column 2:\n%s", between)
	}
}

func TestLanguage(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"testdata/elenco-veicoli-it.pdf", "it"},
		{filepath.Join(corpusDir, "insurance-dev/0003/attachment-1.digital.pdf"), "it"},
		{"testdata/pdflatex-4-pages.pdf", "en"},
		{filepath.Join(corpusDir, "real/021-pdfa/crazyones-pdfa.pdf"), "en"},
		{filepath.Join(corpusDir, "real/009-pdflatex-geotopo/GeoTopo-komprimiert.pdf"), "de"},
		{"testdata/multicolumn.pdf", "la"}, // lorem ipsum
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			out, err := extract(t, &Extractor{}, tt.file, TypePDF, readFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if out.Language != tt.want {
				t.Errorf("Language %q, want %q", out.Language, tt.want)
			}
		})
	}
}

// TestInsuranceDev extracts every PDF of the Italian development set:
// scans need OCR, digital files have text that is never taken for a
// language other than Italian, and nearly all are recognised as Italian
// (a bare table may honestly stay unknown).
func TestInsuranceDev(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "insurance-dev", "*", "*.pdf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no PDFs under %s/insurance-dev (the shared corpus is expected at /work/shared/corpus): %v", corpusDir, err)
	}
	digital, italian := 0, 0
	for _, f := range files {
		out, err := extract(t, &Extractor{}, f, TypePDF, readFile(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		checkPages(t, out)
		scanned := strings.Contains(filepath.Base(f), ".scanned.")
		for _, p := range out.Pages {
			if p.NeedsOCR != scanned {
				t.Errorf("%s page %d: NeedsOCR %v", f, p.Number, p.NeedsOCR)
			}
		}
		if scanned {
			continue
		}
		digital++
		switch out.Language {
		case "it":
			italian++
		case "":
		default:
			t.Errorf("%s: language %q", f, out.Language)
		}
	}
	if italian*10 < digital*8 {
		t.Errorf("only %d of %d digital PDFs recognised as Italian", italian, digital)
	}
}

func TestPlainText(t *testing.T) {
	const it = "Spett.le Broker,\r\nin allegato la richiesta di quotazione per la polizza della nostra società.\r\n\r\n\r\nCordiali saluti, è un piacere.\r\n"
	tests := []struct {
		name, contentType string
		data              []byte
		want              string
	}{
		{"utf-8", "text/plain; charset=utf-8", []byte(it), "Spett.le Broker,\nin allegato la richiesta di quotazione per la polizza della nostra società.\n\nCordiali saluti, è un piacere."},
		{"bom", TypeText, append([]byte("\xef\xbb\xbf"), "Hello\x00 world"...), "Hello world"},
		{"windows-1252", "text/plain; charset=windows-1252", []byte("La societ\xe0 \x80 100"), "La società € 100"},
		{"sniffed", "", []byte("plain words\n"), "plain words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := extract(t, &Extractor{}, tt.name+".txt", tt.contentType, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			checkPages(t, out)
			if len(out.Pages) != 1 || out.Pages[0].Text != tt.want {
				t.Fatalf("pages %+v, want one with %q", out.Pages, tt.want)
			}
		})
	}
	out, err := extract(t, &Extractor{}, "it.txt", TypeText, []byte(it+" Il contraente dichiara che non ci sono sinistri nel periodo."))
	if err != nil || out.Language != "it" {
		t.Errorf("Italian text: language %q, err %v", out.Language, err)
	}
}

func TestConfidence(t *testing.T) {
	tests := []struct {
		text     string
		min, max float64
	}{
		{"", 0, 0},
		{" \n\t", 0, 0},
		{"Polizza n. 123/2026 — € 1.500,00 (IVA inclusa).", 1, 1},
		{"حبيبي habibi", 1, 1},
		{"\ufffd\ufffd\ufffd\ufffd", 0, 0},
		{"ab\ufffd\ufffd", 0.5, 0.5},
		{"\ue000\ue001\ue002x", 0.25, 0.25}, // private-use glyph IDs
		{"\x01\x02\x03abc", 0.5, 0.5},
		{"soft\u00adhyphen", 1, 1},
	}
	for _, tt := range tests {
		if got := Confidence(tt.text); got < tt.min || got > tt.max {
			t.Errorf("Confidence(%q) = %v, want in [%v, %v]", tt.text, got, tt.min, tt.max)
		}
	}
}

func TestDetectLanguage(t *testing.T) {
	tests := []struct{ text, want string }{
		{"Il contraente dichiara che i dati della polizza sono veri e che non ci sono sinistri negli ultimi anni.", "it"},
		{"The insured declares that the data of this policy are true and that there were no claims.", "en"},
		{"Der Versicherungsnehmer erklärt, dass die Angaben in dem Antrag wahr sind und dass es keine Schäden gab.", "de"},
		{"Le contractant déclare que les données de la police sont vraies et qu'il n'y a pas eu de sinistres dans les années.", "fr"},
		{"El tomador declara que los datos de la póliza son verdaderos y que no hubo siniestros en los últimos años por la empresa.", "es"},
		{"GH461XW FY682SR 92.000,00 RCA Iveco S-Way 490", ""},
		{"il the", ""},
		{"il the di and", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := DetectLanguage(tt.text); got != tt.want {
			t.Errorf("DetectLanguage(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

// BenchmarkExtractDigital extracts every digital PDF of the real corpus and
// reports pages per second.
func BenchmarkExtractDigital(b *testing.B) {
	type file struct {
		name string
		data []byte
	}
	var files []file
	for _, m := range readManifest(b) {
		if m.HasText && !m.Encrypted {
			files = append(files, file{m.Path, readFile(b, filepath.Join(corpusDir, "real", m.Path))})
		}
	}
	store := newStore()
	for _, f := range files {
		store.blobs[f.name] = f.data
	}
	e := &Extractor{Blobs: store}
	pages := 0
	b.ResetTimer()
	for b.Loop() {
		for _, f := range files {
			out, err := e.Handle(context.Background(), events.DocumentReceived{Document: events.Document{Filename: f.name, Blob: f.name, ContentType: TypePDF}})
			if err != nil {
				b.Fatal(fmt.Errorf("%s: %w", f.name, err))
			}
			pages += len(out.Pages)
		}
	}
	b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
}
