package pages

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// disablePDFCPUConfigDir keeps pdfcpu from creating a configuration
// folder in the user's home, as stages/internal/pdfconf does for the
// code (tests outside stages cannot import it): the variable is
// process-wide and only ever set to this value.
var disablePDFCPUConfigDir = sync.OnceFunc(func() { model.ConfigPath = "disable" })

// BenchmarkPNG measures a page drawn by MuPDF against one served from
// the disk cache, and the first page of a 50-page document (the cost of
// opening a long file for one page).
func BenchmarkPNG(b *testing.B) {
	four := read(b, fourPages)
	ctx := context.Background()

	b.Run("first-render", func(b *testing.B) {
		s := newStore(b)
		key := put(b, s, four)
		// A budget smaller than any image: nothing is kept, every call draws.
		r := newRenderer(b, s, b.TempDir(), 1)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.PNG(ctx, key, "", 1, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("cached", func(b *testing.B) {
		s := newStore(b)
		key := put(b, s, four)
		r := newRenderer(b, s, b.TempDir(), 64<<20)
		if _, err := r.PNG(ctx, key, "", 1, 1000); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.PNG(ctx, key, "", 1, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("50-pages-first-page", func(b *testing.B) {
		s := newStore(b)
		key := put(b, s, fiftyPages(b, four))
		r := newRenderer(b, s, b.TempDir(), 1)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.PNG(ctx, key, "", 1, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fiftyPages merges the 4-page sample 13 times and keeps 50 pages: a
// real long document rather than 50 blank pages.
func fiftyPages(b *testing.B, four []byte) []byte {
	b.Helper()
	disablePDFCPUConfigDir()
	var in []io.ReadSeeker
	for range 13 {
		in = append(in, bytes.NewReader(four))
	}
	var merged, out bytes.Buffer
	if err := api.MergeRaw(in, &merged, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := api.Trim(bytes.NewReader(merged.Bytes()), &out, []string{"1-50"}, nil); err != nil {
		b.Fatal(err)
	}
	if n, err := api.PageCount(bytes.NewReader(out.Bytes()), nil); err != nil || n != 50 {
		b.Fatalf("built a document of %d pages (%v), want 50", n, err)
	}
	return out.Bytes()
}
