package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"prismflow/stages/internal/sniff"
	"strings"
	"testing"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

func newIngester(t *testing.T, max int64) (*Ingester, *[]events.DocumentReceived, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := blob.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	var published []events.DocumentReceived
	in := &Ingester{Blobs: store, MaxBytes: max, Publish: func(_ context.Context, ev events.DocumentReceived) error {
		published = append(published, ev)
		return nil
	}}
	return in, &published, dir
}

func minimalPDF(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../shared/corpus/real/001-trivial/minimal-document.pdf")
	if err != nil {
		t.Fatalf("shared corpus missing (../shared next to the repo): %v", err)
	}
	return b
}

func TestIngestStoresOnceAnnouncesTwice(t *testing.T) {
	in, published, dir := newIngester(t, 0)
	pdf := minimalPDF(t)
	ctx := context.Background()
	a, err := in.Ingest(ctx, Upload{Tenant: "acme", Filename: `C:\scans\polizza.pdf`, Body: bytes.NewReader(pdf)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := in.Ingest(ctx, Upload{Tenant: "acme", Filename: "again.pdf", Body: bytes.NewReader(pdf)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Document.ID == b.Document.ID {
		t.Error("two arrivals of the same bytes got the same document id")
	}
	if a.Document.Blob != b.Document.Blob || a.Document.SHA256 != b.Document.SHA256 {
		t.Errorf("same bytes stored under different keys: %s, %s", a.Document.Blob, b.Document.Blob)
	}
	if a.Document.Filename != "polizza.pdf" || a.Document.ContentType != "application/pdf" || a.Document.SizeBytes != int64(len(pdf)) {
		t.Errorf("document = %+v", a.Document)
	}
	if a.Document.Source != "upload" || a.Document.Tenant != "acme" {
		t.Errorf("source %q tenant %q", a.Document.Source, a.Document.Tenant)
	}
	if len(*published) != 2 {
		t.Fatalf("published %d events, want 2", len(*published))
	}
	var files int
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 1 {
		t.Errorf("%d files in the blob store, want 1", files)
	}
}

func TestIngestRefuses(t *testing.T) {
	gif := []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
	tests := []struct {
		name   string
		max    int64
		upload Upload
		want   error // nil: any permanent error
		msg    string
	}{
		{"too large", 100, Upload{Tenant: "t", Filename: "big.txt", Body: strings.NewReader(strings.Repeat("a", 101))}, ErrTooLarge, "more than 100 bytes"},
		{"unsupported type by bytes", 0, Upload{Tenant: "t", Filename: "looks.pdf", Body: bytes.NewReader(gif)}, ErrUnsupportedType, "image/gif"},
		{"empty", 0, Upload{Tenant: "t", Filename: "empty.pdf", Body: strings.NewReader("")}, nil, "empty file"},
		{"no tenant", 0, Upload{Filename: "x.txt", Body: strings.NewReader("hello")}, nil, "no tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, published, _ := newIngester(t, tt.max)
			_, err := in.Ingest(context.Background(), tt.upload)
			if err == nil || !pipeline.IsPermanent(err) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
			if len(*published) != 0 {
				t.Errorf("a refused upload was published")
			}
		})
	}
}

func TestIngestAtLimitIsAccepted(t *testing.T) {
	in, _, _ := newIngester(t, 100)
	ev, err := in.Ingest(context.Background(), Upload{Tenant: "t", Filename: "note.txt", Body: strings.NewReader(strings.Repeat("a", 100))})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Document.SizeBytes != 100 || ev.Document.ContentType != "text/plain" {
		t.Errorf("document = %+v", ev.Document)
	}
}

func TestIngestPublishFailureIsTransient(t *testing.T) {
	in, _, _ := newIngester(t, 0)
	in.Publish = func(context.Context, events.DocumentReceived) error { return errors.New("broker unreachable") }
	_, err := in.Ingest(context.Background(), Upload{Tenant: "t", Filename: "a.pdf", Body: bytes.NewReader(minimalPDF(t))})
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
}

// TestIngestAcceptsByContent uploads a real small file of every accepted
// type under a name that lies about it: the bytes decide the type.
func TestIngestAcceptsByContent(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"../../../shared/corpus/real/001-trivial/minimal-document.pdf", sniff.PDF},
		{"testdata/sample.txt", sniff.Text},
		{"testdata/sample.html", sniff.HTML},
		{"testdata/sample.png", sniff.PNG},
		{"testdata/sample.jpg", sniff.JPEG},
		{"testdata/sample.tif", sniff.TIFF},
		{"testdata/sample.docx", sniff.DOCX},
		{"testdata/sample.odt", sniff.ODT},
		{"testdata/sample.xlsx", sniff.XLSX},
		{"testdata/sample.eml", sniff.EML},
		{"../../../shared/corpus/insurance-dev/0005/message.eml", sniff.EML},
		{"testdata/sample.msg", sniff.MSG},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			in, published, _ := newIngester(t, 0)
			ev, err := in.Ingest(context.Background(), Upload{Tenant: "t", Filename: "upload.bin", Body: bytes.NewReader(b), Password: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			if ev.Document.ContentType != tt.want || ev.Document.SizeBytes != int64(len(b)) {
				t.Errorf("type %q size %d, want %q and %d", ev.Document.ContentType, ev.Document.SizeBytes, tt.want, len(b))
			}
			if ev.Password != "secret" || len(*published) != 1 || (*published)[0].Password != "secret" {
				t.Errorf("password did not reach the event")
			}
			rc, err := in.Blobs.Get(context.Background(), ev.Document.Blob)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			stored, _ := io.ReadAll(rc)
			if !bytes.Equal(stored, b) {
				t.Errorf("stored %d bytes differ from the %d uploaded", len(stored), len(b))
			}
		})
	}
}

// TestIngestRefusesContainersOfOtherTypes: zip and OLE2 files that are not
// one of the accepted formats are refused, and nothing is stored.
func TestIngestRefusesContainersOfOtherTypes(t *testing.T) {
	tests := []struct {
		file string
		msg  string
	}{
		{"testdata/plain.zip", "application/zip"},
		{"testdata/sample.ods", "opendocument.spreadsheet"},
		{"testdata/sample.doc", "application/x-cfb"}, // Word 97: OLE2, but no Outlook message
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			in, published, dir := newIngester(t, 0)
			_, err = in.Ingest(context.Background(), Upload{Tenant: "t", Filename: "x.docx", Body: bytes.NewReader(b)})
			if !errors.Is(err, ErrUnsupportedType) || !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want a permanent ErrUnsupportedType naming %s", err, tt.msg)
			}
			if len(*published) != 0 || countFiles(t, dir) != 0 {
				t.Errorf("refused file published or stored")
			}
		})
	}
}

func TestIngestTooLargeContainerStoresNothing(t *testing.T) {
	b, err := os.ReadFile("testdata/sample.docx")
	if err != nil {
		t.Fatal(err)
	}
	in, _, dir := newIngester(t, int64(len(b)-1))
	_, err = in.Ingest(context.Background(), Upload{Tenant: "t", Filename: "a.docx", Body: bytes.NewReader(b)})
	if !errors.Is(err, ErrTooLarge) || !pipeline.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent ErrTooLarge", err)
	}
	if n := countFiles(t, dir); n != 0 {
		t.Errorf("%d files stored for a refused upload", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSniffMailNeedsMailHeaders(t *testing.T) {
	tests := []struct {
		name string
		head string
		want string
	}{
		{"message", "From: a@b.it\r\nTo: c@d.it\r\nSubject: x\r\n\r\nbody", sniff.EML},
		{"folded received first", "Received: from x\n by y; Thu, 5 Nov 2026\nFrom: a@b.it\nDate: Thu, 5 Nov 2026\nSubject: s\n\nb", sniff.EML},
		{"note starting with From", "From: Mario\nhello, this is a note\n", sniff.Text},
		{"from and one header", "From: a@b.it\nTo: c@d.it\n\nbody", sniff.Text},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := sniff.Head([]byte(tt.head)); got != tt.want || !ok {
				t.Errorf("Sniff = %q, %v; want %q, true", got, ok, tt.want)
			}
		})
	}
}
