package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRetrievalFindsTheAnsweringPassage(t *testing.T) {
	tests := []struct {
		doc, lang, question string
		want                string // a span the best passage must contain
	}{
		{"0002-message", "it", "Qual è la targa del veicolo?", "GS479LD"}, // "auto" is a vehicle
		{"0002-message", "it", "Qual è la targa dell'Iveco?", "FT685PW"},
		{"0002-message", "it", "Qual è la targa della Dacia?", "GS479LD"},
		{"0001-attachment-1", "it", "Qual è la targa dello Scania?", "FY682SR"},
		{"0001-message", "it", "Quando scade la polizza attuale?", "La polizza attuale scade il 31/12/2026"},
		{"0001-message", "en", "When does the policy expire?", "La polizza attuale scade il 31/12/2026"},
		{"0001-message", "it", "Qual è la partita IVA?", "P.IVA 19273480160"},
		{"0001-attachment-1", "it", "Qual è il massimale RCA richiesto?", "Massimale RCA richiesto: EUR 15.000.000"},
		{"0001-attachment-1", "en", "What is the requested start date?", "Decorrenza richiesta: 01/01/2027"},
		{"0007-message", "it", "Qual è il massimale richiesto?", "Massimale richiesto: Euro 2.000.000"},
		{"0007-message", "it", "Quanto fattura lo studio?", "Fatturato 2025: Euro 142.000"},
		{"0007-message", "en", "What is the lawyer's turnover?", "Fatturato 2025: Euro 142.000"},
		{"0007-message", "it", "Qual è il numero di telefono?", "Tel. 06 3721884"},
		{"0009-attachment-1", "it", "Qual è la specializzazione del medico?", "Ortopedia e traumatologia"},
		{"0009-attachment-1", "it", "Ci sono stati sinistri?", "Un sinistro nel 2021"},
		{"0009-attachment-1", "en", "What is the retroactive period?", "Retroattività"},
		{"0011-attachment-1", "it", "In che anno è stato costruito il fabbricato?", "Anno di costruzione\n1968"},
		{"0011-attachment-1", "en", "What is the rebuilding value of the building?", "Valore di ricostruzione a nuovo\nEUR 5.200.000,00"},
		{"0011-attachment-1", "it", "Quanti ascensori ci sono?", "2 ascensori"},
		{"0017-attachment-1", "it", "Quando iniziano i lavori?", "Inizio lavori\n01/02/2027"},
		{"0017-attachment-1", "en", "Who is the works director?", "Ing. Paolo Ceccarelli"},
		{"0017-attachment-1", "it", "Qual è la zona sismica?", "Zona sismica\n2"},
	}
	r := newTestRetrieval(t)
	for _, tt := range tests {
		t.Run(tt.doc+"/"+tt.question, func(t *testing.T) {
			secs := loadSections(t, tt.doc)
			var pieces []string
			a, err := r.Answer(t.Context(), Question{Document: tt.doc, Language: tt.lang, Text: tt.question, Sections: secs}, collect(&pieces))
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Citations) == 0 || len(a.Citations) > 3 {
				t.Fatalf("%d citations, want 1 to 3; answer:\n%s", len(a.Citations), a.Text)
			}
			if !strings.Contains(a.Citations[0].Quote, tt.want) {
				t.Errorf("best passage %q (S%d) does not hold %q; answer:\n%s", a.Citations[0].Quote, a.Citations[0].Section, tt.want, a.Text)
			}
			checkSpans(t, secs, a.Citations)
			if a.Grounding != GroundingRetrieval || a.Provider != "rules" || a.Model != "" {
				t.Errorf("grounding, provider, model = %q, %q, %q", a.Grounding, a.Provider, a.Model)
			}
			if intro := textsFor(tt.lang).retrieval; !strings.HasPrefix(a.Text, intro) {
				t.Errorf("answer does not start with the %s retrieval notice:\n%s", tt.lang, a.Text)
			}
			if strings.Join(pieces, "") != a.Text {
				t.Errorf("emitted %q, answer text %q", strings.Join(pieces, ""), a.Text)
			}
			if len(pieces) != 1+len(a.Citations) {
				t.Errorf("emitted %d pieces, want the notice and one per passage (%d)", len(pieces), 1+len(a.Citations))
			}
			for _, c := range a.Citations {
				if !strings.Contains(a.Text, fmt.Sprintf("[S%d]", c.Section)) {
					t.Errorf("text does not cite [S%d]:\n%s", c.Section, a.Text)
				}
			}
		})
	}
}

func TestRetrievalSaysWhenNothingMatches(t *testing.T) {
	tests := []struct{ lang, question string }{
		{"it", "Qual è il colore preferito del gatto?"},
		{"en", "Which football team won the championship?"},
		{"it", "   "},
	}
	r := newTestRetrieval(t)
	secs := loadSections(t, "0011-attachment-1")
	for _, tt := range tests {
		t.Run(tt.question, func(t *testing.T) {
			var pieces []string
			a, err := r.Answer(t.Context(), Question{Language: tt.lang, Text: tt.question, Sections: secs}, collect(&pieces))
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Citations) != 0 || a.Text != textsFor(tt.lang).noMatch || strings.Join(pieces, "") != a.Text {
				t.Errorf("answer = %+v, emitted %q; want the %s no-match notice and no citations", a, pieces, tt.lang)
			}
		})
	}
}

func TestRetrievalWithoutSections(t *testing.T) {
	a, err := newTestRetrieval(t).Answer(t.Context(), Question{Text: "Qual è la targa?"}, func(string) error { return nil })
	if err != nil || len(a.Citations) != 0 || a.Text != textsFor("it").noMatch {
		t.Fatalf("answer = %+v, %v", a, err)
	}
}

func TestRetrievalAnswersInTheQuestionsLanguage(t *testing.T) {
	r := newTestRetrieval(t)
	secs := loadSections(t, "0001-message")
	// An Italian console, an English question: the answer's own words
	// follow the question.
	a, err := r.Answer(t.Context(), Question{Language: "it", Text: "When does the current policy expire?", Sections: secs}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Text, textsFor("en").retrieval) {
		t.Errorf("answer not introduced in English:\n%s", a.Text)
	}
}

func TestRetrievalStopsWhenEmitFails(t *testing.T) {
	r := newTestRetrieval(t)
	secs := loadSections(t, "0009-attachment-1")
	gone := errors.New("browser gone")
	calls := 0
	_, err := r.Answer(t.Context(), Question{Text: "Qual è il massimale e la decorrenza?", Sections: secs}, func(string) error {
		calls++
		return gone
	})
	if !errors.Is(err, gone) || calls != 1 {
		t.Fatalf("err = %v after %d emits, want the emit error after the first", err, calls)
	}
}

func TestRetrievalStopsWhenCancelled(t *testing.T) {
	r := newTestRetrieval(t)
	secs := loadSections(t, "0009-attachment-1")
	ctx, cancel := context.WithCancel(t.Context())
	var pieces []string
	_, err := r.Answer(ctx, Question{Text: "Qual è il massimale e la decorrenza?", Sections: secs}, func(d string) error {
		pieces = append(pieces, d)
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || len(pieces) != 1 {
		t.Fatalf("err = %v after %d pieces, want context.Canceled after the first", err, len(pieces))
	}
}

func TestPassagesAreExactTrimmedSpans(t *testing.T) {
	for _, name := range []string{"0001-attachment-1", "0002-message", "0007-message", "0009-attachment-1", "0017-attachment-1", "0020-attachment-1"} {
		for i, s := range loadSections(t, name) {
			ps := passages(i, s.Text)
			if len(ps) == 0 {
				t.Errorf("%s S%d: no passages", name, s.Index)
			}
			last := 0
			for _, p := range ps {
				q := s.Text[p.start:p.end]
				switch {
				case p.start < last || p.end <= p.start:
					t.Errorf("%s S%d: passage [%d,%d) overlaps or is empty", name, s.Index, p.start, p.end)
				case strings.TrimSpace(q) != q:
					t.Errorf("%s S%d: passage %q not trimmed", name, s.Index, q)
				case len(q) > maxPassage:
					t.Errorf("%s S%d: passage of %d bytes, limit %d", name, s.Index, len(q), maxPassage)
				}
				last = p.end
			}
			// Nothing but white space is left out.
			var covered strings.Builder
			for _, p := range ps {
				covered.WriteString(s.Text[p.start:p.end])
			}
			if strings.Join(strings.Fields(covered.String()), "") != strings.Join(strings.Fields(s.Text), "") {
				t.Errorf("%s S%d: passages lose text", name, s.Index)
			}
		}
	}
}

func TestPassagesCutListsAndSentences(t *testing.T) {
	text := "Di seguito i miei dati, che riporto per completezza come richiesto nel vostro modulo di preventivo:\n" +
		"- Fatturato 2025: Euro 142.000\n- Massimale richiesto: Euro 2.000.000 per sinistro e per anno\n" +
		"- Nessun sinistro pregresso\n\nLa polizza attuale scade il 31/12/2026. Vorremmo confrontare le condizioni prima della disdetta. " +
		"Il contratto è stato firmato dall'Avv. Rossi presso la sede della S.r.l. di Milano e registrato a cura dello studio."
	var got []string
	for _, p := range passages(0, text) {
		got = append(got, text[p.start:p.end])
	}
	want := []string{
		"Di seguito i miei dati, che riporto per completezza come richiesto nel vostro modulo di preventivo:",
		"- Fatturato 2025: Euro 142.000",
		"- Massimale richiesto: Euro 2.000.000 per sinistro e per anno",
		"- Nessun sinistro pregresso",
		"La polizza attuale scade il 31/12/2026.",
		"Vorremmo confrontare le condizioni prima della disdetta.",
		"Il contratto è stato firmato dall'Avv. Rossi presso la sede della S.r.l. di Milano e registrato a cura dello studio.",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("passages:\n%q\nwant:\n%q", got, want)
	}
}

func TestEmbeddedGlossaryAndStemming(t *testing.T) {
	r := newTestRetrieval(t)
	// The glossary bridges forms whose stems differ and the two languages.
	for _, pair := range [][2]string{{"scade", "scadenza"}, {"expire", "scade"}, {"plate", "targa"}, {"policy", "polizza"}} {
		found := false
		for _, alts := range r.query(pair[0]) {
			found = found || alts[r.it.term(pair[1])] > 0
		}
		if !found {
			t.Errorf("query %q does not look for %q (%v)", pair[0], pair[1], r.query(pair[0]))
		}
	}
	if r.it.term("polizze") != r.it.term("polizza") || r.en.term("policies") != r.en.term("policy") {
		t.Error("stemming does not join singular and plural")
	}
	if r.it.term("della") != "" || r.en.term("the") != "" {
		t.Error("stop words are indexed")
	}
	if _, err := parseGlossary("cue: quando -> #nonsense\n", r.it, r.en); err == nil {
		t.Error("a cue of an unknown kind was accepted")
	}
}
