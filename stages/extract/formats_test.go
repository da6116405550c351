package extract

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// formatsTestdata holds the Office and HTML fixtures of package formats.
const formatsTestdata = "formats/testdata"

func handle(t *testing.T, name, contentType string, b []byte) (events.TextExtracted, events.Document, error) {
	t.Helper()
	store := newStore()
	store.blobs[name] = b
	doc := events.Document{ID: "doc-" + name, Filename: filepath.Base(name), ContentType: contentType, SizeBytes: int64(len(b)), Blob: name}
	out, err := (&Extractor{Blobs: store}).Handle(context.Background(), events.DocumentReceived{Document: doc})
	return out, doc, err
}

func TestFormats(t *testing.T) {
	tests := []struct {
		file, contentType string
		pages             int
		want              string // a line of the text
	}{
		{"polizza.docx", TypeDOCX, 2, "Tutela legale\t50.000 €"},
		// Mail clients label Office files as zip or octet-stream.
		{"polizza.docx", TypeZip, 2, "Tutela legale\t50.000 €"},
		{"polizza.docx", "application/octet-stream", 2, "Tutela legale\t50.000 €"},
		{"polizza.odt", TypeODT, 2, "Responsabilità civile professionale\t1.500.000 €\t2.500 €"},
		{"polizza.html", TypeHTML + "; charset=utf-8", 1, "Seconda pagina: dichiarazioni del contraente."},
		{"premi.xlsx", TypeXLSX, 2, "GH461XW\tFiat Ducato\t28500.5\t2027-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.file+" as "+tt.contentType, func(t *testing.T) {
			out, doc, err := handle(t, tt.file, tt.contentType, readFile(t, filepath.Join(formatsTestdata, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			checkPages(t, out)
			if len(out.Pages) != tt.pages {
				t.Fatalf("%d pages, want %d", len(out.Pages), tt.pages)
			}
			var all strings.Builder
			for _, p := range out.Pages {
				if p.Method != events.MethodDigital || p.Confidence < 0.99 {
					t.Errorf("page %d: method %s, confidence %v", p.Number, p.Method, p.Confidence)
				}
				all.WriteString(p.Text + "\n")
			}
			if !strings.Contains("\n"+all.String(), "\n"+tt.want+"\n") {
				t.Errorf("text lacks line %q:\n%s", tt.want, all.String())
			}
			if out.Document != doc || len(out.Attachments) != 0 {
				t.Errorf("document changed to %+v, attachments %v", out.Document, out.Attachments)
			}
			if tt.file != "premi.xlsx" && out.Language != "it" {
				t.Errorf("language %q, want it", out.Language)
			}
		})
	}
}

func TestFormatsMail(t *testing.T) {
	dir := filepath.Join(corpusDir, "insurance-dev", "0014")
	out, doc, err := handle(t, "message.eml", TypeEML, readFile(t, filepath.Join(dir, "message.eml")))
	if err != nil {
		t.Fatal(err)
	}
	checkPages(t, out)
	want := doc
	want.Sender = "Beatrice Sala <b.sala@immobiliaremella.it>"
	want.Subject = "Richiesta quotazione incendio fabbricato Via Triumplina 98"
	if out.Document != want {
		t.Errorf("document %+v, want %+v", out.Document, want)
	}
	if len(out.Pages) != 1 || !strings.Contains(out.Pages[0].Text, "per conto di Immobiliare Mella S.r.l.") {
		t.Errorf("pages %+v lack the body", out.Pages)
	}
	var names []string
	for _, a := range out.Attachments {
		names = append(names, a.Filename)
	}
	if strings.Join(names, ",") != "Richiesta_quotazione_Triumplina98.pdf,dati_catastali.txt" {
		t.Errorf("attachments %q", names)
	}
}

func TestFormatsErrors(t *testing.T) {
	empty := readFile(t, filepath.Join(formatsTestdata, "polizza.docx"))
	tests := []struct {
		name, contentType string
		b                 []byte
		want              string
	}{
		{"outlook", TypeMSG, []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 not really"), "application/vnd.ms-outlook"},
		{"truncated docx", TypeDOCX, empty[:len(empty)-100], "corrupt zip"},
		{"html without text", TypeHTML, []byte("<html><body><script>x()</script></body></html>"), "has no text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := handle(t, tt.name, tt.contentType, tt.b)
			if !pipeline.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a permanent error saying %q", err, tt.want)
			}
		})
	}
}
