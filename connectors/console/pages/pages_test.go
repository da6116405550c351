package pages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/image/tiff"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
)

const (
	fourPages = "testdata/pdflatex-4-pages.pdf"            // py-pdf sample-files 004
	encrypted = "testdata/libreoffice-writer-password.pdf" // user password "openpassword"
)

// countingStore is a real file store that counts the originals read, to
// tell a render (which reads one) from a cache hit (which does not).
type countingStore struct {
	*blob.File
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s.gets.Add(1)
	return s.File.Get(ctx, key)
}

func newStore(t testing.TB) *countingStore {
	t.Helper()
	f, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &countingStore{File: f}
}

// put stores b content addressed, as ingest does, and returns its key.
func put(t testing.TB, s blob.Store, b []byte) string {
	t.Helper()
	key, _, _, err := blob.PutContent(context.Background(), s, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRenderer(t testing.TB, s blob.Store, dir string, maxBytes int64) *Renderer {
	t.Helper()
	r, err := NewRenderer(s, dir, maxBytes, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// decode checks that b is a PNG width px wide and returns it.
func decode(t *testing.T, b []byte, width int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w < width-1 || w > width+1 {
		t.Fatalf("image is %d px wide, want %d", w, width)
	}
	return img
}

// inked is the share of pixels darker than mid grey.
func inked(img image.Image) float64 {
	b := img.Bounds()
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if g := color.GrayModel.Convert(img.At(x, y)).(color.Gray); g.Y < 128 {
				dark++
			}
		}
	}
	return float64(dark) / float64(b.Dx()*b.Dy())
}

func TestPNGDrawsPDFPages(t *testing.T) {
	s := newStore(t)
	key := put(t, s, read(t, fourPages))
	r := newRenderer(t, s, t.TempDir(), 64<<20)
	ctx := context.Background()

	first, err := r.PNG(ctx, key, "", 1, 800)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, first, 800)
	// A Letter or A4 page in portrait, with text on it.
	if ratio := float64(img.Bounds().Dy()) / float64(img.Bounds().Dx()); ratio < 1.25 || ratio > 1.45 {
		t.Errorf("page 1 is %v: not a portrait page", img.Bounds())
	}
	if ink := inked(img); ink < 0.002 || ink > 0.5 {
		t.Errorf("page 1 has %.4f of its pixels inked: not a page of text", ink)
	}
	last, err := r.PNG(ctx, key, "", 4, 800)
	if err != nil {
		t.Fatal(err)
	}
	decode(t, last, 800)
	if bytes.Equal(first, last) {
		t.Error("pages 1 and 4 are the same image")
	}

	for _, c := range []struct{ asked, want int }{{50, MinWidth}, {5000, MaxWidth}, {1200, 1200}} {
		b, err := r.PNG(ctx, key, "", 2, c.asked)
		if err != nil {
			t.Fatal(err)
		}
		decode(t, b, c.want)
	}

	for _, n := range []int{0, -1, 5} {
		if _, err := r.PNG(ctx, key, "", n, 800); !pipeline.IsPermanent(err) {
			t.Errorf("page %d of 4: got %v, want a permanent error", n, err)
		}
	}
}

func TestPNGEncryptedPDF(t *testing.T) {
	s := newStore(t)
	key := put(t, s, read(t, encrypted))
	r := newRenderer(t, s, t.TempDir(), 64<<20)
	ctx := context.Background()
	for _, pw := range []string{"", "wrong"} {
		_, err := r.PNG(ctx, key, pw, 1, 600)
		if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "encrypted") {
			t.Errorf("password %q: got %v, want a permanent error saying it is encrypted", pw, err)
		}
	}
	b, err := r.PNG(ctx, key, "openpassword", 1, 600)
	if err != nil {
		t.Fatal(err)
	}
	if ink := inked(decode(t, b, 600)); ink == 0 {
		t.Error("decrypted page is blank")
	}
}

// testImage is a 300x200 picture: white with a black block.
func testImage() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			c := color.RGBA{255, 255, 255, 255}
			if x >= 50 && x < 150 && y >= 50 && y < 150 {
				c = color.RGBA{0, 0, 0, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func TestPNGDrawsImages(t *testing.T) {
	encoders := map[string]func(io.Writer, image.Image) error{
		"png":  png.Encode,
		"jpeg": func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, &jpeg.Options{Quality: 90}) },
		"tiff": func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) },
	}
	s := newStore(t)
	r := newRenderer(t, s, t.TempDir(), 64<<20)
	for name, enc := range encoders {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := enc(&buf, testImage()); err != nil {
				t.Fatal(err)
			}
			b, err := r.PNG(context.Background(), put(t, s, buf.Bytes()), "", 1, 600)
			if err != nil {
				t.Fatal(err)
			}
			img := decode(t, b, 600)
			if h := img.Bounds().Dy(); h < 399 || h > 401 {
				t.Errorf("image drawn %v, want the 3:2 picture at 600x400", img.Bounds())
			}
			// The block covers a sixth of the picture.
			if ink := inked(img); ink < 0.14 || ink > 0.19 {
				t.Errorf("%.3f of the drawn image is dark, want about 1/6", ink)
			}
		})
	}
}

func TestPNGRefusesBadFiles(t *testing.T) {
	negative := bytes.Replace(testenv.ManyPagesPDF(1), []byte("/Count 1"), []byte("/Count -1"), 1)
	four := read(t, fourPages)
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"text":           {[]byte("Gentile cliente,\nin allegato la polizza.\n"), "unsupported format"},
		"zip":            {[]byte("PK\x03\x04 not really a document"), "unsupported format"},
		"corrupt pdf":    {[]byte("%PDF-1.7\n1 0 obj <</Type /Catalog>> garbage\n%%EOF\n"), "PDF"},
		"truncated pdf":  {four[:len(four)/3], "corrupt"},
		"negative count": {negative, "negative /Count"},
		"png bomb":       {testenv.BombPNG(100_000, 100_000), "pixel limit"},
		"empty":          {nil, "empty"},
	}
	s := newStore(t)
	r := newRenderer(t, s, t.TempDir(), 64<<20)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			key := "sha256/xx/" + strings.ReplaceAll(name, " ", "-")
			if err := s.Put(context.Background(), key, bytes.NewReader(c.b)); err != nil {
				t.Fatal(err)
			}
			_, err := r.PNG(context.Background(), key, "", 1, 600)
			if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want a permanent error mentioning %q", err, c.want)
			}
		})
	}
	if _, err := r.PNG(context.Background(), "sha256/00/missing", "", 1, 600); !pipeline.IsPermanent(err) || !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing blob: got %v, want a permanent not found", err)
	}
}

// TestCacheHit: a cached page is served without reading the original,
// also by a new renderer over the same folder.
func TestCacheHit(t *testing.T) {
	s := newStore(t)
	key := put(t, s, read(t, fourPages))
	dir := t.TempDir()
	r := newRenderer(t, s, dir, 64<<20)
	ctx := context.Background()
	want, err := r.PNG(ctx, key, "", 3, 700)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.PNG(ctx, key, "", 3, 700)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || s.gets.Load() != 1 {
		t.Errorf("second request read the original again (%d reads) or differs", s.gets.Load())
	}

	// A leftover temporary file is cleared at start, other files kept.
	if err := os.WriteFile(filepath.Join(dir, "abc-123.tmp"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := newRenderer(t, s, dir, 64<<20)
	got, err = r2.PNG(ctx, key, "", 3, 700)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || s.gets.Load() != 1 {
		t.Errorf("a restarted renderer read the original again (%d reads) or serves other bytes", s.gets.Load())
	}
	if _, err := os.Stat(filepath.Join(dir, "abc-123.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left at start: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Errorf("a file not the cache's was touched: %v", err)
	}
	// Another width is another image.
	if _, err := r2.PNG(ctx, key, "", 3, 701); err != nil || s.gets.Load() != 2 {
		t.Errorf("another width: err %v, %d reads, want a render", err, s.gets.Load())
	}
}

// cachedPages lists which pages of key at width are in r's cache folder.
func cachedPages(r *Renderer, key string, width int, pages ...int) []int {
	var out []int
	for _, p := range pages {
		if _, err := os.Stat(r.cache.path(cacheKey(key, p, width))); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestCacheEvictsLeastRecentlyUsed, in the running renderer and in the
// order rebuilt at start.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	s := newStore(t)
	key := put(t, s, read(t, fourPages))
	ctx := context.Background()
	sizes := map[int]int64{}
	big := newRenderer(t, s, t.TempDir(), 64<<20)
	for p := 1; p <= 3; p++ {
		b, err := big.PNG(ctx, key, "", p, 900)
		if err != nil {
			t.Fatal(err)
		}
		sizes[p] = int64(len(b))
	}

	// Room for pages 1 and 3 but not all three.
	budget := sizes[1] + sizes[3] + min(sizes[1], sizes[2], sizes[3])/2
	if budget >= sizes[1]+sizes[2]+sizes[3] || budget < sizes[2]+sizes[3] || budget < sizes[1]+sizes[2] {
		t.Fatalf("page sizes %v too uneven for this test", sizes)
	}
	r := newRenderer(t, s, t.TempDir(), budget)
	for _, p := range []int{1, 2, 1, 3} { // page 1 used again: page 2 is the least recent
		if _, err := r.PNG(ctx, key, "", p, 900); err != nil {
			t.Fatal(err)
		}
	}
	if got := cachedPages(r, key, 900, 1, 2, 3); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("cached pages %v, want [1 3]", got)
	}
	if n, used := r.cache.stats(); n != 2 || used != sizes[1]+sizes[3] || used > budget {
		t.Errorf("cache holds %d images, %d bytes, want 2 and %d (budget %d)", n, used, sizes[1]+sizes[3], budget)
	}

	// Restarted over the same folder with room for one image: the most
	// recently used (page 3) stays.
	dir := r.cache.dir
	r2 := newRenderer(t, s, dir, max(sizes[1], sizes[3]))
	if got := cachedPages(r2, key, 900, 1, 2, 3); fmt.Sprint(got) != "[3]" {
		t.Errorf("after restart cached pages %v, want [3]", got)
	}
}

// TestConcurrentRequestsRenderOnce: identical requests at once share one
// render; different pages render in parallel.
func TestConcurrentRequestsRenderOnce(t *testing.T) {
	s := newStore(t)
	key := put(t, s, read(t, fourPages))
	r := newRenderer(t, s, t.TempDir(), 64<<20)
	const callers = 16
	results := make([][]byte, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = r.PNG(context.Background(), key, "", 1+i%2, 1000)
		})
	}
	close(start)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(results[i], results[i%2]) {
			t.Errorf("caller %d got other bytes than caller %d for the same page", i, i%2)
		}
	}
	if bytes.Equal(results[0], results[1]) {
		t.Error("pages 1 and 2 are the same image")
	}
	if n := s.gets.Load(); n != 2 {
		t.Errorf("%d renders for 2 distinct images asked %d times", n, callers)
	}
}

// gatedStore holds every read of an original until the test opens the
// gate, and says when one has begun.
type gatedStore struct {
	*countingStore
	entered chan struct{}
	gate    chan struct{}
}

func (s *gatedStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s.entered <- struct{}{}
	<-s.gate
	return s.countingStore.Get(ctx, key)
}

// TestCallerGivesUp: a caller whose context ends gets its error at once,
// and the render it started still completes and is cached for the next.
func TestCallerGivesUp(t *testing.T) {
	s := &gatedStore{countingStore: newStore(t), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	key := put(t, s.File, read(t, fourPages))
	r := newRenderer(t, s, t.TempDir(), 64<<20)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.PNG(cancelled, key, "", 2, 900); !errors.Is(err, context.Canceled) {
		t.Errorf("caller cancelled before asking got %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.PNG(ctx, key, "", 2, 900)
		errc <- err
	}()
	<-s.entered // the render has begun
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("caller who gave up got %v, want context.Canceled", err)
	}
	close(s.gate)
	eventually(t, "the abandoned render to reach the cache", func() bool {
		return len(cachedPages(r, key, 900, 2)) == 1
	})
	if _, err := r.PNG(context.Background(), key, "", 2, 900); err != nil {
		t.Fatal(err)
	}
	if n := s.gets.Load(); n != 1 {
		t.Errorf("%d reads of the original, want the one render", n)
	}
}

// eventually polls cond until it holds, for a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTallPageDrawnNarrower: a page far taller than wide is drawn within
// MaxPixels instead of at the width asked for.
func TestTallPageDrawnNarrower(t *testing.T) {
	tall := bytes.Replace(testenv.ManyPagesPDF(1), []byte("/MediaBox [0 0 595 842]"), []byte("/MediaBox [0 0 100 20000]"), 1)
	s := newStore(t)
	r := newRenderer(t, s, t.TempDir(), 64<<20)
	b, err := r.PNG(context.Background(), put(t, s, tall), "", 1, MaxWidth)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if px := cfg.Width * cfg.Height; px > MaxPixels || cfg.Width >= MaxWidth || cfg.Width < 100 {
		t.Errorf("tall page drawn %dx%d (%d pixels), want narrower than %d and within %d pixels", cfg.Width, cfg.Height, px, MaxWidth, MaxPixels)
	}
	if ratio := float64(cfg.Height) / float64(cfg.Width); ratio < 195 || ratio > 205 {
		t.Errorf("tall page drawn %dx%d, want the page's 1:200 shape", cfg.Width, cfg.Height)
	}
}
