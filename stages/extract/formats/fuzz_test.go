package formats

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
)

// fuzzLimits are small, so that the fuzzer reaches every limit quickly
// and a run stays within memory.
var fuzzLimits = Limits{MaxEntryBytes: 1 << 20, MaxUnzippedBytes: 4 << 20, MaxZipEntries: 200,
	MaxTextBytes: 1 << 20, MaxAttachments: 10, MaxAttachmentBytes: 4 << 20, MaxParts: 50, MaxDepth: 5}

func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		paths, _ := filepath.Glob(g)
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil && len(b) < 512<<10 {
				f.Add(b)
			}
		}
	}
}

// fuzzRead reads b as contentType and checks the properties every reader
// must keep: an error is permanent (bad input never asks for a retry), a
// result has at least one page, the text is valid UTF-8 and within the
// text limit, and e-mail attachments are stored under their key.
func fuzzRead(t *testing.T, contentType string, b []byte) {
	store := blob.NewMemory()
	r := Reader{Blobs: store, Limits: fuzzLimits}
	res, err := r.Read(context.Background(), contentType, "fuzz", b)
	if err != nil {
		if !pipeline.IsPermanent(err) {
			t.Fatalf("error on bad input is not permanent: %v", err)
		}
		if !strings.Contains(err.Error(), "fuzz") {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	if len(res.Pages) == 0 {
		t.Fatal("no pages and no error")
	}
	total := 0
	for i, p := range res.Pages {
		if !utf8.ValidString(p) {
			t.Fatalf("page %d is not valid UTF-8", i+1)
		}
		total += len(p)
	}
	// The cap is checked as text is written, so one last piece may cross it.
	if int64(total) > 2*fuzzLimits.MaxTextBytes {
		t.Fatalf("%d bytes of text, limit %d", total, fuzzLimits.MaxTextBytes)
	}
	if len(res.Attachments) > fuzzLimits.MaxAttachments {
		t.Fatalf("%d attachments, limit %d", len(res.Attachments), fuzzLimits.MaxAttachments)
	}
	for _, a := range res.Attachments {
		var stored []byte
		rc, err := store.Get(context.Background(), a.Blob)
		ok := err == nil
		if ok {
			stored, _ = io.ReadAll(rc)
			rc.Close()
		}
		if !ok || int64(len(stored)) != a.SizeBytes {
			t.Fatalf("attachment %q: stored %v under %q with %d bytes, want %d", a.Filename, ok, a.Blob, len(stored), a.SizeBytes)
		}
	}
}

func FuzzDOCX(f *testing.F) {
	addSeeds(f, "testdata/*.docx")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRead(t, TypeDOCX, b) })
}

func FuzzODT(f *testing.F) {
	addSeeds(f, "testdata/*.odt")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRead(t, TypeODT, b) })
}

func FuzzXLSX(f *testing.F) {
	addSeeds(f, "testdata/*.xlsx")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRead(t, TypeXLSX, b) })
}

func FuzzHTML(f *testing.F) {
	addSeeds(f, "testdata/*.html")
	f.Add([]byte("<table><tr><td>a<td>b<tr><td>c</table><script>x</script><pre> y </pre>"))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRead(t, TypeHTML, b) })
}

func FuzzMail(f *testing.F) {
	addSeeds(f, "../../../../shared/corpus/insurance-dev/000[1-3]/message.eml")
	f.Add([]byte("From: a@example.com\r\nSubject: =?utf-8?q?ciao?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRead(t, TypeEML, b) })
}
