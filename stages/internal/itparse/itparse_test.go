package itparse

import (
	"testing"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1.250.000,00", 1250000, true},
		{"500.000", 500000, true},
		{"1250000", 1250000, true},
		{"2,5", 2.5, true},
		{"0,00", 0, true},
		{"12.34", 0, false}, // a dot is a thousands separator: two digits after it is not a number
		{"1.2345", 0, false},
		{"1234.567", 0, false},
		{"1,2,3", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseNumber(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseNumber(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFindAmounts(t *testing.T) {
	tests := []struct {
		text     string
		want     float64
		currency bool
		quote    string
	}{
		{"Massimale richiesto: EUR 1.000.000,00 per sinistro", 1000000, true, "EUR 1.000.000,00"},
		{"massimale di 2,5 milioni con retroattività", 2500000, false, "2,5 milioni"},
		{"massimale 1.500.000 euro comprensivo", 1500000, true, "1.500.000 euro"},
		{"valore € 500.000 circa", 500000, true, "€ 500.000"},
		{"valore di 780.000 euro.", 780000, true, "780.000 euro"},
		{"massimale 1.000.000 unico", 1000000, false, "1.000.000"},
		{"circa 3 milioni di euro", 3000000, true, "3 milioni di euro"},
		{"massimale di un milione per sinistro", 1000000, false, "un milione"},
		{"Massimale: un milione di euro", 1000000, true, "un milione di euro"},
		{"basta mezzo milione.", 500000, false, "mezzo milione"},
		{"valore cinquecentomila euro", 500000, true, "cinquecentomila euro"},
		{"limite di due milioni", 2000000, false, "due milioni"},
	}
	for _, tt := range tests {
		got := FindAmounts(tt.text)
		if len(got) != 1 {
			t.Errorf("FindAmounts(%q) = %+v; want one amount", tt.text, got)
			continue
		}
		a := got[0]
		if a.Value != tt.want || a.Currency != tt.currency || tt.text[a.Start:a.End] != tt.quote {
			t.Errorf("FindAmounts(%q) = %v cur=%v %q; want %v cur=%v %q", tt.text, a.Value, a.Currency, tt.text[a.Start:a.End], tt.want, tt.currency, tt.quote)
		}
	}
	// Dates, codes and model names are not amounts.
	for _, text := range []string{"01/01/2027", "Iveco Daily 35S16", "Ordine n. A2871", "GH461XW", "un milionario", "Sei milanese?"} {
		if got := FindAmounts(text); len(got) != 0 {
			t.Errorf("FindAmounts(%q) = %+v; want none", text, got)
		}
	}
}

func TestFindDates(t *testing.T) {
	tests := []struct {
		text  string
		want  []string
		quote []string
	}{
		{"decorrenza 01/01/2027.", []string{"2027-01-01"}, []string{"01/01/2027"}},
		{"decorrenza 1/1/2027", []string{"2027-01-01"}, []string{"1/1/2027"}},
		{"il 1° febbraio 2027, quando", []string{"2027-02-01"}, []string{"1° febbraio 2027"}},
		{"dal 1 Dicembre 2026 al 2027-12-01", []string{"2026-12-01", "2027-12-01"}, []string{"1 Dicembre 2026", "2027-12-01"}},
		{"nato il 31/02/2027", nil, nil},
		{"dal 10 al 24 gennaio 2027", []string{"2027-01-24"}, []string{"24 gennaio 2027"}},
	}
	for _, tt := range tests {
		got := FindDates(tt.text)
		if len(got) != len(tt.want) {
			t.Errorf("FindDates(%q) = %+v; want %v", tt.text, got, tt.want)
			continue
		}
		for i, d := range got {
			if d.ISO() != tt.want[i] || tt.text[d.Start:d.End] != tt.quote[i] {
				t.Errorf("FindDates(%q)[%d] = %s %q; want %s %q", tt.text, i, d.ISO(), tt.text[d.Start:d.End], tt.want[i], tt.quote[i])
			}
		}
	}
}

func TestRuneOffset(t *testing.T) {
	s := "perché € 5"
	if got := RuneOffset(s, len("perché ")); got != 7 {
		t.Fatalf("RuneOffset = %d; want 7", got)
	}
}
