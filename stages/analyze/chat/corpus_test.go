package chat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRetrievalOnTheCorpus asks, of every document of the development
// corpus (testdata: its e-mails and PDFs cut into sections), for each
// field its truth.json states: the value must be in a quoted passage.
// The truth is copied beside the sections (testdata/truth.json) so that
// the test needs nothing outside the package.
func TestRetrievalOnTheCorpus(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth map[string]map[string]any // item -> field -> value
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
	questions := map[string][]string{
		"partita_iva":    {"Qual è la partita IVA del contraente?", "What is the VAT number?"},
		"codice_fiscale": {"Qual è il codice fiscale?", "What is the tax code?"},
		"email":          {"Qual è l'indirizzo email del cliente?", "What is the client's email address?"},
		"telefono":       {"Qual è il numero di telefono?", "What is the phone number?"},
		"decorrenza":     {"Da quando deve decorrere la polizza?", "When should the cover start?"},
	}
	r := newTestRetrieval(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "[0-9][0-9][0-9][0-9]-*.json"))
	asked, top1, top3 := 0, 0, 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		secs := loadSections(t, name)
		var all strings.Builder
		for _, s := range secs {
			all.WriteString(s.Text + "\n")
		}
		for field, value := range truth[name[:4]] {
			forms := valueForms(field, value)
			if forms == nil || !containsAny(all.String(), forms) {
				continue // not a field asked about, or not in this document
			}
			for _, question := range questions[field] {
				a, err := r.Answer(t.Context(), Question{Text: question, Sections: secs}, func(string) error { return nil })
				if err != nil {
					t.Fatal(err)
				}
				checkSpans(t, secs, a.Citations)
				asked++
				found := false
				for i, c := range a.Citations {
					if containsAny(c.Quote, forms) {
						found = true
						top3++
						if i == 0 {
							top1++
						}
						break
					}
				}
				if !found {
					t.Logf("%s %q: %s not quoted; got %q", name, question, forms[0], quotes(a.Citations))
				}
			}
		}
	}
	t.Logf("corpus: %d questions, answer in the first passage %d (%.0f%%), in the quoted ones %d (%.0f%%)",
		asked, top1, 100*float64(top1)/float64(asked), top3, 100*float64(top3)/float64(asked))
	if asked < 100 {
		t.Fatalf("only %d questions asked: testdata incomplete", asked)
	}
	// Measured when written: 228 questions, 97% first, 100% quoted.
	if float64(top3) < 0.95*float64(asked) {
		t.Errorf("the answer is quoted for %d of %d questions, want at least 95%%", top3, asked)
	}
}

func quotes(cs []Citation) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Quote)
	}
	return out
}

func containsAny(s string, forms []string) bool {
	for _, f := range forms {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

var nonDigit = regexp.MustCompile(`\D`)

// valueForms returns how a truth value may be written in a document.
func valueForms(field string, v any) []string {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	switch field {
	case "partita_iva", "codice_fiscale", "email":
		return []string{s}
	case "telefono":
		// 0354567821 is written "035 4567821", "035.4567821", "347 8821934".
		d := nonDigit.ReplaceAllString(s, "")
		var forms []string
		for cut := 2; cut <= 4 && cut < len(d); cut++ {
			for _, sep := range []string{" ", ".", "-", "/"} {
				forms = append(forms, d[:cut]+sep+d[cut:])
			}
		}
		return append(forms, d)
	case "decorrenza":
		day, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil
		}
		months := []string{"gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre"}
		return []string{day.Format("02/01/2006"), day.Format("2/1/2006"), day.Format("02.01.2006"), day.Format("02-01-2006"),
			fmt.Sprintf("%d %s %d", day.Day(), months[day.Month()-1], day.Year()),
			fmt.Sprintf("%d° %s %d", day.Day(), months[day.Month()-1], day.Year())}
	}
	return nil
}
