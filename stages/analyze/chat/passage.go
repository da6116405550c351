package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// A passage is a span of one section's text: the unit retrieval ranks
// and quotes. Text[start:end] is quoted as it is, so a citation is an
// exact span of its section.
type passage struct {
	section    int // position in Question.Sections
	start, end int // byte offsets in the section's Text, trimmed of spaces
}

const (
	// maxPassage bounds a quote, in bytes: longer sentences are cut at
	// the last space before it. A quote should be read at a glance.
	maxPassage = 400
	// maxParagraph is the longest paragraph kept whole: a label and its
	// value, a table row, a short sentence. Longer ones are cut so that a
	// quote is the line of a list that answers, not the whole list.
	maxParagraph = 160
	// minPassage is the length below which a piece is joined to the next
	// one of its paragraph: "Targa:" alone says nothing.
	minPassage = 16
)

// passages cuts text into sentences, short paragraphs and lines of forms
// and tables. A paragraph (lines between blank lines) of at most
// maxParagraph bytes is one passage; a longer one is cut after sentence
// ends and at line ends that do not continue a wrapped sentence.
func passages(section int, text string) []passage {
	var out []passage
	for _, para := range paragraphs(text) {
		if para[1]-para[0] <= maxParagraph {
			out = append(out, passage{section, para[0], para[1]})
			continue
		}
		var pieces [][2]int
		start := para[0]
		for _, cut := range cuts(text, para[0], para[1]) {
			pieces = append(pieces, [2]int{start, cut})
			start = cut
		}
		pieces = append(pieces, [2]int{start, para[1]})
		for _, p := range mergeShort(text, pieces) {
			for _, q := range bound(text, p) {
				if s, e := trim(text, q[0], q[1]); e > s {
					out = append(out, passage{section, s, e})
				}
			}
		}
	}
	return out
}

// paragraphs returns the trimmed spans of text between blank lines.
func paragraphs(text string) [][2]int {
	var out [][2]int
	start, i := 0, 0
	for i < len(text) {
		nl := strings.IndexByte(text[i:], '\n')
		if nl < 0 {
			break
		}
		lineEnd := i + nl
		if strings.TrimSpace(text[i:lineEnd]) == "" {
			if s, e := trim(text, start, i); e > s {
				out = append(out, [2]int{s, e})
			}
			start = lineEnd + 1
		}
		i = lineEnd + 1
	}
	if s, e := trim(text, start, len(text)); e > s {
		out = append(out, [2]int{s, e})
	}
	return out
}

// cuts returns the offsets in text[start:end] where a new piece begins:
// after a sentence end followed by a space, and after a line end unless
// the line was wrapped mid-sentence (it is long and the next line starts
// in lower case).
func cuts(text string, start, end int) []int {
	var out []int
	longest := 0
	for _, line := range strings.Split(text[start:end], "\n") {
		longest = max(longest, len(strings.TrimSpace(line)))
	}
	lineStart := start
	for i := start; i < end; i++ {
		switch c := text[i]; {
		case c == '\n':
			line := strings.TrimSpace(text[lineStart:i])
			next := strings.TrimLeft(text[i+1:end], " \t")
			lineStart = i + 1
			r, _ := utf8.DecodeRuneInString(next)
			wrapped := len(line) > longest*3/4 && !endsSentence(line) && unicode.IsLower(r)
			if !wrapped {
				out = append(out, i+1)
			}
		case c == '.' || c == '?' || c == '!' || c == ';':
			if i+1 < end && (text[i+1] == ' ' || text[i+1] == '\t') && !abbreviation(text[lineStart:i+1]) {
				rest := strings.TrimLeft(text[i+1:end], " \t")
				r, _ := utf8.DecodeRuneInString(rest)
				if unicode.IsUpper(r) || unicode.IsDigit(r) || c != '.' {
					out = append(out, i+1)
				}
			}
		}
	}
	return out
}

func endsSentence(line string) bool {
	return strings.HasSuffix(line, ".") || strings.HasSuffix(line, ":") || strings.HasSuffix(line, ";") ||
		strings.HasSuffix(line, "?") || strings.HasSuffix(line, "!")
}

// abbreviation reports whether the text before a full stop ends with a
// short abbreviation ("Art.", "n.", "S.r.l.", "P.IVA" style initials),
// which does not end a sentence.
func abbreviation(before string) bool {
	before = strings.TrimSuffix(before, ".")
	i := strings.LastIndexFunc(before, func(r rune) bool { return !unicode.IsLetter(r) && r != '.' })
	w := before[i+1:]
	if w == "" {
		return false
	}
	if strings.Contains(w, ".") {
		return true // S.r.l, S.p.A
	}
	switch strings.ToLower(w) {
	case "art", "artt", "n", "nr", "num", "pag", "tel", "sig", "sigg", "dott", "ing", "avv", "geom", "arch",
		"rag", "spett", "p", "c", "ecc", "es", "rif", "prot", "fig", "no", "vs", "mr", "mrs", "dr", "st", "co", "inc", "ltd":
		return true
	}
	return false
}

// mergeShort joins a piece shorter than minPassage to the piece after it
// (the label to its value), or to the one before when it is the last.
func mergeShort(text string, pieces [][2]int) [][2]int {
	var out [][2]int
	for i := 0; i < len(pieces); i++ {
		p := pieces[i]
		for len(strings.TrimSpace(text[p[0]:p[1]])) < minPassage && i+1 < len(pieces) &&
			pieces[i+1][1]-p[0] <= maxPassage {
			i++
			p[1] = pieces[i][1]
		}
		if n := len(out); n > 0 && len(strings.TrimSpace(text[p[0]:p[1]])) < minPassage && p[1]-out[n-1][0] <= maxPassage {
			out[n-1][1] = p[1]
			continue
		}
		out = append(out, p)
	}
	return out
}

// bound cuts a piece longer than maxPassage at spaces.
func bound(text string, p [2]int) [][2]int {
	var out [][2]int
	for p[1]-p[0] > maxPassage {
		cut := strings.LastIndexAny(text[p[0]:p[0]+maxPassage], " \t\n")
		if cut <= 0 {
			// One unbroken word: cut at a rune boundary.
			cut = maxPassage
			for cut > 0 && !utf8.RuneStart(text[p[0]+cut]) {
				cut--
			}
		}
		out = append(out, [2]int{p[0], p[0] + cut})
		p[0] += cut
	}
	return append(out, p)
}

// trim narrows [start, end) of text to exclude leading and trailing
// white space.
func trim(text string, start, end int) (int, int) {
	for start < end {
		r, n := utf8.DecodeRuneInString(text[start:end])
		if !unicode.IsSpace(r) {
			break
		}
		start += n
	}
	for end > start {
		r, n := utf8.DecodeLastRuneInString(text[start:end])
		if !unicode.IsSpace(r) {
			break
		}
		end -= n
	}
	return start, end
}
