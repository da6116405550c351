package itparse

import (
	"math"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"Massimale € 1.250.000,00 dal 01/02/2027 al 2027-03-31",
	"premio 2,5 milioni di euro, scadenza 15 marzo 2026",
	"mezzo milione EUR; 500 mila; 12k; 31/02/2027; 1st January 2027",
	"", "€", "1.2.3,4,5", "ABC123/45", "\xff\xfe 1.000",
}

// onRuneBoundary reports whether i is where Go's decoding of text starts a
// rune (or its end). A stray byte of invalid UTF-8 is a rune of its own
// there, so the test is decoding, not utf8.RuneStart on one byte.
func onRuneBoundary(text string, i int) bool {
	if i == len(text) {
		return true
	}
	for j := range text {
		if j >= i {
			return j == i
		}
	}
	return false
}

// FuzzFindDates: spans lie inside the text on rune boundaries, are in
// order and disjoint, and every date is a real calendar day whose year is
// written in the span.
func FuzzFindDates(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		prev := 0
		for _, d := range FindDates(text) {
			if d.Start < prev || d.End <= d.Start || d.End > len(text) {
				t.Fatalf("date span %d:%d out of order or bounds (prev end %d, len %d)", d.Start, d.End, prev, len(text))
			}
			if !onRuneBoundary(text, d.Start) || !onRuneBoundary(text, d.End) {
				t.Fatalf("date span %d:%d splits a rune", d.Start, d.End)
			}
			prev = d.End
			if y := d.Time.Year(); y < 1900 || y > 2200 {
				t.Fatalf("date %s outside 1900..2200", d.ISO())
			}
			if !strings.Contains(text[d.Start:d.End], d.Time.Format("2006")) {
				t.Fatalf("date %s: year not in %q", d.ISO(), text[d.Start:d.End])
			}
		}
	})
}

// FuzzFindAmounts: spans inside the text, in order, and the value is
// finite, non-negative and readable back from the digits in the span.
func FuzzFindAmounts(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		prev := -1
		for _, a := range FindAmounts(text) {
			if a.Start < 0 || a.End <= a.Start || a.End > len(text) || a.Start < prev {
				t.Fatalf("amount span %d:%d out of order or bounds (prev start %d, len %d)", a.Start, a.End, prev, len(text))
			}
			prev = a.Start
			if math.IsNaN(a.Value) || math.IsInf(a.Value, 0) || a.Value < 0 {
				t.Fatalf("amount %q has value %v", text[a.Start:a.End], a.Value)
			}
			if !strings.ContainsAny(text[a.Start:a.End], "0123456789") && a.Value != 0 && !strings.ContainsAny(strings.ToLower(text[a.Start:a.End]), "aeiou") {
				t.Fatalf("amount %v read from %q, which has neither digits nor words", a.Value, text[a.Start:a.End])
			}
		}
	})
}

// FuzzParseNumber: an accepted number is finite and non-negative, and
// the plain digit string of an accepted integer parses to the same value.
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"1.250.000,00", "1250000", "2,5", "15.000", "1.2", ",5", "1,", "1e9", "NaN", "Inf", "0x10", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseNumber(s)
		if !ok {
			if v != 0 {
				t.Fatalf("ParseNumber(%q) = %v on failure", s, v)
			}
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Fatalf("ParseNumber(%q) = %v", s, v)
		}
		trimmed := strings.TrimSpace(s)
		for _, r := range trimmed {
			if !strings.ContainsRune("0123456789.,", r) {
				t.Fatalf("ParseNumber(%q) accepted the character %q", s, r)
			}
		}
		if !strings.Contains(trimmed, ",") {
			plain := strings.ReplaceAll(trimmed, ".", "")
			if w, ok := ParseNumber(plain); !ok || w != v {
				t.Fatalf("ParseNumber(%q) = %v but the digits %q give %v %v", s, v, plain, w, ok)
			}
		}
	})
}
