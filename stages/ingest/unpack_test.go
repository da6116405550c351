package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"prismflow/stages/internal/sniff"
	"testing"
	"time"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

func storeAttachment(t *testing.T, store blob.Store, name string, b []byte) events.Attachment {
	t.Helper()
	key, sum, size, err := blob.PutContent(context.Background(), store, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return events.Attachment{Filename: name, ContentType: "application/octet-stream", Blob: key, SHA256: sum, SizeBytes: size}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnpackerMakesAttachmentsDocuments(t *testing.T) {
	store, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pdf, docx := minimalPDF(t), readFile(t, "testdata/sample.docx")
	big := bytes.Repeat([]byte("testo lungo "), 3000) // 36,000 bytes, over MaxBytes below
	atts := []events.Attachment{
		storeAttachment(t, store, `C:\allegati\polizza.pdf`, pdf),
		storeAttachment(t, store, "logo.gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")), // unsupported: skipped
		storeAttachment(t, store, "elenco.docx", docx),
		{Filename: "gone.pdf", Blob: "sha256/00/0000", SHA256: "0000", SizeBytes: 10}, // missing: skipped
		storeAttachment(t, store, "big.txt", big),                                     // over MaxBytes: skipped
		storeAttachment(t, store, "copia.pdf", pdf),                                   // same bytes again: a document of its own
	}
	produced := time.Date(2026, 11, 5, 10, 22, 0, 0, time.UTC)
	parent := events.TextExtracted{
		Meta: events.Meta{ProducedAt: produced, Run: 1},
		Document: events.Document{ID: "mail-1", Tenant: "acme", Filename: "message.eml", ContentType: sniff.EML,
			Source: "imap", Sender: "Vito <flotta@murgiafood.it>", Subject: "Rinnovo flotta"},
		Attachments: atts,
	}
	u := &Unpacker{Blobs: store, MaxBytes: 20000, Log: slog.New(slog.DiscardHandler)}
	got, err := u.Attachments(context.Background(), parent)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		index int
		name  string
		ctype string
	}{{0, "polizza.pdf", sniff.PDF}, {2, "elenco.docx", sniff.DOCX}, {5, "copia.pdf", sniff.PDF}}
	if len(got) != len(want) {
		t.Fatalf("%d documents, want %d: %+v", len(got), len(want), got)
	}
	ids := map[string]bool{}
	for i, w := range want {
		d, a := got[i].Document, atts[w.index]
		if d.ID != AttachmentID("mail-1", w.index, a.SHA256) || ids[d.ID] {
			t.Errorf("document %d: id %s, want the derived %s, unique", i, d.ID, AttachmentID("mail-1", w.index, a.SHA256))
		}
		ids[d.ID] = true
		if d.Filename != w.name || d.ContentType != w.ctype || d.Blob != a.Blob || d.SHA256 != a.SHA256 || d.SizeBytes != a.SizeBytes {
			t.Errorf("document %d = %+v, want %s %s from %+v", i, d, w.name, w.ctype, a)
		}
		if d.ParentID != "mail-1" || d.Tenant != "acme" || d.Source != "imap" || d.Sender != parent.Document.Sender || d.Subject != "Rinnovo flotta" {
			t.Errorf("document %d does not inherit from its parent: %+v", i, d)
		}
		if !got[i].ReceivedAt.Equal(produced) || got[i].Password != "" {
			t.Errorf("document %d: received %v password %q", i, got[i].ReceivedAt, got[i].Password)
		}
	}

	// A replay of the parent yields the same children.
	again, err := u.Attachments(context.Background(), parent)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if again[i].Document.ID != got[i].Document.ID {
			t.Errorf("replay gave document %d id %s, first time %s", i, again[i].Document.ID, got[i].Document.ID)
		}
	}
	// Another parent with the same attachments has other children.
	other := parent
	other.Document.ID = "mail-2"
	if o, err := u.Attachments(context.Background(), other); err != nil || o[0].Document.ID == got[0].Document.ID {
		t.Errorf("attachments of another parent: err %v, first id %v (first parent's %s)", err, o, got[0].Document.ID)
	}
}

func TestUnpackerNoAttachments(t *testing.T) {
	got, err := (&Unpacker{}).Attachments(context.Background(), events.TextExtracted{Document: events.Document{ID: "d"}})
	if err != nil || len(got) != 0 {
		t.Errorf("got %v, %v; want nothing", got, err)
	}
}

// failingStore fails every Get, as an unreachable bucket does.
type failingStore struct{ blob.Store }

func (failingStore) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("connection refused")
}

func TestUnpackerStoreFailureIsTransient(t *testing.T) {
	u := &Unpacker{Blobs: failingStore{}}
	_, err := u.Attachments(context.Background(), events.TextExtracted{
		Document:    events.Document{ID: "mail-1", Tenant: "t"},
		Attachments: []events.Attachment{{Filename: "a.pdf", Blob: "sha256/ab/ab", SHA256: "ab", SizeBytes: 10}},
	})
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error (the parent is retried, no child lost)", err)
	}
}
