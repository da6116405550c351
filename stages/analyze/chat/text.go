package chat

import (
	_ "embed"
	"strings"
	"unicode"

	"github.com/blevesearch/snowballstem"
	"github.com/blevesearch/snowballstem/english"
	"github.com/blevesearch/snowballstem/italian"
)

// The stop-word lists are the Snowball project's, trimmed of words that
// carry meaning in insurance questions (such as "non" and "senza").
var (
	//go:embed lexicon/stopwords_it.txt
	stopwordsIT string
	//go:embed lexicon/stopwords_en.txt
	stopwordsEN string
)

// word is one token of a text with its byte offsets.
type word struct {
	text       string // lower case
	start, end int
}

// words cuts text into runs of letters and digits. Apostrophes split
// ("dell'assicurato" is "dell" and "assicurato"), so Italian elisions
// fall to the stop-word list.
func words(text string) []word {
	var out []word
	start := -1
	for i, r := range text {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case alnum && start < 0:
			start = i
		case !alnum && start >= 0:
			out = append(out, word{text: strings.ToLower(text[start:i]), start: start, end: i})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, word{text: strings.ToLower(text[start:]), start: start, end: len(text)})
	}
	return out
}

// analyzer turns words into index terms for one language: stop words
// out, Snowball stems in. Words with digits (plates, dates, tax numbers)
// are kept whole.
type analyzer struct {
	stop map[string]bool
	stem func(*snowballstem.Env) bool
}

func newAnalyzer(lang string) analyzer {
	if lang == "en" {
		return analyzer{stop: wordSet(stopwordsEN), stem: english.Stem}
	}
	return analyzer{stop: wordSet(stopwordsIT), stem: italian.Stem}
}

func wordSet(list string) map[string]bool {
	set := make(map[string]bool)
	for _, line := range strings.Split(list, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, w := range strings.Fields(line) {
			set[w] = true
		}
	}
	return set
}

// term is the index term of w, or "" for a stop word.
func (a analyzer) term(w string) string {
	if a.stop[w] {
		return ""
	}
	if strings.IndexFunc(w, unicode.IsDigit) >= 0 {
		return w
	}
	if len(w) < 2 {
		return ""
	}
	env := snowballstem.NewEnv(w)
	a.stem(env)
	return env.Current()
}

// language guesses whether text is Italian or English by counting the
// stop words of each; fallback decides a tie (no stop words at all).
func language(text, fallback string, it, en analyzer) string {
	var nIT, nEN int
	for _, w := range words(text) {
		if it.stop[w.text] {
			nIT++
		}
		if en.stop[w.text] {
			nEN++
		}
	}
	switch {
	case nIT > nEN:
		return "it"
	case nEN > nIT:
		return "en"
	}
	return fallback
}
