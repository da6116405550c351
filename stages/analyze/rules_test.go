package analyze

import (
	"context"
	"strings"
	"testing"
	"time"

	"prismflow/schemas/events"
)

var testNow = func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }

func runRules(t *testing.T, lang, text string, others ...string) []events.FeedbackItem {
	t.Helper()
	secs := []events.Section{{Index: 0, Text: text}}
	for i, o := range others {
		secs = append(secs, events.Section{Index: int32(i + 1), Text: o})
	}
	items, err := NewRules(testNow).Analyze(context.Background(), Request{Language: lang, Section: secs[0], Sections: secs})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func TestRules(t *testing.T) {
	const ok = "Contraente: Rossi S.r.l. P.IVA 12345678903 tel. 02 1234567"
	tests := []struct {
		name  string
		text  string
		typ   string // "" = no item of any type expected
		quote string
		sev   events.Severity
	}{
		{"start date past", ok + "\nDecorrenza richiesta: 01/10/2026", TypeDateInPast, "01/10/2026", events.SeverityHigh},
		{"start date past words", ok + "\ncon decorrenza 1° ottobre 2026.", TypeDateInPast, "1° ottobre 2026", events.SeverityHigh},
		{"start date past iso", ok + "\nstart: decorrenza 2026-11-01", TypeDateInPast, "2026-11-01", events.SeverityHigh},
		{"start date future", ok + "\nDecorrenza richiesta: 01/01/2027", "", "", ""},
		{"start date today is not past", ok + "\ndecorrenza 23/11/2026", "", "", ""},
		{"a partire dal past", ok + "\nvorrei la polizza a partire dal 10/11/2026.", TypeDateInPast, "10/11/2026", events.SeverityHigh},
		{"undated context is not judged", ok + "\nMilano, 02/11/2026", "", "", ""},
		{"scadenza past", ok + "\nLa polizza ha scadenza 31/10/2026.", TypeDateInPast, "31/10/2026", events.SeverityMedium},
		{"scadenza before decorrenza", ok + "\nDecorrenza 01/01/2027, scadenza 31/12/2026.", TypeInconsistentDates, "31/12/2026", events.SeverityHigh},
		{"dal al reversed", ok + "\ncopertura dal 01/06/2027 al 01/01/2027", TypeInconsistentDates, "01/01/2027", events.SeverityHigh},
		{"current policy expiring before renewal is normal", ok + "\ndecorrenza 01/01/2027.\nLa polizza attuale scade il 31/12/2026.", "", "", ""},
		{"massimale without currency", ok + "\nMassimale 1.000.000 per sinistro", TypeAmountWithoutCurrency, "Massimale 1.000.000", events.SeverityLow},
		{"massimale with EUR", ok + "\nMassimale EUR 1.000.000", "", "", ""},
		{"massimale with euro after", ok + "\nmassimale 1.500.000 euro", "", "", ""},
		{"currency in column header", ok + "\nValore commerciale (EUR) 92.000,00", "", "", ""},
		{"unlabelled number is not judged", ok + "\nPratica 1.000.000", "", "", ""},
		{"massimale zero", ok + "\nMassimale richiesto: EUR 0", TypeImplausibleAmount, "Massimale richiesto: EUR 0", events.SeverityHigh},
		{"absurd value", ok + "\nValore di ricostruzione a nuovo EUR 98.000.000.000,00", TypeImplausibleAmount, "Valore di ricostruzione a nuovo EUR 98.000.000.000,00", events.SeverityHigh},
		{"missing ids", "Contraente: Rossi S.r.l., Milano. tel. 02 1234567", TypeMissingData, "Contraente", events.SeverityMedium},
		{"ids present", ok, "", "", ""},
		{"expired", ok + "\nIl certificato è scaduto.", TypeExpiredDocument, "Il certificato è scaduto", events.SeverityMedium},
		{"not expired", ok + "\nIl certificato non è scaduto? non scaduto.", "", "", ""},
		{"validity past", ok + "\nDocumento valido fino al 30/09/2026", TypeExpiredDocument, "30/09/2026", events.SeverityHigh},
		{"blank signature underscores", ok + "\nFirma del legale rappresentante: ____________\n", TypeUnsignedDeclaration, "Firma del legale rappresentante: ____________", events.SeverityHigh},
		{"blank signature at end", ok + "\nMilano, 02/11/2026\nFirma:", TypeUnsignedDeclaration, "Firma:", events.SeverityHigh},
		{"signed", ok + "\nFirma: Chiara Bonfanti", "", "", ""},
		{"signed legale rappresentante", ok + "\nFirma del legale rappresentante: Giorgio Bertolino\n", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := runRules(t, "it", tt.text)
			if tt.typ == "" {
				if len(items) != 0 {
					t.Fatalf("want no items, got %+v", items)
				}
				return
			}
			var found bool
			for _, it := range items {
				if it.Type == tt.typ && it.Quote == tt.quote {
					found = true
					if it.Severity != tt.sev {
						t.Errorf("severity = %s; want %s", it.Severity, tt.sev)
					}
					if it.Message == "" || it.Suggestion == "" {
						t.Errorf("item without message or suggestion: %+v", it)
					}
				}
			}
			if !found {
				t.Fatalf("want %s quoting %q, got %+v", tt.typ, tt.quote, items)
			}
		})
	}
}

func TestRulesMissingDataLooksAtWholeDocument(t *testing.T) {
	items := runRules(t, "it", "Contraente: Rossi S.r.l.", "Altro foglio: P.IVA 12345678903, info@rossi.example")
	if len(items) != 0 {
		t.Fatalf("data is in another section, want no items, got %+v", items)
	}
}

func TestRulesEnglish(t *testing.T) {
	items := runRules(t, "en", "Contraente: Rossi S.r.l. P.IVA 12345678903 tel. 02 1234567\nDecorrenza 01/01/2026")
	if len(items) != 1 || !strings.Contains(items[0].Message, "in the past") {
		t.Fatalf("want one English date_in_past item, got %+v", items)
	}
	it := runRules(t, "it", "Contraente: Rossi S.r.l. P.IVA 12345678903 tel. 02 1234567\nDecorrenza 01/01/2026")
	if len(it) != 1 || !strings.Contains(it[0].Message, "già passata") {
		t.Fatalf("want one Italian date_in_past item, got %+v", it)
	}
}
