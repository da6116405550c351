package chat

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed lexicon/glossary.txt
var glossaryText string

// glossary bridges words that mean the same thing (across Italian and
// English, or across forms whose stems differ) and maps question words
// to the kinds of value they ask for.
type glossary struct {
	// related maps a stem to the stems of every concept it belongs to,
	// itself included, in both languages: passages of a mixed document
	// are stemmed by their own language, and stems of the two languages
	// rarely collide.
	related map[string][]string
	// cues maps a question word (as written, or its stem) to the kinds of
	// value it asks for ("#date").
	cues map[string][]string
}

func parseGlossary(text string, it, en analyzer) (*glossary, error) {
	g := &glossary{related: make(map[string][]string), cues: make(map[string][]string)}
	for n, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 && !strings.HasPrefix(strings.TrimSpace(line), "cue:") {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "cue:"):
			ws, kind, ok := strings.Cut(strings.TrimPrefix(line, "cue:"), "->")
			kind = strings.TrimSpace(kind)
			if !ok || !strings.HasPrefix(kind, "#") {
				return nil, fmt.Errorf("chat glossary line %d: a cue needs \"-> #kind\"", n+1)
			}
			if _, known := valueKinds[kind]; !known {
				return nil, fmt.Errorf("chat glossary line %d: unknown kind %s", n+1, kind)
			}
			for _, w := range strings.Fields(ws) {
				for _, key := range []string{w, it.term(w), en.term(w)} {
					if key != "" {
						g.cues[key] = appendNew(g.cues[key], kind)
					}
				}
			}
		default:
			itWords, enWords, ok := strings.Cut(line, "|")
			if !ok {
				return nil, fmt.Errorf("chat glossary line %d: want \"italian words | english words\"", n+1)
			}
			var stems []string
			for _, w := range strings.Fields(itWords) {
				stems = appendNew(stems, it.term(w))
			}
			for _, w := range strings.Fields(enWords) {
				stems = appendNew(stems, en.term(w))
			}
			for _, s := range stems {
				for _, r := range stems {
					g.related[s] = appendNew(g.related[s], r)
				}
			}
		}
	}
	return g, nil
}

func appendNew(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// valueKind is a kind of value a passage may hold, found by pattern
// rather than by word.
type valueKind struct {
	pattern *regexp.Regexp
	// alone: the kind by itself makes a passage match. A plate or a phone
	// number is what "targa" or "telefono" asks for, so a bare list of
	// plates answers "Qual è la targa?"; but a document holds dates and
	// amounts everywhere, and "quando" alone must not return them all.
	alone bool
}

// valueKinds are the pseudo-terms ("#date") a passage holds when it
// contains a value of that kind.
var valueKinds = map[string]valueKind{
	"#date": {pattern: regexp.MustCompile(`(?i)\b\d{1,2}[/.-]\d{1,2}[/.-](\d{4}|\d{2})\b|\b\d{4}-\d{2}-\d{2}\b|` +
		`\b\d{1,2}\s+(gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|novembre|dicembre|` +
		`january|february|march|april|may|june|july|august|september|october|november|december)\s+\d{4}\b`)},
	"#amount": {pattern: regexp.MustCompile(`(?i)(€|\beur\b|\beuro\b)\s*\d|\d\s*(€|\beur\b|\beuro\b)|\b\d{1,3}(\.\d{3})+(,\d{2})?\b`)},
	"#plate":  {pattern: regexp.MustCompile(`\b[A-Z]{2}\s?\d{3}\s?[A-Z]{2}\b`), alone: true},
	"#phone":  {pattern: regexp.MustCompile(`(\+39\s?)?\b(0\d{1,3}|3\d{2})[\s./-]?\d{3,4}[\s.]?\d{3,4}\b`), alone: true},
	// An Italian codice fiscale of a person: written "C.F." or not named.
	"#taxcode": {pattern: regexp.MustCompile(`(?i)\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b`), alone: true},
	"#email":   {pattern: regexp.MustCompile(`[\w.+-]+@[\w-]+(\.[\w-]+)+`), alone: true},
}
