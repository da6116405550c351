package split

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
	"prismflow/stages/extract"
)

// nonSpace is s without its whitespace: what splitting must preserve.
func nonSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// checkSplit asserts the guarantees of Handle on any input.
func checkSplit(t *testing.T, in events.TextExtracted, out events.SectionsSplit, maxRunes int) {
	t.Helper()
	var want, got strings.Builder
	for _, p := range in.Pages {
		want.WriteString(nonSpace(p.Text))
	}
	for i, s := range out.Sections {
		got.WriteString(nonSpace(s.Text))
		if s.Index != int32(i) {
			t.Errorf("section %d has Index %d", i, s.Index)
		}
		if n := utf8.RuneCountInString(s.Text); n > maxRunes {
			t.Errorf("section %d (%q) has %d runes, over %d", i, s.Title, n, maxRunes)
		}
		if strings.TrimSpace(s.Text) == "" || strings.TrimSpace(s.Title) == "" {
			t.Errorf("section %d: empty title %q or text %q", i, s.Title, s.Text)
		}
		if s.PageStart < 1 || s.PageEnd < s.PageStart {
			t.Errorf("section %d: pages %d-%d", i, s.PageStart, s.PageEnd)
		}
		if i > 0 && s.PageStart < out.Sections[i-1].PageEnd {
			t.Errorf("section %d starts on page %d, before section %d ends (page %d)", i, s.PageStart, i-1, out.Sections[i-1].PageEnd)
		}
	}
	if got.String() != want.String() {
		w, g := want.String(), got.String()
		n := 0
		for n < len(w) && n < len(g) && w[n] == g[n] {
			n++
		}
		t.Fatalf("sections do not hold the pages' text: they differ at byte %d of %d (pages) / %d (sections): pages %q…, sections %q…",
			n, len(w), len(g), w[n:min(len(w), n+40)], g[n:min(len(g), n+40)])
	}
	if out.Document != in.Document || out.Language != in.Language || out.PageCount != in.PageCount {
		t.Errorf("Document, Language or PageCount not copied")
	}
	if out.Meta != (events.Meta{}) {
		t.Errorf("Meta set: %+v", out.Meta)
	}
}

func pages(texts ...string) []events.Page {
	ps := make([]events.Page, len(texts))
	for i, t := range texts {
		ps[i] = events.Page{Number: int32(i + 1), Text: t, Method: events.MethodDigital, Confidence: 1}
		if t == "" {
			ps[i].Method, ps[i].NeedsOCR, ps[i].Confidence = events.MethodNone, true, 0
		}
	}
	return ps
}

func TestSections(t *testing.T) {
	type want struct {
		title      string
		firstLine  string
		start, end int32
	}
	tests := []struct {
		name  string
		lang  string
		pages []string
		want  []want
	}{
		{
			name: "questionnaire with capitals and articles",
			lang: "it",
			pages: []string{
				"Spett.le Broker Assicurazioni S.r.l.\nVia Roma 1, Milano\n\n" +
					"DATI DEL CONTRAENTE\nRagione sociale: Rossi Costruzioni S.r.l.\nPartita IVA: 01234567890\n\n" +
					"Art. 1 – Oggetto dell'assicurazione\nLa Società si obbliga a tenere indenne l'Assicurato di quanto questi sia tenuto a pagare.\n" +
					"1. La garanzia vale per i danni involontariamente cagionati a terzi.\n2. Sono compresi i danni da incendio.\n",
				"Art. 2 - Massimali\nIl massimale per sinistro è di euro 2.500.000,00.\n\nArt. 3: Durata del contratto\nIl contratto ha durata annuale con tacito rinnovo.",
			},
			want: []want{
				{"Spett.le Broker Assicurazioni S.r.l. Via Roma 1, Milano", "Spett.le Broker Assicurazioni S.r.l.", 1, 1},
				{"DATI DEL CONTRAENTE", "DATI DEL CONTRAENTE", 1, 1},
				{"Art. 1 – Oggetto dell'assicurazione", "Art. 1 – Oggetto dell'assicurazione", 1, 1},
				{"Art. 2 - Massimali", "Art. 2 - Massimali", 2, 2},
				{"Art. 3: Durata del contratto", "Art. 3: Durata del contratto", 2, 2},
			},
		},
		{
			name: "numbered titles, a list stays inside",
			lang: "it",
			pages: []string{
				"1. Oggetto\nLa polizza copre i rischi elencati:\n1. Incendio\n2. Furto\n3. Eventi atmosferici\n\n" +
					"2. Esclusioni\nSono esclusi i danni dolosi.\n2.1 Franchigie\nSi applica una franchigia di euro 500.\n" +
					"3) Pagamento del premio\nIl premio è pagato in rate semestrali.",
			},
			want: []want{
				{"1. Oggetto", "1. Oggetto", 1, 1},
				{"2. Esclusioni", "2. Esclusioni", 1, 1},
				{"2.1 Franchigie", "2.1 Franchigie", 1, 1},
				{"3) Pagamento del premio", "3) Pagamento del premio", 1, 1},
			},
		},
		{
			name: "section over a page break; running footer ignored",
			lang: "it",
			pages: []string{
				"CONDIZIONI GENERALI DI\nASSICURAZIONE\n\nArt. 1 - Definizioni\nAssicurato: il soggetto il cui interesse è protetto.\n\nPagina 1 di 2",
				"Contraente: chi stipula il contratto.\n\nPagina 2 di 2",
			},
			want: []want{
				{"CONDIZIONI GENERALI DI ASSICURAZIONE", "CONDIZIONI GENERALI DI", 1, 1},
				{"Art. 1 - Definizioni", "Art. 1 - Definizioni", 1, 2},
			},
		},
		{
			name: "markdown and layout headings",
			lang: "en",
			pages: []string{
				"# Summary\nThe insured asks for a quote.\n\nClaims history\n\nNo claims were reported in the last five years, and the fleet is new.\n\n## Vehicles\nTwo vans.",
			},
			want: []want{
				{"Summary", "# Summary", 1, 1},
				{"Claims history", "Claims history", 1, 1},
				{"Vehicles", "## Vehicles", 1, 1},
			},
		},
		{
			name: "wrapped prose is not a heading",
			lang: "it",
			pages: []string{
				"PREMESSA\nIl presente contratto è regolato dalle norme di legge previste dall'\nArt. 1341 del codice civile, e dalle condizioni che seguono,\n" +
					"COMPRESE LE CLAUSOLE VESSATORIE approvate per iscritto dal Contraente.",
			},
			want: []want{
				{"PREMESSA", "PREMESSA", 1, 1},
			},
		},
		{
			name:  "no headings: a section per page, Italian",
			lang:  "it",
			pages: []string{"il contraente dichiara che non ci sono sinistri.", "", "firma del contraente e data."},
			want: []want{
				{"Pagina 1", "il contraente dichiara che non ci sono sinistri.", 1, 1},
				{"Pagina 3", "firma del contraente e data.", 3, 3},
			},
		},
		{
			name:  "no headings: a section per page, other languages",
			lang:  "",
			pages: []string{"some words here.", "more words there."},
			want: []want{
				{"Page 1", "some words here.", 1, 1},
				{"Page 2", "more words there.", 2, 2},
			},
		},
		{
			name: "vehicle table rows are not headings",
			lang: "it",
			pages: []string{
				"Elenco veicoli\n\nN.\nTarga\nMarca e modello\n\n1\nGH461XW\nIVECO S-WAY\n\n2\nFY682SR\nSCANIA R450\n\nTotale 2 veicoli.",
			},
			want: []want{
				{"Elenco veicoli", "Elenco veicoli", 1, 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := events.TextExtracted{Document: events.Document{ID: "d1", Filename: "f.pdf"}, Language: tt.lang, Pages: pages(tt.pages...), PageCount: int32(len(tt.pages))}
			out, err := (&Splitter{}).Handle(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			checkSplit(t, in, out, DefaultMaxSectionRunes)
			var got []want
			for _, s := range out.Sections {
				first, _, _ := strings.Cut(s.Text, "\n")
				got = append(got, want{s.Title, first, s.PageStart, s.PageEnd})
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d sections, want %d:\n%+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("section %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestMaxSectionRunes(t *testing.T) {
	para := strings.Repeat("Il contraente è tenuto a comunicare ogni variazione del rischio. ", 5) // 330 runes
	text := "Art. 5 - Obblighi del contraente\n" + para + "\n\n" + para + "\n\n" + para + "\n" + strings.Repeat("x", 900)
	in := events.TextExtracted{Language: "it", Pages: pages(text), PageCount: 1}
	const limit = 400
	out, err := (&Splitter{MaxSectionRunes: limit}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	checkSplit(t, in, out, limit)
	if len(out.Sections) < 4 {
		t.Fatalf("got %d sections, want the long article cut in at least 4", len(out.Sections))
	}
	n := len(out.Sections)
	for i, s := range out.Sections {
		if want := "Art. 5 - Obblighi del contraente (" + itoa(i+1) + "/" + itoa(n) + ")"; s.Title != want {
			t.Errorf("piece %d: title %q, want %q", i, s.Title, want)
		}
	}
	// The first cut is at the end of the first paragraph.
	if want := "Art. 5 - Obblighi del contraente\n" + para; out.Sections[0].Text != want {
		t.Errorf("first piece %q, want the heading and the first paragraph", out.Sections[0].Text)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestNoText(t *testing.T) {
	blankPages := []events.Page{{Number: 1, Text: " \n", Method: events.MethodDigital, Confidence: 1}, {Number: 2, Method: events.MethodDigital}}
	_, err := (&Splitter{}).Handle(context.Background(), events.TextExtracted{Pages: blankPages, PageCount: 2})
	if !pipeline.IsPermanent(err) || !errors.Is(err, ErrNoText) {
		t.Errorf("blank pages: got %v, want a permanent ErrNoText", err)
	}
	_, err = (&Splitter{}).Handle(context.Background(), events.TextExtracted{})
	if !pipeline.IsPermanent(err) || !errors.Is(err, ErrNoText) {
		t.Errorf("no pages: got %v, want a permanent ErrNoText", err)
	}
	out, err := (&Splitter{}).Handle(context.Background(), events.TextExtracted{Pages: pages("", ""), PageCount: 2})
	if err != nil || len(out.Sections) != 0 {
		t.Errorf("pages waiting for OCR: got %d sections, error %v; want none and no error", len(out.Sections), err)
	}
}

const corpusDir = "../../../shared/corpus"

// extractFile runs the extract stage on a PDF stored in a file blob store,
// as the pipeline does.
func extractFile(t *testing.T, path string) events.TextExtracted {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("test file missing (the shared corpus is expected at /work/shared/corpus, i.e. %s from this package): %v", corpusDir, err)
	}
	defer f.Close()
	store, err := blob.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, sum, size, err := blob.PutContent(context.Background(), store, f)
	if err != nil {
		t.Fatal(err)
	}
	doc := events.Document{ID: sum[:12], Filename: filepath.Base(path), ContentType: "application/pdf", SizeBytes: size, SHA256: sum, Blob: key}
	out, err := (&extract.Extractor{Blobs: store}).Handle(context.Background(), events.DocumentReceived{Document: doc})
	if err != nil {
		t.Fatalf("extract %s: %v", path, err)
	}
	return out
}

// TestRealCorpus splits every readable PDF of the real corpus, checking
// that no text is lost, with the default limit and a small one that forces
// cuts.
func TestRealCorpus(t *testing.T) {
	manifest, err := os.ReadFile(filepath.Join(corpusDir, "real", "manifest.jsonl"))
	if err != nil {
		t.Fatalf("the shared corpus is expected at /work/shared/corpus (%s from this package): %v", corpusDir, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(manifest))
	n := 0
	for sc.Scan() {
		var m struct {
			Path      string `json:"path"`
			Encrypted bool   `json:"encrypted"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Encrypted || strings.HasPrefix(m.Path, "017-") {
			continue // encrypted and unreadable files never reach split
		}
		n++
		t.Run(m.Path, func(t *testing.T) {
			in := extractFile(t, filepath.Join(corpusDir, "real", m.Path))
			for _, limit := range []int{DefaultMaxSectionRunes, 300} {
				out, err := (&Splitter{MaxSectionRunes: limit}).Handle(context.Background(), in)
				if err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
				checkSplit(t, in, out, limit)
				if limit == DefaultMaxSectionRunes {
					titles := make([]string, len(out.Sections))
					for i, s := range out.Sections {
						titles[i] = s.Title
					}
					t.Logf("%d sections: %q", len(titles), titles[:min(len(titles), 12)])
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("manifest lists no readable PDFs")
	}
}

// TestQuestionnaire splits a real broker questionnaire: the title in
// capitals over two lines, then numbered parts.
func TestQuestionnaire(t *testing.T) {
	in := extractFile(t, filepath.Join(corpusDir, "insurance-dev/0003/attachment-1.digital.pdf"))
	out, err := (&Splitter{}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	checkSplit(t, in, out, DefaultMaxSectionRunes)
	var titles []string
	for _, s := range out.Sections {
		titles = append(titles, s.Title)
	}
	want := []string{
		"QUESTIONARIO PER LA QUOTAZIONE DI FLOTTE AZIENDALI",
		"1. Contraente",
		"2. Flotta",
		"3. Garanzie richieste",
		"4. Elenco veicoli",
		"5. Sinistri ultimi 5 anni",
	}
	if strings.Join(titles, "|") != strings.Join(want, "|") {
		t.Errorf("titles\n%q\nwant\n%q", titles, want)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("DATI DEL CONTRAENTE\nRossi S.r.l.\n\fArt. 1 – Oggetto\ntesto\n\n1. Incendio\n2. Furto", uint16(20))
	f.Add("# a\n\n\n  \n\tb c d e f g h i j k l m n o p\f\f", uint16(3))
	f.Add("parola"+strings.Repeat("x", 100)+" fine\nÀÈÌ ÒÙ\n", uint16(16))
	f.Add("\xff\xfe invalid \xc3 utf8\f1.\f", uint16(0))
	f.Fuzz(func(t *testing.T, doc string, limit uint16) {
		var texts []string
		for p := range strings.SplitSeq(doc, "\f") {
			texts = append(texts, p)
		}
		in := events.TextExtracted{Language: "it", Pages: pages(texts...), PageCount: int32(len(texts))}
		s := &Splitter{MaxSectionRunes: int(limit)}
		out, err := s.Handle(context.Background(), in)
		if strings.TrimSpace(nonSpace(doc)) == "" {
			if err == nil && len(out.Sections) != 0 {
				t.Fatalf("no text, yet %d sections", len(out.Sections))
			}
			return
		}
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		maxRunes := int(limit)
		if maxRunes == 0 {
			maxRunes = DefaultMaxSectionRunes
		}
		checkSplit(t, in, out, max(maxRunes, minSectionRunes))
	})
}

// BenchmarkSplitPathological splits inputs that once took quadratic time
// (a block of capitals, a very long line or word cut to a small limit);
// each should take well under a second.
func BenchmarkSplitPathological(b *testing.B) {
	cases := []struct {
		name  string
		text  string
		limit int
	}{
		{"caps block", strings.Repeat("DATI DEL CONTRAENTE\n", 20000), 0},
		{"numbered", strings.Repeat("1. Oggetto\n", 20000), 0},
		{"long line", strings.Repeat("parola ", 300000), 16},
		{"long word", strings.Repeat("x", 2000000), 16},
		{"many paragraphs", strings.Repeat("Testo breve.\n\n", 100000), 16},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			in := events.TextExtracted{Pages: []events.Page{{Number: 1, Text: c.text}}}
			s := &Splitter{MaxSectionRunes: c.limit}
			for b.Loop() {
				if _, err := s.Handle(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
