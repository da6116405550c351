package extract

import (
	"strings"
	"testing"
)

func TestWordQuality(t *testing.T) {
	repeat := func(s string) string { return strings.Repeat(s+" ", 8) }
	for _, tc := range []struct {
		name     string
		text     string
		min, max float64
	}{
		{"italian", repeat("Il contraente dichiara che la polizza RCA n. 2026/00421 del 12.03.2026 copre l'auto targata AB123CD."), 0.95, 1},
		{"english", repeat("The insured vehicle (VIN WBA3A5C5XCF256789) is used for business, 15,000 km/year."), 0.95, 1},
		{"acronyms", repeat("PDF SRL CRM IVA S.p.A. e-mail info@navigli-broker.example"), 0.95, 1},
		{"bad OCR layer", repeat("l1| rn''i la WvVw ~~ Jl1Il polizza ,;.: tHiSiS sdfghj auto ^\\ ||| \"\" xxzq"), 0.2, MinWordQuality - 0.01},
		{"too short to judge", "l1| rn''i", 1, 1},
	} {
		if got := WordQuality(tc.text); got < tc.min || got > tc.max {
			t.Errorf("%s: WordQuality = %.2f, want %.2f..%.2f", tc.name, got, tc.min, tc.max)
		}
	}
}
