package pages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image.DecodeConfig reads the headers of images
	"image/png"
	"io"
	"math"
	"net/http"

	fitz "github.com/gen2brain/go-fitz"
	_ "golang.org/x/image/tiff"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/stages/extract/mupdf"
)

// read loads the original under blobRef, refusing it past MaxSourceBytes.
func (r *Renderer) read(ctx context.Context, blobRef string) ([]byte, error) {
	rc, err := r.blobs.Get(ctx, blobRef)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, pipeline.Permanent(fmt.Errorf("pages: original %s: %w", blobRef, err))
	}
	if err != nil {
		return nil, fmt.Errorf("pages: get original %s: %w", blobRef, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxSourceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pages: read original %s: %w", blobRef, err)
	}
	if len(b) > MaxSourceBytes {
		return nil, pipeline.Permanent(fmt.Errorf("pages: original %s is over %d bytes", blobRef, MaxSourceBytes))
	}
	if len(b) == 0 {
		return nil, pipeline.Permanent(fmt.Errorf("pages: original %s is empty", blobRef))
	}
	return b, nil
}

// drawPage opens src with MuPDF and draws page n (1-based) width pixels
// wide as PNG. Every failure caused by src is permanent.
func drawPage(src []byte, password string, n, width int) ([]byte, error) {
	fd, err := open(src, password)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	count := fd.NumPage()
	if count <= 0 {
		return nil, pipeline.Permanent(errors.New("corrupt: MuPDF finds no pages"))
	}
	if n > count {
		return nil, pipeline.Permanent(fmt.Errorf("the document has %d pages", count))
	}
	bound, err := fd.Bound(n - 1)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("corrupt page: %w", err))
	}
	w, h := float64(bound.Dx()), float64(bound.Dy())
	if w <= 0 || h <= 0 {
		return nil, pipeline.Permanent(fmt.Errorf("corrupt page: size %gx%g", w, h))
	}
	scale := float64(width) / w
	// A page much taller than wide would be huge at the width asked for;
	// it is drawn narrower so that it stays within MaxPixels. Bound
	// truncates the page's size to whole points and MuPDF rounds the
	// pixel box outwards, hence the extra point and the ceilings.
	pixels := func(s float64) float64 { return math.Ceil((w+1)*s) * math.Ceil((h+1)*s) }
	if px := pixels(scale); px > MaxPixels {
		scale *= math.Sqrt(MaxPixels / px)
		for pixels(scale) > MaxPixels {
			scale *= 0.999
		}
	}
	dpi := 72 * scale
	rgba, err := fd.ImageDPI(n-1, dpi)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("draw: %w", err))
	}
	return encodePNG(rgba)
}

// encodePNG encodes a drawn page. Most pages are black on white: those
// are written as 8-bit grey, a third of RGB's size, and take a quarter of
// the time to compress (MuPDF's own PNG writer takes RGBA and is twice as
// slow in total). Pages with colour are written as RGB (opaque: MuPDF
// draws on white) at the fastest compression, which costs little size on
// such pages and keeps them from taking seconds.
func encodePNG(rgba *image.RGBA) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	if g, ok := grey(rgba); ok {
		err = (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(&buf, g)
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, rgba)
	}
	if err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// grey returns rgba as an 8-bit grey image if every pixel is grey.
func grey(rgba *image.RGBA) (*image.Gray, bool) {
	b := rgba.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		src := rgba.Pix[y*rgba.Stride : y*rgba.Stride+4*b.Dx()]
		dst := g.Pix[y*g.Stride : y*g.Stride+b.Dx()]
		for x := range dst {
			r, gg, bl := src[4*x], src[4*x+1], src[4*x+2]
			if r != gg || gg != bl {
				return nil, false
			}
			dst[x] = r
		}
	}
	return g, true
}

// open opens src as a PDF or an image, after the checks that keep
// hostile files from MuPDF. The caller closes the document.
func open(src []byte, password string) (*fitz.Document, error) {
	switch {
	case bytes.Contains(src[:min(len(src), 1024)], []byte("%PDF-")):
		// The header may follow a few bytes of junk; readers accept up
		// to 1 KiB, as the extract stage does.
		fd, _, err := mupdf.OpenPDF(src, password)
		return fd, err
	default:
		cfg, format, err := image.DecodeConfig(bytes.NewReader(src))
		if err != nil {
			return nil, pipeline.Permanent(fmt.Errorf("unsupported format %s: only PDFs and PNG, JPEG or TIFF images have pages to show", http.DetectContentType(src)))
		}
		if px := int64(cfg.Width) * int64(cfg.Height); cfg.Width <= 0 || cfg.Height <= 0 || px > MaxImagePixels {
			return nil, pipeline.Permanent(fmt.Errorf("%dx%d %s image: over the %d pixel limit", cfg.Width, cfg.Height, format, MaxImagePixels))
		}
		fd, err := fitz.NewFromMemory(src)
		if err != nil {
			if fd != nil {
				fd.Close()
			}
			return nil, pipeline.Permanent(fmt.Errorf("MuPDF cannot open the %s image: %w", format, err))
		}
		return fd, nil
	}
}
