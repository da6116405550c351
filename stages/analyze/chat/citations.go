package chat

import (
	"regexp"
	"strconv"
	"strings"
)

// marker is a citation in an answer's text: [S3], or [S3, S5].
var marker = regexp.MustCompile(`\[(S\d+(?:\s*[,;]\s*S\d+)*)\]`)

// quotePairs are the quotation marks a model quotes with.
var quotePairs = map[rune]rune{'"': '"', '“': '”', '«': '»'}

// citations finds the [S<n>] markers of a model's answer and the quotes
// next to them (after the marker, or before it), keeps the citations
// whose section exists and whose quote is a span of that section's text,
// and returns them with the text, markers naming no section removed. A
// marker with no quote cites its whole section (Quote ""); a quote found
// only by ignoring differences of white space or apostrophes is replaced
// by the section's own words, so every Quote is an exact span.
func citations(text string, sections []Section) ([]Citation, string) {
	byIndex := make(map[int32]string, len(sections))
	for _, s := range sections {
		byIndex[s.Index] = s.Text
	}
	var out []Citation
	seen := make(map[Citation]bool)
	var b strings.Builder
	last := 0
	for _, m := range marker.FindAllStringSubmatchIndex(text, -1) {
		quote := quoteAfter(text[m[1]:])
		if quote == "" {
			quote = quoteBefore(text[:m[0]])
		}
		var valid []string
		for _, ref := range strings.FieldsFunc(text[m[2]:m[3]], func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
			n, err := strconv.ParseInt(strings.TrimPrefix(ref, "S"), 10, 32)
			if err != nil {
				continue
			}
			sec, ok := byIndex[int32(n)]
			if !ok {
				continue
			}
			valid = append(valid, ref)
			c := Citation{Section: int32(n)}
			if quote != "" {
				span, ok := findSpan(sec, quote)
				if !ok {
					continue // a quote the section does not hold: dropped
				}
				c.Quote = span
			}
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
		b.WriteString(text[last:m[0]])
		if len(valid) > 0 {
			b.WriteString("[" + strings.Join(valid, ", ") + "]")
		} else if s := b.String(); strings.HasSuffix(s, " ") {
			// Drop the marker and the space before it.
			b.Reset()
			b.WriteString(strings.TrimRight(s, " "))
		}
		last = m[1]
	}
	b.WriteString(text[last:])
	return out, b.String()
}

// quoteAfter returns the quotation right after a marker ("[S2]: «...»").
func quoteAfter(s string) string {
	s = strings.TrimLeft(s, " \t:")
	for open, close := range quotePairs {
		if rest, ok := strings.CutPrefix(s, string(open)); ok {
			if i := strings.IndexRune(rest, close); i > 0 {
				return rest[:i]
			}
		}
	}
	return ""
}

// quoteBefore returns the quotation right before a marker ("«...» [S2]").
func quoteBefore(s string) string {
	s = strings.TrimRight(s, " \t")
	for open, close := range quotePairs {
		if rest, ok := strings.CutSuffix(s, string(close)); ok {
			if i := strings.LastIndex(rest, string(open)); i >= 0 && i+len(string(open)) < len(rest) {
				return rest[i+len(string(open)):]
			}
		}
	}
	return ""
}

// findSpan returns the span of text that quote reproduces: itself when
// text holds it verbatim, else the span that matches it when runs of
// white space and the two apostrophes (' and ’) are taken as equal,
// which is how models most often copy a PDF's text imperfectly.
func findSpan(text, quote string) (string, bool) {
	quote = strings.TrimSpace(quote)
	if quote == "" {
		return "", false
	}
	if strings.Contains(text, quote) {
		return quote, true
	}
	fields := strings.Fields(quote)
	for i, f := range fields {
		f = regexp.QuoteMeta(f)
		f = strings.NewReplacer("'", "['’]", "’", "['’]").Replace(f)
		fields[i] = f
	}
	re, err := regexp.Compile(strings.Join(fields, `\s+`))
	if err != nil {
		return "", false
	}
	if span := re.FindString(text); span != "" {
		return span, true
	}
	return "", false
}
