package render

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"prismflow/connectors/blob"
	"prismflow/schemas/events"
)

// pageText extracts the text of one page, to tell the filled form (page
// 1) from the summary pages that repeat the values.
func pageText(t *testing.T, pdf []byte, page int) string {
	t.Helper()
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils")
	}
	path := filepath.Join(t.TempDir(), "form.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(page)
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", "-f", p, "-l", p, path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// srcFieldIDs reads the text field ids of a form's JSON source.
func srcFieldIDs(t *testing.T, category string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("forms", "src", strings.TrimSuffix(FormTemplateName(category), ".pdf")+".json"))
	if err != nil {
		t.Fatalf("JSON source of %s: %v", category, err)
	}
	var desc struct {
		Pages map[string]struct {
			Content struct {
				TextField []struct {
					ID string `json:"id"`
				} `json:"textfield"`
			} `json:"content"`
		} `json:"pages"`
	}
	if err := json.Unmarshal(raw, &desc); err != nil {
		t.Fatalf("JSON source of %s: %v", category, err)
	}
	var ids []string
	for _, p := range desc.Pages {
		for _, f := range p.Content.TextField {
			ids = append(ids, f.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// extractedFields are the names classify extracts (issue 5); a form
// field named otherwise would never be filled.
var extractedFields = []string{"contraente", "partita_iva", "codice_fiscale", "email", "telefono", "indirizzo", "citta", "provincia",
	"num_veicoli", "targhe", "professione", "massimale_eur", "fatturato_eur", "valore_fabbricato_eur", "superficie_mq",
	"anno_costruzione", "tipo_impianto", "valore_impianto_eur", "decorrenza"}

func TestFormTemplates(t *testing.T) {
	common := []string{"contraente", "partita_iva", "codice_fiscale", "email", "telefono", "indirizzo", "citta", "provincia"}
	// What each category's broker form must ask for besides the
	// contraente's data and address.
	specific := map[string][]string{
		"Flotta Auto":        {"num_veicoli", "targhe", "massimale_eur", "decorrenza"},
		"RC Professionale":   {"professione", "fatturato_eur", "massimale_eur", "decorrenza"},
		"Fabbricato":         {"valore_fabbricato_eur", "superficie_mq", "anno_costruzione", "decorrenza"},
		"Rischi Tecnologici": {"tipo_impianto", "valore_impianto_eur", "decorrenza"},
		"Altro":              {"massimale_eur", "decorrenza"},
	}
	conf := model.NewDefaultConfiguration()
	for _, c := range DefaultTaxonomy() {
		t.Run(c, func(t *testing.T) {
			pdf, err := fs.ReadFile(embedded, "forms/"+FormTemplateName(c))
			if err != nil {
				t.Fatalf("embedded template: %v", err)
			}
			if err := api.Validate(bytes.NewReader(pdf), conf); err != nil {
				t.Fatalf("pdfcpu validate: %v", err)
			}
			fg, err := api.ExportForm(bytes.NewReader(pdf), FormTemplateName(c), conf)
			if err != nil {
				t.Fatalf("export form: %v", err)
			}
			var names []string
			for _, f := range fg.Forms {
				for _, tf := range f.TextFields {
					names = append(names, tf.Name)
				}
				for _, df := range f.DateFields {
					names = append(names, df.Name)
				}
			}
			slices.Sort(names)
			want := slices.Sorted(slices.Values(append(slices.Clone(common), specific[c]...)))
			if !slices.Equal(names, want) {
				t.Errorf("AcroForm fields %v; want %v", names, want)
			}
			for _, n := range names {
				if !slices.Contains(extractedFields, n) {
					t.Errorf("field %q is not an extracted field", n)
				}
			}
			// The committed PDF is the one its JSON source builds.
			if src := srcFieldIDs(t, c); !slices.Equal(src, names) {
				t.Errorf("forms/src JSON has fields %v, the PDF %v: run go generate ./stages/render", src, names)
			}
			text := pageText(t, pdf, 1)
			if !strings.Contains(text, "Richiesta di quotazione") || !strings.Contains(text, "Partita IVA") {
				t.Errorf("template lacks its title or labels:\n%s", text)
			}
		})
	}
}

func TestFilledFormShowsFormattedValues(t *testing.T) {
	base := []events.Field{
		{Name: "contraente", Value: "Studio Bellini & Associati S.r.l."},
		{Name: "partita_iva", Value: "01234567897"},
		{Name: "email", Value: "info@studiobellini.example"},
		{Name: "telefono", Value: "0287654321"},
		{Name: "indirizzo", Value: "Via Dell’Orso 12"},
		{Name: "citta", Value: "Cantù"},
		{Name: "provincia", Value: "CO"},
		{Name: "decorrenza", Value: "2027-03-01"},
	}
	tests := []struct {
		category string
		fields   []events.Field
		want     []string
	}{
		{"Flotta Auto", []events.Field{{Name: "num_veicoli", Value: "3"}, {Name: "targhe", Value: "GH461XW,FY682SR,EZ123AB"}, {Name: "massimale_eur", Value: "10000000"}},
			[]string{"Flotta Auto", "3", "GH461XW, FY682SR, EZ123AB", "10.000.000,00 €"}},
		{"RC Professionale", []events.Field{{Name: "professione", Value: "architetto"}, {Name: "fatturato_eur", Value: "185000.5"}, {Name: "massimale_eur", Value: "1250000"}},
			[]string{"RC Professionale", "architetto", "185.000,50 €", "1.250.000,00 €"}},
		{"Fabbricato", []events.Field{{Name: "valore_fabbricato_eur", Value: "2400000"}, {Name: "superficie_mq", Value: "1850"}, {Name: "anno_costruzione", Value: "1987"}},
			[]string{"Fabbricato", "2.400.000,00 €", "1.850", "1987"}},
		{"Rischi Tecnologici", []events.Field{{Name: "tipo_impianto", Value: "fotovoltaico"}, {Name: "valore_impianto_eur", Value: "780000"}},
			[]string{"Rischi Tecnologici", "Impianto fotovoltaico", "780.000,00 €"}},
		{"Altro", []events.Field{{Name: "massimale_eur", Value: "500000"}}, []string{"Altri rischi", "500.000,00 €"}},
	}
	conf := model.NewDefaultConfiguration()
	for _, tt := range tests {
		t.Run(tt.category, func(t *testing.T) {
			r, store := newRenderer(t)
			in := sample()
			in.Category = tt.category
			in.Fields = append(slices.Clone(base), tt.fields...)
			out, err := r.Handle(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			pdf := get(t, store, out.Outputs[0].Blob)
			if err := api.Validate(bytes.NewReader(pdf), conf); err != nil {
				t.Fatalf("pdfcpu validate: %v", err)
			}
			if fields, err := api.FormFields(bytes.NewReader(pdf), conf); err == nil && len(fields) > 0 {
				t.Errorf("not flattened: %d fields left", len(fields))
			}
			form := pageText(t, pdf, 1)
			want := append([]string{"Richiesta di quotazione", "Studio Bellini & Associati S.r.l.", "01234567897", "info@studiobellini.example",
				"0287654321", "Via Dell’Orso 12", "Cantù", "CO", "01/03/2027"}, tt.want...)
			for _, w := range want {
				if !strings.Contains(form, w) {
					t.Errorf("form page lacks %q:\n%s", w, form)
				}
			}
			if strings.Contains(form, "2027-03-01") {
				t.Errorf("ISO date on the form:\n%s", form)
			}
			summary := pageText(t, pdf, 2)
			for _, w := range []string{"Scheda riepilogativa", "Gravità alta", "Dati del modulo da richiedere al cliente"} {
				if !strings.Contains(summary, w) {
					t.Errorf("summary page lacks %q:\n%s", w, summary)
				}
			}
		})
	}
}

func TestMissingFormTemplateFailsConstruction(t *testing.T) {
	embeddedForms, err := fs.Sub(embedded, "forms")
	if err != nil {
		t.Fatal(err)
	}
	flotta, err := fs.ReadFile(embeddedForms, "flotta_auto.pdf")
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer // a valid PDF without a form
	if err := api.Create(nil, strings.NewReader(`{"paper":"A4P","pages":{"1":{"content":{"text":[{"value":"x","pos":[50,700],"font":{"name":"Helvetica","size":10}}]}}}}`), &page, model.NewDefaultConfiguration()); err != nil {
		t.Fatal(err)
	}
	noFields := page.Bytes()
	tests := []struct {
		name  string
		forms fstest.MapFS
		want  string
	}{
		{"missing", fstest.MapFS{"flotta_auto.pdf": {Data: flotta}}, `"Fabbricato" (fabbricato.pdf)`},
		{"not a PDF", fstest.MapFS{"flotta_auto.pdf": {Data: flotta}, "fabbricato.pdf": {Data: []byte("ciao")}}, "fabbricato.pdf"},
		{"no fields", fstest.MapFS{"flotta_auto.pdf": {Data: flotta}, "fabbricato.pdf": {Data: noFields}}, "fabbricato.pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWithOptions(&failingStore{}, Options{Taxonomy: []string{"Flotta Auto", "Fabbricato"}, Forms: tt.forms})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error naming %s, got %v", tt.want, err)
			}
		})
	}
	// A broker's taxonomy with a category the built-in forms lack.
	_, err = NewWithTemplates(&failingStore{}, "", []string{"Flotta Auto", "Cyber"}, fstest.MapFS{
		"flotta_auto.tmpl": {Data: []byte("a")}, "cyber.tmpl": {Data: []byte("b")},
	})
	if err == nil || !strings.Contains(err.Error(), "cyber.pdf") {
		t.Fatalf("want an error naming cyber.pdf, got %v", err)
	}
}

func TestFormOverrideFolder(t *testing.T) {
	dir := t.TempDir()
	embeddedForms, err := fs.Sub(embedded, "forms")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range DefaultTaxonomy() {
		b, err := fs.ReadFile(embeddedForms, FormTemplateName(c))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, FormTemplateName(c)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The broker's own fleet form: another title, one field.
	desc := `{"paper":"A4P","origin":"LowerLeft","pages":{"1":{"content":{
		"text":[{"value":"Modulo Flotte Compagnia Alfa","pos":[40,780],"font":{"name":"Helvetica-Bold","size":14}}],
		"textfield":[{"id":"massimale_eur","value":"","pos":[200,700],"width":200,"font":{"name":"Helvetica","size":10},
			"label":{"value":"Massimale","width":120,"gap":10,"pos":"left","font":{"name":"Helvetica","size":10}}}]}}}}`
	var own bytes.Buffer
	if err := api.Create(nil, strings.NewReader(desc), &own, model.NewDefaultConfiguration()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flotta_auto.pdf"), own.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewWithOptions(store, Options{Forms: os.DirFS(dir)})
	if err != nil {
		t.Fatal(err)
	}
	in := sample()
	in.Fields = append(in.Fields, events.Field{Name: "massimale_eur", Value: "6000000"})
	out, err := r.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	form := pageText(t, get(t, store, out.Outputs[0].Blob), 1)
	for _, w := range []string{"Modulo Flotte Compagnia Alfa", "6.000.000,00 €"} {
		if !strings.Contains(form, w) {
			t.Errorf("override form page lacks %q:\n%s", w, form)
		}
	}
	if strings.Contains(form, "Richiesta di quotazione") {
		t.Errorf("built-in form used despite the override:\n%s", form)
	}
}

func TestFormValue(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"massimale_eur", "1250000", "1.250.000,00 €"},
		{"fatturato_eur", "185000.5", "185.000,50 €"},
		{"valore_impianto_eur", "999.999", "1.000,00 €"},
		{"massimale_eur", "0", "0,00 €"},
		{"massimale_eur", "un milione", "un milione"},
		{"massimale_eur", "-5", "-5"},
		{"decorrenza", "2027-01-01", "01/01/2027"},
		{"decorrenza", "domani", "domani"},
		{"targhe", "GH461XW,FY682SR", "GH461XW, FY682SR"},
		{"superficie_mq", "12500", "12.500"},
		{"anno_costruzione", "1987", "1987"},
		{"tipo_impianto", "car", "CAR - Contractors All Risks"},
		{"tipo_impianto", "altro", "altro"},
		{"partita_iva", "01234567897", "01234567897"},
	}
	for _, tt := range tests {
		if got := formValue(tt.name, tt.in); got != tt.want {
			t.Errorf("formValue(%s, %q) = %q; want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestWinAnsi(t *testing.T) {
	for in, want := range map[string]string{
		"1.000,00 €": "1.000,00 \u0080", "Dell’Orso": "Dell\u0092Orso", "Cantù": "Cantù", "Łódź": "?ód?", "a\u0085b": "a b",
	} {
		if got := winAnsi(in); got != want {
			t.Errorf("winAnsi(%q) = %q; want %q", in, got, want)
		}
	}
}

// The runtime calls Handle from several goroutines; the templates are
// shared and must come out of every call unchanged.
func TestHandleConcurrently(t *testing.T) {
	r, store := newRenderer(t)
	before := slices.Clone(r.forms["Flotta Auto"].pdf)
	errs := make(chan error, 6)
	for i := range 6 {
		go func() {
			in := sample()
			in.Document.ID = "doc" + strconv.Itoa(i)
			in.Fields = append(in.Fields, events.Field{Name: "massimale_eur", Value: strconv.Itoa((i + 1) * 1000000)})
			_, err := r.Handle(context.Background(), in)
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(before, r.forms["Flotta Auto"].pdf) {
		t.Fatal("a fill changed the shared template")
	}
	for i := range 6 {
		key, _ := Keys("doc"+strconv.Itoa(i), 2)
		want := thousands(strconv.Itoa((i+1)*1000000)) + ",00 €"
		if text := pageText(t, get(t, store, key), 1); !strings.Contains(text, want) {
			t.Errorf("doc%d form lacks %q", i, want)
		}
	}
}
