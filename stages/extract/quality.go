package extract

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Confidence scores how much of text looks like real text, from 0 (none)
// to 1 (all of it). It is the share of the non-space runes that are not
// signs of a broken text layer: U+FFFD (a glyph MuPDF could not map to
// Unicode), control codes, private-use code points (glyph IDs leaked from
// fonts without a ToUnicode map) and unassigned or surrogate code points.
// An empty or all-space text scores 0.
//
// The score measures the encoding of the text layer, not its meaning: a
// font whose glyphs map to the wrong letters still scores high.
func Confidence(text string) float64 {
	var good, total int
	for _, r := range text {
		if unicode.IsSpace(r) {
			continue
		}
		total++
		if !brokenRune(r) {
			good++
		}
	}
	if total == 0 {
		return 0
	}
	return float64(good) / float64(total)
}

func brokenRune(r rune) bool {
	switch {
	case r == unicode.ReplacementChar:
		return true
	case unicode.IsControl(r), unicode.Is(unicode.Co, r), unicode.Is(unicode.Cs, r):
		return true
	case !unicode.IsPrint(r) && !unicode.Is(unicode.Cf, r):
		// Unassigned code points; format characters (soft hyphen, ZWJ,
		// bidi marks) are legitimate in real text.
		return true
	}
	return false
}

// WordQuality scores how much of text reads as words, from 0 to 1: the
// share of its tokens that are words (letters, with a vowel when longer
// than three, at most one change from lower to upper case), numbers or
// codes (AB123CD); tokens of punctuation alone are not counted. A poor
// invisible OCR layer is mostly tokens like "l1|", "Il0" or "WvV":
// correctly encoded, so Confidence misses them, but not words. Texts of
// fewer than 20 counted tokens score 1: too short to judge.
func WordQuality(text string) float64 {
	good, total := 0, 0
	for _, t := range strings.Fields(text) {
		t = strings.TrimFunc(t, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) })
		if t == "" {
			continue // punctuation, bullets, rules
		}
		total++
		if wordlike(t) {
			good++
		}
	}
	if total < 20 {
		return 1
	}
	return float64(good) / float64(total)
}

func wordlike(t string) bool {
	if strings.Contains(t, "''") {
		return false // doubled apostrophes: OCR noise, never Italian or English
	}
	var letters, digits, vowels, others, caseChanges int
	prevLower := false
	for _, r := range t {
		switch {
		case unicode.IsLetter(r):
			letters++
			if strings.ContainsRune("aeiouyàèéìíòóùúAEIOUYÀÈÉÌÍÒÓÙÚäöüÄÖÜ", r) {
				vowels++
			}
			if unicode.IsUpper(r) && prevLower {
				caseChanges++
			}
			prevLower = unicode.IsLower(r)
		case unicode.IsDigit(r):
			digits++
		case strings.ContainsRune("'’-./,:@_&", r):
			// Apostrophes (l'auto), hyphens, dates, amounts, e-mails.
		default:
			others++
		}
	}
	switch {
	case others > 0:
		return false
	case letters == 0:
		return true // numbers, dates, amounts
	case digits > 0:
		// Plates, policy numbers, codes (AB123CD) are capitals; amounts
		// with units start with their digits (15km). Lower-case letters
		// among digits are OCR confusions: l1, Il0.
		first, _ := utf8.DecodeRuneInString(t)
		return isUpperWord(t) || unicode.IsDigit(first)
	case letters > 3 && vowels == 0 && !isUpperWord(t):
		return false
	case caseChanges > 1:
		return false
	}
	return true
}

// isUpperWord reports an all-capitals token, which may be an acronym
// without vowels (PDF, SRL, CRM).
func isUpperWord(t string) bool {
	for _, r := range t {
		if unicode.IsLower(r) {
			return false
		}
	}
	return true
}
