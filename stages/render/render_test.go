package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// get reads a stored output back.
func get(t *testing.T, store blob.Store, key string) []byte {
	t.Helper()
	rc, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedFiles lists the files a file store holds, to see that a replay
// overwrote instead of adding.
func storedFiles(t *testing.T, store *blob.File) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(store.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(store.Dir(), path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

var fixedNow = func() time.Time { return time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC) }

func sample() events.DocumentClassified {
	return events.DocumentClassified{
		Meta: events.Meta{Run: 2},
		Document: events.Document{
			ID: "0f1e2d3c", Filename: "Elenco_veicoli_Ferrandi_2027.pdf",
			Sender: "Paola Ferrandi <amministrazione@ferranditrasporti.example>", Subject: "Richiesta quotazione flotta 2027",
		},
		Category: "Flotta Auto", Confidence: 0.55, NeedsReview: true, Provider: "keywords",
		Fields: []events.Field{
			{Name: "contraente", Value: "Autotrasporti Ferrandi S.r.l."},
			{Name: "partita_iva", Value: "01234567897"},
			{Name: "targhe", Value: "GH461XW,FY682SR"},
			{Name: "decorrenza", Value: "2027-01-01"},
		},
		Feedback: []events.FeedbackItem{
			{ID: "a", Type: "date_in_past", Severity: events.SeverityHigh, Message: "La data di decorrenza 01/10/2026 è già passata.", Suggestion: "Chiedere la data corretta.", Quote: "01/10/2026"},
			{ID: "b", Type: "missing_data", Severity: events.SeverityMedium, Message: "Mancano i recapiti del contraente.", Suggestion: "Richiedere un telefono.", Quote: "Contraente"},
			{ID: "c", Type: "amount_without_currency", Severity: events.SeverityLow, Message: "L'importo 1.000.000 è indicato senza valuta.", Quote: "massimale 1.000.000"},
		},
	}
}

func newRenderer(t *testing.T) (*Renderer, *blob.File) {
	t.Helper()
	store, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(store, "")
	if err != nil {
		t.Fatal(err)
	}
	r.Now = fixedNow
	return r, store
}

func extractText(t *testing.T, pdf []byte) string {
	t.Helper()
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils")
	}
	path := filepath.Join(t.TempDir(), "form.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

func TestRenderForm(t *testing.T) {
	r, store := newRenderer(t)
	in := sample()
	out, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Document != in.Document || out.Category != "Flotta Auto" || out.Meta != (events.Meta{}) {
		t.Fatalf("envelope: %+v", out)
	}
	if len(out.Outputs) != 2 {
		t.Fatalf("outputs: %+v", out.Outputs)
	}
	form := out.Outputs[0]
	if form.Name != "form.pdf" || form.Blob != "outputs/0f1e2d3c/run-2/form.pdf" || form.ContentType != "application/pdf" {
		t.Fatalf("form output: %+v", form)
	}
	pdf := get(t, store, form.Blob)
	sum := sha256.Sum256(pdf)
	if form.SizeBytes != int64(len(pdf)) || form.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("size/sha256 do not describe the stored bytes: %+v", form)
	}
	conf := model.NewDefaultConfiguration()
	if err := api.Validate(bytes.NewReader(pdf), conf); err != nil {
		t.Fatalf("pdfcpu validate: %v", err)
	}
	text := extractText(t, pdf)
	for _, want := range []string{"Flotta Auto", "confidenza 55%", "DA VERIFICARE", "Elenco_veicoli_Ferrandi_2027.pdf", "0f1e2d3c",
		"Gravità alta", "Gravità media", "Gravità bassa", "La data di decorrenza 01/10/2026 è già passata.", "Partita IVA"} {
		if !strings.Contains(text, want) {
			t.Errorf("form text lacks %q:\n%s", want, text)
		}
	}
	// Flattened: what the form showed is page content, no field is left.
	if fields, err := api.FormFields(bytes.NewReader(pdf), conf); err == nil && len(fields) > 0 {
		t.Errorf("form not flattened, fields left: %v", fields)
	}
}

func TestRenderReply(t *testing.T) {
	r, store := newRenderer(t)
	out, err := r.Handle(context.Background(), sample())
	if err != nil {
		t.Fatal(err)
	}
	reply := out.Outputs[1]
	if reply.Name != "reply.eml" || reply.Blob != "outputs/0f1e2d3c/run-2/reply.eml" || reply.ContentType != "message/rfc822" {
		t.Fatalf("reply output: %+v", reply)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(get(t, store, reply.Blob)))
	if err != nil {
		t.Fatalf("parse reply: %v", err)
	}
	from, _ := msg.Header.AddressList("From")
	to, _ := msg.Header.AddressList("To")
	if len(from) != 1 || from[0].Address != "preventivi@navigli-broker.example" || from[0].Name != "Navigli Broker" {
		t.Errorf("From = %v", from)
	}
	if len(to) != 1 || to[0].Address != "amministrazione@ferranditrasporti.example" {
		t.Errorf("To = %v", to)
	}
	dec := new(mimeDecoder)
	subject := dec.header(t, msg.Header.Get("Subject"))
	if subject != "Re: Richiesta quotazione flotta 2027" {
		t.Errorf("Subject = %q", subject)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(fixedNow()) {
		t.Errorf("Date = %v, %v", d, err)
	}
	if id := msg.Header.Get("Message-Id"); id != "<reply.0f1e2d3c.run-2@navigli-broker.example>" {
		t.Errorf("Message-Id = %q", id)
	}
	body := dec.body(t, msg)
	for _, want := range []string{"Spett.le Autotrasporti Ferrandi S.r.l.,", "flotta aziendale", "- Targhe: GH461XW, FY682SR", "- Decorrenza: 01/01/2027",
		"- Partita IVA: 01234567897", "1. La data di decorrenza 01/10/2026 è già passata.", "2. Mancano i recapiti del contraente."} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Richiedere un telefono") {
		t.Errorf("suggestions are for the broker's staff, not the client:\n%s", body)
	}
	if strings.Contains(body, "senza valuta") {
		t.Errorf("low-severity items are not points to fix:\n%s", body)
	}
}

func TestReplyAsksOnlyForWhatIsMissing(t *testing.T) {
	r, store := newRenderer(t)
	in := sample()
	in.Category = "RC Professionale"
	in.Fields = append(in.Fields, events.Field{Name: "massimale_eur", Value: "1500000"})
	out, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(get(t, store, out.Outputs[1].Blob)))
	if err != nil {
		t.Fatal(err)
	}
	body := new(mimeDecoder).body(t, msg)
	for _, want := range []string{"responsabilità civile professionale", "- Massimale (EUR): 1.500.000", "il fatturato dell'ultimo esercizio chiuso"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "il massimale desiderato") {
		t.Errorf("asks for the massimale it has:\n%s", body)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[string]string{"1250000": "1.250.000", "500": "500", "1000": "1.000", "": "", "12,5": "12,5", "100000": "100.000"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRenderDeterministicKeys(t *testing.T) {
	r, store := newRenderer(t)
	in := sample()
	a, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Outputs {
		if a.Outputs[i].Blob != b.Outputs[i].Blob {
			t.Fatalf("keys differ: %s vs %s", a.Outputs[i].Blob, b.Outputs[i].Blob)
		}
	}
	if files := storedFiles(t, store); len(files) != 2 {
		t.Fatalf("replay duplicated outputs: %v", files)
	}
	in.Meta.Run = 0 // an event without a run is run 1
	c, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if c.Outputs[0].Blob != "outputs/0f1e2d3c/run-1/form.pdf" || c.Outputs[1].Blob != "outputs/0f1e2d3c/run-1/reply.eml" {
		t.Fatalf("run 0 keys: %+v", c.Outputs)
	}
}

func TestRenderEdgeCases(t *testing.T) {
	r, store := newRenderer(t)
	in := sample()
	in.Document.Sender = ""
	in.Document.Subject = ""
	in.Fields = nil
	in.Feedback = nil
	in.Category = "Categoria Sconosciuta" // outside the taxonomy: the fallback's text
	for i := 0; i < 80; i++ {             // enough feedback to need a second page
		in.Feedback = append(in.Feedback, events.FeedbackItem{Severity: events.SeverityMedium, Message: strings.Repeat("Osservazione lunga da andare a capo. ", 4)})
	}
	out, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(get(t, store, out.Outputs[1].Blob)))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("To") != "" {
		t.Errorf("To without a sender: %q", msg.Header.Get("To"))
	}
	if s := new(mimeDecoder).header(t, msg.Header.Get("Subject")); s != "Re: Elenco_veicoli_Ferrandi_2027.pdf" {
		t.Errorf("Subject = %q", s)
	}
	pdf := get(t, store, out.Outputs[0].Blob)
	n, err := api.PageCount(bytes.NewReader(pdf), model.NewDefaultConfiguration())
	if err != nil || n < 2 {
		t.Fatalf("page count %d, %v; want a multi-page form", n, err)
	}

	in.Document.ID = "../evil"
	if _, err := r.Handle(context.Background(), in); !pipeline.IsPermanent(err) {
		t.Fatalf("unsafe id: want permanent error, got %v", err)
	}
}

func TestFormTextIsNotReadAsPlaceholders(t *testing.T) {
	r, store := newRenderer(t)
	in := sample()
	in.Feedback = []events.FeedbackItem{{Severity: events.SeverityHigh, Message: "Sconto 100% %p %P %t %v 50%% € «perché»"}}
	out, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	text := extractText(t, get(t, store, out.Outputs[0].Blob))
	if want := "Sconto 100% % p % P % t % v 50% % € «perché»"; !strings.Contains(text, want) {
		t.Fatalf("form text lacks %q:\n%s", want, text)
	}
}

func TestNewChecksTemplates(t *testing.T) {
	fsys := fstest.MapFS{
		"common.tmpl":      {Data: []byte(`{{define "x"}}x{{end}}`)},
		"flotta_auto.tmpl": {Data: []byte(`ciao`)},
	}
	_, err := NewWithTemplates(&failingStore{}, "", []string{"Flotta Auto", "Fabbricato"}, fsys)
	if err == nil || !strings.Contains(err.Error(), "fabbricato.tmpl") {
		t.Fatalf("want missing-template error naming fabbricato.tmpl, got %v", err)
	}
	if _, err := NewWithTemplates(&failingStore{}, "", []string{"Flotta Auto"}, fsys); err != nil {
		t.Fatalf("complete templates: %v", err)
	}
	bad := fstest.MapFS{"flotta_auto.tmpl": {Data: []byte(`{{if}}`)}}
	if _, err := NewWithTemplates(&failingStore{}, "", []string{"Flotta Auto"}, bad); err == nil {
		t.Fatal("want parse error")
	}
	if _, err := New(nil, ""); err == nil {
		t.Fatal("want error without a store")
	}
	if _, err := New(&failingStore{}, "not an address"); err == nil {
		t.Fatal("want error for a bad sender address")
	}
	r, err := New(&failingStore{}, "Ufficio <uff@broker.example>")
	if err != nil || r.From != "Ufficio <uff@broker.example>" {
		t.Fatalf("From not kept: %v %v", r, err)
	}
	if got := TemplateName("Rischi Tecnologici"); got != "rischi_tecnologici.tmpl" {
		t.Fatalf("TemplateName = %q", got)
	}
	if _, err := (&Renderer{}).Handle(context.Background(), sample()); err == nil {
		t.Fatal("zero Renderer must refuse to work")
	}
}

// failingStore is a store whose writes fail, as a full disk or an
// unreachable bucket makes them.
type failingStore struct{ blob.Store }

func (f *failingStore) Put(ctx context.Context, key string, r io.Reader) error {
	return errors.New("disk full")
}

func TestRenderStoreErrorIsRetried(t *testing.T) {
	r, err := New(&failingStore{}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Handle(context.Background(), sample())
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("want a transient error, got %v", err)
	}
}
