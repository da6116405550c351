package pages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
)

// Limits of PNG.
const (
	MinWidth = 200  // px; narrower requests are drawn at this width
	MaxWidth = 2000 // px; wider requests are drawn at this width
	// MaxPixels bounds one drawn page (a 2000 px wide A4 page is 5.7
	// million); a taller page is drawn narrower to fit. Drawing takes
	// about 8 bytes a pixel at its peak (go-fitz copies MuPDF's RGBA).
	MaxPixels = 12_000_000
	// MaxSourceBytes is the largest original read, as ingest's default
	// max_bytes: nothing larger is ever stored.
	MaxSourceBytes = 50 << 20
	// MaxImagePixels is the largest image opened (extract's default
	// max_pixels): a larger one is refused from its header.
	MaxImagePixels = 100_000_000
	// renderTimeout bounds one render, blob read included, whoever waits.
	renderTimeout = 2 * time.Minute
)

// Renderer draws pages of blobs as PNG images through a disk cache. It is
// safe for concurrent use.
type Renderer struct {
	blobs blob.Store
	cache *diskCache
	log   *slog.Logger
	group singleflight.Group
	slots chan struct{} // one per render allowed at once
}

// NewRenderer returns a renderer reading originals from blobs and caching
// images under dir, at most maxBytes of them (the least recently used go
// first). Images already under dir are reused.
func NewRenderer(blobs blob.Store, dir string, maxBytes int64, log *slog.Logger) (*Renderer, error) {
	if log == nil {
		log = slog.Default()
	}
	if maxBytes <= 0 {
		return nil, fmt.Errorf("pages: cache size %d: must be positive", maxBytes)
	}
	c, err := openCache(dir, maxBytes, log)
	if err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	return &Renderer{blobs: blobs, cache: c, log: log, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

// PNG returns page n (1-based) of the blob under blobRef drawn width
// pixels wide (clamped to MinWidth..MaxWidth), from the cache or drawn
// with MuPDF. password opens an encrypted PDF ("" for none). A file that
// cannot be drawn (unsupported format, corrupt, encrypted without the
// right password, no page n, missing blob) is a pipeline.Permanent error;
// other errors (the blob store failing) are worth retrying. Concurrent
// calls for the same image draw it once.
func (r *Renderer) PNG(ctx context.Context, blobRef string, password string, n, width int) ([]byte, error) {
	if blobRef == "" {
		return nil, pipeline.Permanent(errors.New("pages: no blob"))
	}
	if n < 1 {
		return nil, pipeline.Permanent(fmt.Errorf("pages: page %d: pages are numbered from 1", n))
	}
	width = min(max(width, MinWidth), MaxWidth)
	key := cacheKey(blobRef, n, width)
	if b, ok := r.cache.get(key); ok {
		return b, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pages: page %d of %s: %w", n, blobRef, err)
	}
	ch := r.group.DoChan(key, func() (any, error) {
		// The render is shared by every caller waiting for it, so it must
		// not stop when the one who started it gives up; it has a
		// deadline of its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), renderTimeout)
		defer cancel()
		// Another flight may have stored it between our miss and now.
		if b, ok := r.cache.get(key); ok {
			return b, nil
		}
		b, err := r.render(rctx, blobRef, password, n, width)
		if err != nil {
			return nil, err
		}
		if err := r.cache.put(key, b); err != nil {
			r.log.WarnContext(rctx, "pages: cache image", "blob", blobRef, "page", n, "err", err)
		}
		return b, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("pages: page %d of %s: %w", n, blobRef, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	}
}

// cacheKey names the cached image: a hash, so any blob key makes a safe
// file name.
func cacheKey(blobRef string, n, width int) string {
	h := sha256.New()
	h.Write([]byte(blobRef))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(n), 10))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(width), 10))
	return hex.EncodeToString(h.Sum(nil))
}

// render draws the page, at most len(slots) at once.
func (r *Renderer) render(ctx context.Context, blobRef, password string, n, width int) ([]byte, error) {
	src, err := r.read(ctx, blobRef)
	if err != nil {
		return nil, err
	}
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("pages: page %d of %s: %w", n, blobRef, ctx.Err())
	}
	b, err := drawPage(src, password, n, width)
	if err != nil {
		return nil, fmt.Errorf("pages: page %d of %s: %w", n, blobRef, err)
	}
	return b, nil
}
