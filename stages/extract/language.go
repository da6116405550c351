package extract

import (
	"strings"
	"unicode"
)

// DetectLanguage returns the ISO 639-1 code of the language text is
// written in, or "" when the text is too short or too mixed to tell.
//
// It counts stop words (the short function words every sentence is made
// of) of Italian, English, German, French, Spanish and Latin. Stop words are the
// most frequent tokens of a language, so a page of prose holds dozens of
// them, while names, numbers, plates and amounts hold none; that makes the
// count robust on the forms and tables brokers send, where character
// trigram models (whatlanggo and the like) are thrown off by codes and
// proper nouns and need large tables for the 80 languages we never see.
// German, French and Spanish are scored so that their documents are not
// mislabelled as Italian or English, and Latin because "lorem ipsum"
// placeholder text would otherwise pass for French (et, est) or Italian
// (non).
//
// The winner needs at least minHits stop words (three: a form with only a
// line or two of prose, like a vehicle list under a short note, has no
// more) and a clear margin over the runner-up; otherwise the answer is "",
// which downstream reads as unknown.
func DetectLanguage(text string) string {
	const (
		minHits  = 3
		margin   = 1.5 // the winner must have this many times the runner-up
		maxWords = 5000
	)
	counts := make(map[string]int, len(stopWords))
	words := 0
	for w := range strings.FieldsFuncSeq(text, isWordBreak) {
		if words++; words > maxWords {
			break
		}
		w = strings.ToLower(w)
		for lang, set := range stopWords {
			if _, ok := set[w]; ok {
				counts[lang]++
			}
		}
	}
	best, bestN, secondN := "", 0, 0
	for lang, n := range counts {
		switch {
		case n > bestN:
			best, bestN, secondN = lang, n, bestN
		case n > secondN:
			secondN = n
		}
	}
	if bestN < minHits || float64(bestN) < margin*float64(secondN) {
		return ""
	}
	return best
}

// isWordBreak splits on anything but letters; the apostrophe splits too,
// so Italian elisions ("dell'assicurazione") yield the article "dell".
func isWordBreak(r rune) bool { return !unicode.IsLetter(r) }

// stopWords is read-only. It holds, per language, frequent function words that are rare as
// words of the other languages listed (so "a", "e", "in", "la", "de" and
// the like, shared by several of them, are left out; the few kept in two
// sets, like Latin's "et" and "non", count for both).
var stopWords = map[string]map[string]struct{}{
	"it": set("il", "lo", "gli", "della", "delle", "degli", "dello", "dell", "del", "nel", "nella", "nelle", "negli",
		"alla", "alle", "agli", "allo", "sul", "sulla", "che", "di", "da", "per", "con", "non", "sono", "è",
		"questo", "questa", "anche", "come", "dei", "ai", "al", "ed", "od", "oppure", "ogni", "essere", "viene",
		"nei", "tra", "fra", "suo", "sua", "loro", "più", "presente", "relativo", "qualora", "ovvero"),
	"en": set("the", "and", "of", "to", "is", "that", "for", "with", "this", "are", "be", "by", "from", "or",
		"which", "was", "were", "have", "has", "it", "its", "not", "will", "shall", "on", "at", "an", "as",
		"their", "there", "these", "those", "would", "should", "can", "been", "who", "what", "any", "all"),
	"de": set("der", "die", "das", "und", "ist", "nicht", "mit", "den", "dem", "des", "ein", "eine", "einer",
		"zu", "auf", "für", "sich", "auch", "wird", "werden", "bei", "oder", "wie", "aus", "nach", "über",
		"sind", "wenn", "durch", "kann", "diese", "dieser", "wir", "ich", "zum", "zur", "vom"),
	"fr": set("le", "les", "des", "du", "et", "est", "une", "dans", "pour", "pas", "sur", "qui", "au", "aux",
		"avec", "ce", "cette", "sont", "ou", "être", "par", "leur", "nous", "vous", "ils", "mais", "été",
		"aussi", "entre", "ces", "dont"),
	"es": set("el", "los", "las", "y", "es", "por", "una", "para", "como", "más", "pero",
		"sus", "ya", "muy", "también", "fue", "este", "esta", "son", "cuando", "todo", "sobre",
		"hay", "ser", "sin", "desde", "está"),
	"la": set("et", "est", "ut", "sed", "nec", "vel", "quis", "eu", "ac", "quam", "sit", "amet", "atque",
		"enim", "autem", "sunt", "non", "cum"),
}

func set(words ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(words))
	for _, w := range words {
		m[w] = struct{}{}
	}
	return m
}
