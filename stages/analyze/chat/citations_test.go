package chat

import (
	"reflect"
	"testing"
)

func TestCitations(t *testing.T) {
	secs := []Section{
		{Index: 0, Title: "Lettera", Text: "La polizza attuale scade il 31/12/2026 e vorremmo confrontare le condizioni."},
		{Index: 1, Title: "Veicoli", Text: "Massimale RCA richiesto: EUR 15.000.000 unico.\nConducenti: dipendenti con patente C/CE e CQC.\nL'assicurato è l’azienda."},
	}
	tests := []struct {
		name     string
		text     string
		want     []Citation
		wantText string
	}{
		{"quote after marker",
			`Scade il 31/12/2026 [S0] "La polizza attuale scade il 31/12/2026".`,
			[]Citation{{0, "La polizza attuale scade il 31/12/2026"}}, ""},
		{"quote before marker, guillemets",
			`Il massimale è «Massimale RCA richiesto: EUR 15.000.000 unico.» [S1]`,
			[]Citation{{1, "Massimale RCA richiesto: EUR 15.000.000 unico."}}, ""},
		{"curly quotes and a colon",
			`Conducenti [S1]: “Conducenti: dipendenti con patente C/CE e CQC.”`,
			[]Citation{{1, "Conducenti: dipendenti con patente C/CE e CQC."}}, ""},
		{"white space and apostrophes differ: the section's own span is kept",
			`[S1] "EUR 15.000.000 unico. Conducenti: dipendenti" and [S1] "L’assicurato è l'azienda"`,
			[]Citation{{1, "EUR 15.000.000 unico.\nConducenti: dipendenti"}, {1, "L'assicurato è l’azienda"}}, ""},
		{"quote the section does not hold is dropped, marker kept",
			`Il massimale è 10 milioni [S1] "Massimale RCA richiesto: EUR 10.000.000".`,
			nil, ""},
		{"section that does not exist: citation and marker dropped",
			`Lo dice la sezione 7 [S7] "La polizza attuale".`,
			nil, `Lo dice la sezione 7 "La polizza attuale".`},
		{"several sections in one marker",
			`Vedi [S0, S7; S1].`,
			[]Citation{{0, ""}, {1, ""}}, `Vedi [S0, S1].`},
		{"duplicates once",
			`[S0] "scade il 31/12/2026" e ancora [S0] "scade il 31/12/2026"`,
			[]Citation{{0, "scade il 31/12/2026"}}, ""},
		{"no markers", "Il documento non lo dice.", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, text := citations(tt.text, secs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("citations = %q, want %q", got, tt.want)
			}
			want := tt.wantText
			if want == "" {
				want = tt.text
			}
			if text != want {
				t.Errorf("text = %q, want %q", text, want)
			}
			checkSpans(t, secs, got)
		})
	}
}
