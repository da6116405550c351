package classify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"prismflow/schemas/events"
)

func classifyText(t *testing.T, sender string, texts ...string) events.DocumentClassified {
	t.Helper()
	in := events.SectionsAnalyzed{Document: events.Document{ID: "d", Sender: sender}}
	page := int32(1)
	for i, s := range texts {
		n := int32(strings.Count(s, "\f"))
		in.Sections = append(in.Sections, events.Section{Index: int32(i), Text: s, PageStart: page, PageEnd: page + n})
		page += n + 1
	}
	out, err := (&Classifier{}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fieldMap(fs []events.Field) map[string]events.Field {
	m := map[string]events.Field{}
	for _, f := range fs {
		m[f.Name] = f
	}
	return m
}

func TestExtractFields(t *testing.T) {
	tests := []struct {
		name   string
		sender string
		texts  []string
		want   map[string]string // "" = must be absent
	}{
		{
			name:   "company letterhead",
			sender: "Mario Verdi <m.verdi@trasportiverdi.example>",
			texts: []string{"Buongiorno,\nvi chiediamo un'offerta per la flotta con decorrenza 1° marzo 2027.\n\nTRASPORTI VERDI S.R.L.\nVia Roma 12 - 20121 Milano (MI)\nTel. 02 1234567 - P.IVA 01234567897\nm.verdi@trasportiverdi.example\n" +
				"Elenco: AB123CD Fiat Ducato, EF 456 GH Iveco Daily, AB123CD (ripetuta)\nTotale 2 veicoli\nMassimale RCA: EUR 10.000.000"},
			want: map[string]string{
				FieldContraente: "Trasporti Verdi S.r.l.", FieldPartitaIVA: "01234567897", FieldTelefono: "021234567",
				FieldEmail: "m.verdi@trasportiverdi.example", FieldIndirizzo: "Via Roma 12", FieldCitta: "Milano", FieldProvincia: "MI",
				FieldTarghe: "AB123CD,EF456GH", FieldNumVeicoli: "2", FieldMassimale: "", FieldDecorrenza: "2027-03-01",
			},
		},
		{
			name:   "form with labels on their own lines",
			sender: "segreteria@studio.example",
			texts:  []string{"questionario RC professionale avvocato", "Dati del proponente\nCognome e nome\n\nDott. Rossi Mario\nCodice fiscale\n\nRSSMRA80A01H501U\nPartita IVA\n\n01234567897\nStudio\nVia XX Settembre 32/5, 16121 Genova (GE)\nTelefono\n\n010 5702218\nMassimale richiesto\n\nEUR 1.500.000,00\nDecorrenza\n\n20/12/2026"},
			want: map[string]string{
				FieldContraente: "Mario Rossi", FieldCodiceFiscale: "RSSMRA80A01H501U", FieldPartitaIVA: "01234567897",
				FieldIndirizzo: "Via XX Settembre 32/5", FieldCitta: "Genova", FieldProvincia: "GE", FieldTelefono: "0105702218",
				FieldMassimale: "1500000", FieldDecorrenza: "2026-12-20", FieldEmail: "segreteria@studio.example",
				FieldTarghe: "", FieldNumVeicoli: "", FieldProfessione: "avvocato",
			},
		},
		{
			name:   "bad checksums are dropped, broker is never the contraente",
			sender: "",
			texts:  []string{"Spett.le Navigli Broker S.r.l.,\nRC professionale geometra iscritto all'albo.\nP.IVA 01234567890, C.F. RSSMRA80A01H501A\nmassimale di 2,5 milioni\nchiamare al 347 8821934"},
			want: map[string]string{
				FieldContraente: "", FieldPartitaIVA: "", FieldCodiceFiscale: "", FieldMassimale: "2500000", FieldTelefono: "3478821934",
				FieldProfessione: "geometra",
			},
		},
		{
			name:   "private person from the sender's signature",
			sender: "\"Avv. Lucia Bianchi\" <lucia@example.org>",
			texts:  []string{"Buongiorno,\nvorrei una polizza per la casa a partire dal 10/12/2026.\nGrazie\nLucia Bianchi\ncell. 339 6120458"},
			want:   map[string]string{FieldContraente: "Lucia Bianchi", FieldTelefono: "3396120458", FieldDecorrenza: "2026-12-10", FieldEmail: "lucia@example.org"},
		},
	}
	for _, tt := range append(tests, categoryFieldCases...) {
		t.Run(tt.name, func(t *testing.T) {
			out := classifyText(t, tt.sender, tt.texts...)
			got := fieldMap(out.Fields)
			for name, want := range tt.want {
				f, ok := got[name]
				if want == "" {
					if ok {
						t.Errorf("%s = %q; want none", name, f.Value)
					}
					continue
				}
				if !ok || f.Value != want {
					t.Errorf("%s = %q; want %q", name, f.Value, want)
				}
			}
		})
	}
}

func TestFieldSpansArePreciseRuneOffsets(t *testing.T) {
	text := "Perché è urgente: città già assicurata.\fPagina due — P.IVA 01234567897 e-mail: però@example.it info@ditta.example"
	out := classifyText(t, "", text)
	f, ok := fieldMap(out.Fields)[FieldPartitaIVA]
	if !ok {
		t.Fatalf("no partita_iva in %+v", out.Fields)
	}
	r := []rune(text)
	if got := string(r[f.Start:f.End]); got != "01234567897" {
		t.Fatalf("span %d:%d reads %q", f.Start, f.End, got)
	}
	if f.Page != 2 || f.SectionIndex != 0 {
		t.Fatalf("page %d section %d; want page 2 (after the form feed), section 0", f.Page, f.SectionIndex)
	}
	e := fieldMap(out.Fields)[FieldEmail]
	if e.Value != "info@ditta.example" || string(r[e.Start:e.End]) != "info@ditta.example" {
		t.Fatalf("email %+v", e)
	}
}

func TestClassifierCategories(t *testing.T) {
	tests := []struct {
		text, want string
		review     bool
	}{
		{"Richiesta quotazione flotta aziendale a libro matricola: 12 autocarri, RCA e kasko, elenco targhe allegato.", "Flotta Auto", false},
		{"Preventivo RC professionale per geometra iscritto all'albo, retroattività 10 anni, massimale 1 milione.", "RC Professionale", false},
		{"Polizza globale fabbricati per il condominio: valore di ricostruzione a nuovo 3 milioni, anno di costruzione 1970.", "Fabbricato", false},
		{"Polizza CAR per il cantiere: contractors all risks, importo dei lavori d'appalto 2 milioni.", "Rischi Tecnologici", false},
		{"Buongiorno, vi scrivo per un sollecito sulla liquidazione del sinistro.", "Altro", false},
		// Small talk is not a quote request: the trained model has seen
		// plenty of such mail labelled Altro.
		{"Buongiorno, ci sentiamo domani.", "Altro", false},
	}
	for _, tt := range tests {
		out := classifyText(t, "", tt.text)
		if out.Category != tt.want || out.NeedsReview != tt.review {
			t.Errorf("%q: got %s (%.2f, review %v); want %s (review %v)", tt.text, out.Category, out.Confidence, out.NeedsReview, tt.want, tt.review)
		}
		if out.Confidence <= 0 || out.Confidence > 1 {
			t.Errorf("confidence %v out of (0,1]", out.Confidence)
		}
	}
}

func TestClassifierCarriesEnvelopeAndFeedback(t *testing.T) {
	fb := []events.FeedbackItem{{ID: "abc", Type: "date_in_past", Quote: "x"}}
	in := events.SectionsAnalyzed{Document: events.Document{ID: "doc", Filename: "f.pdf"}, PageCount: 4, Feedback: fb,
		Sections: []events.Section{{Text: "polizza flotta"}}}
	out, err := (&Classifier{}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Document != in.Document || out.PageCount != 4 || len(out.Feedback) != 1 || out.Feedback[0].ID != "abc" || out.Meta != (events.Meta{}) {
		t.Fatalf("envelope not carried: %+v", out)
	}
	if out.Provider != "trained-logreg" {
		t.Fatalf("provider %q", out.Provider)
	}
}

// A broker's own taxonomy restricts the categories; what the model
// predicts outside it falls back to the last category, for review.
func TestCustomTaxonomy(t *testing.T) {
	data := []byte(`{"fallback":"Varie","categories":[{"name":"Cauzioni","terms":{"cauzione":4,"fideiussione":4}},{"name":"Varie","prior":1}]}`)
	c := &Classifier{TaxonomyData: data}
	out, err := c.Handle(context.Background(), events.SectionsAnalyzed{Sections: []events.Section{{Text: "richiesta di fideiussione e cauzione definitiva"}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Category != "Cauzioni" {
		t.Fatalf("got %s", out.Category)
	}
	c2 := &Classifier{Taxonomy: []string{"Fabbricato", "Altro"}}
	out, err = c2.Handle(context.Background(), events.SectionsAnalyzed{Sections: []events.Section{{Text: "flotta di autocarri, targhe, RCA e kasko"}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Category != "Altro" || !out.NeedsReview {
		t.Fatalf("category outside the taxonomy: got %s review %v; want Altro for review", out.Category, out.NeedsReview)
	}
	yml := []byte("fallback: Varie\ncategories:\n  - name: Varie\n    prior: 1\n  - name: Cauzioni\n    terms: {cauzione: 4, fideiussione: 4}\n")
	out, err = (&Classifier{TaxonomyData: yml}).Handle(context.Background(), events.SectionsAnalyzed{Sections: []events.Section{{Text: "richiesta di fideiussione"}}})
	if err != nil || out.Category != "Cauzioni" {
		t.Fatalf("YAML taxonomy: got %s, %v", out.Category, err)
	}
	if tf, err := ParseTaxonomy(yml); err != nil || strings.Join(tf.Ordered(), "|") != "Cauzioni|Varie" {
		t.Fatalf("Ordered() must put the fallback last: %v %v", tf.Ordered(), err)
	}
	if _, err := (&Classifier{TaxonomyData: []byte(`{"categories":[]}`)}).Handle(context.Background(), events.SectionsAnalyzed{}); err == nil {
		t.Fatal("want error for an empty taxonomy")
	}
}

func TestEmbeddedTaxonomy(t *testing.T) {
	tf, err := DefaultTaxonomy()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Flotta Auto", "RC Professionale", "Fabbricato", "Rischi Tecnologici", "Altro"}
	if got := strings.Join(tf.Names(), "|"); got != strings.Join(want, "|") || tf.Fallback != "Altro" {
		t.Fatalf("categories %s fallback %s", got, tf.Fallback)
	}
	m, err := NewKeywordModel(tf)
	if err != nil {
		t.Fatal(err)
	}
	_, _, scores := m.Predict("polizza flotta")
	var sum float64
	for _, p := range scores {
		sum += p
	}
	if sum < 0.999 || sum > 1.001 {
		t.Fatalf("probabilities sum to %v", sum)
	}
	if ex := m.Explain("flotta di furgoni, flotta", "Flotta Auto"); ex["flotta"] != 2 || ex["furgoni"] != 1 {
		t.Fatalf("explain %v", ex)
	}
}

var categoryFieldCases = []struct {
	name   string
	sender string
	texts  []string
	want   map[string]string
}{
	{
		name: "building questionnaire",
		texts: []string{"Richiesta polizza globale fabbricati per il condominio.",
			"Scheda fabbricato\nUbicazione\nPiazza Garibaldi 3, 20900 Monza (MB)\nAnno di costruzione\n1974\nSuperficie lorda\n2.400 mq\nValore di ricostruzione a nuovo\nEUR 4.100.000,00\nDecorrenza 31/01/2027\nAmministratore: Studio Rossi, Via Po 2, 20900 Monza (MB)"},
		want: map[string]string{
			FieldValoreFabbricato: "4100000", FieldSuperficie: "2400", FieldAnnoCostruzione: "1974",
			FieldIndirizzo: "Piazza Garibaldi 3", FieldCitta: "Monza", FieldProvincia: "MB", FieldDecorrenza: "2027-01-31",
			FieldProfessione: "", FieldTipoImpianto: "",
		},
	},
	{
		name:  "photovoltaic plant",
		texts: []string{"Preventivo all risks per il nostro impianto fotovoltaico da 500 kWp sul capannone.\nValore a nuovo dell'impianto: 610.000 euro.\nTotale 2 inverter"},
		want:  map[string]string{FieldTipoImpianto: "fotovoltaico", FieldValoreImpianto: "610000", FieldSuperficie: "", FieldFatturato: ""},
	},
	{
		name:  "professional turnover: the last year listed",
		texts: []string{"Questionario RC professionale psicologa iscritta all'albo\nProfessione: Psicologa\nFatturato (EUR)\n2024\n41.000,00\n2025\n44.500,00\nMassimale richiesto EUR 500.000"},
		want:  map[string]string{FieldProfessione: "psicologo", FieldFatturato: "44500", FieldMassimale: "500000"},
	},
}

func TestNewReadsTaxonomyFile(t *testing.T) {
	c, err := New("", 0.7)
	if err != nil {
		t.Fatal(err)
	}
	cats, err := c.Categories()
	if err != nil || strings.Join(cats, "|") != "Flotta Auto|RC Professionale|Fabbricato|Rischi Tecnologici|Altro" {
		t.Fatalf("default categories %v %v", cats, err)
	}
	path := filepath.Join(t.TempDir(), "tax.yaml")
	if err := os.WriteFile(path, []byte("fallback: Varie\ncategories:\n  - name: Varie\n  - name: Cauzioni\n    terms: {cauzione: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = New(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cats, _ := c.Categories(); strings.Join(cats, "|") != "Cauzioni|Varie" {
		t.Fatalf("file categories %v", cats)
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing.yaml"), 0); err == nil {
		t.Fatal("want error for a missing file")
	}
	if err := os.WriteFile(path, []byte("categories: [{name: A, patterns: {'(': 1}}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(path, 0); err == nil {
		t.Fatal("want error for a bad pattern")
	}
}
