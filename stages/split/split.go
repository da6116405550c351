package split

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// DefaultMaxSectionRunes is the section length used when
// Splitter.MaxSectionRunes is zero: about two pages of dense text, small
// enough for one analysis call.
const DefaultMaxSectionRunes = 8000

// minSectionRunes keeps a configured limit from cutting text into slivers.
const minSectionRunes = 16

// ErrNoText is returned, marked permanent, for a document whose pages hold
// no text and are not waiting for OCR.
var ErrNoText = errors.New("no text to split")

// Splitter cuts a document's pages into sections. The zero value is ready
// to use.
type Splitter struct {
	// MaxSectionRunes is the longest section text, in runes; longer
	// sections are cut at paragraph ends. Default 8000 runes; values below
	// 16 are raised to 16.
	MaxSectionRunes int
}

// Handle splits in's pages into sections. The output copies in.Document,
// PageCount and Language, and leaves Meta for the runtime to stamp.
func (s *Splitter) Handle(ctx context.Context, in events.TextExtracted) (events.SectionsSplit, error) {
	out := events.SectionsSplit{Document: in.Document, PageCount: in.PageCount, Language: in.Language}
	if err := ctx.Err(); err != nil {
		return out, err
	}

	lines := pageLines(in.Pages)
	if len(lines) == 0 {
		for _, p := range in.Pages {
			if p.NeedsOCR {
				return out, nil
			}
		}
		return out, pipeline.Permanent(fmt.Errorf("split %s: %w", in.Document.Filename, ErrNoText))
	}

	maxRunes := s.MaxSectionRunes
	if maxRunes == 0 {
		maxRunes = DefaultMaxSectionRunes
	}
	maxRunes = max(maxRunes, minSectionRunes)

	for _, sec := range sections(lines, in.Language) {
		pieces := cut(sec.lines, maxRunes)
		for k, piece := range pieces {
			title := sec.title
			if len(pieces) > 1 {
				title = fmt.Sprintf("%s (%d/%d)", title, k+1, len(pieces))
			}
			start, end := pageRange(piece)
			out.Sections = append(out.Sections, events.Section{
				Index:     int32(len(out.Sections)),
				Title:     title,
				Text:      render(piece),
				PageStart: start,
				PageEnd:   end,
			})
		}
	}
	return out, nil
}

// line is one line of a page; blank lines (including the break between
// two pages) have blank set and mark paragraph ends.
type line struct {
	text  string
	page  int32
	blank bool
}

// pageLines flattens the pages into lines, with a blank line between
// pages, no blank line at either end and never two in a row. It returns
// nil when there is no non-space text.
func pageLines(pages []events.Page) []line {
	var ls []line
	for _, p := range pages {
		for l := range strings.SplitSeq(p.Text, "\n") {
			if strings.TrimSpace(l) == "" {
				ls = appendBlank(ls, p.Number)
				continue
			}
			ls = append(ls, line{text: l, page: p.Number})
		}
		ls = appendBlank(ls, p.Number)
	}
	return trimBlank(ls)
}

func appendBlank(ls []line, page int32) []line {
	if len(ls) == 0 || ls[len(ls)-1].blank {
		return ls
	}
	return append(ls, line{page: page, blank: true})
}

func trimBlank(ls []line) []line {
	for len(ls) > 0 && ls[0].blank {
		ls = ls[1:]
	}
	for len(ls) > 0 && ls[len(ls)-1].blank {
		ls = ls[:len(ls)-1]
	}
	return ls
}

type section struct {
	title string
	lines []line
}

// sections groups the lines under their headings, or by page when there
// are none.
func sections(ls []line, lang string) []section {
	heads := headings(ls)
	if len(heads) == 0 {
		return byPage(ls, lang)
	}
	var secs []section
	if heads[0].at > 0 {
		pre := trimBlank(ls[:heads[0].at])
		secs = append(secs, section{title: firstWords(pre), lines: pre})
	}
	for i, h := range heads {
		end := len(ls)
		if i+1 < len(heads) {
			end = heads[i+1].at
		}
		secs = append(secs, section{title: h.title, lines: trimBlank(ls[h.at:end])})
	}
	return secs
}

func byPage(ls []line, lang string) []section {
	format := "Page %d"
	if lang == "it" {
		format = "Pagina %d"
	}
	var secs []section
	for len(ls) > 0 {
		page := ls[0].page
		n := 0
		for n < len(ls) && (ls[n].page == page || ls[n].blank) {
			n++
		}
		secs = append(secs, section{title: fmt.Sprintf(format, page), lines: trimBlank(ls[:n])})
		ls = trimBlank(ls[n:])
	}
	return secs
}

// firstWords titles a section without a heading by its opening words.
func firstWords(ls []line) string {
	const maxWords, maxRunes = 8, 60
	var words []string
	for _, l := range ls {
		words = append(words, strings.Fields(l.text)...)
		if len(words) > maxWords {
			break
		}
	}
	title := strings.Join(words[:min(len(words), maxWords)], " ")
	if len(words) > maxWords || utf8.RuneCountInString(title) > maxRunes {
		title = truncate(title, maxRunes) + "…"
	}
	return title
}

func truncate(s string, n int) string {
	i := 0
	for range n {
		if i >= len(s) {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return strings.TrimSpace(s[:i])
}

// cut splits a section's lines into pieces of at most maxRunes runes once
// rendered, preferring paragraph ends, then line ends, then spaces.
func cut(ls []line, maxRunes int) [][]line {
	if renderedRunes(ls) <= maxRunes {
		return [][]line{ls}
	}
	var (
		pieces [][]line
		cur    []line
		n      int // rendered runes of cur
	)
	flush := func(upTo int) {
		// upTo is len(cur) or the index of a blank line to cut at.
		if piece := trimBlank(cur[:upTo]); len(piece) > 0 {
			pieces = append(pieces, piece)
		}
		cur = trimBlank(append([]line(nil), cur[min(upTo+1, len(cur)):]...))
		n = renderedRunes(cur)
	}
	for _, l := range splitLong(ls, maxRunes) {
		add := utf8.RuneCountInString(l.text)
		if len(cur) > 0 {
			add++ // the line end before l
		}
		for len(cur) > 0 && n+add > maxRunes {
			if b := lastBlank(cur); b > 0 {
				flush(b)
			} else {
				flush(len(cur))
			}
			if len(cur) == 0 {
				add = utf8.RuneCountInString(l.text)
			}
		}
		if l.blank && len(cur) == 0 {
			continue
		}
		cur = append(cur, l)
		n += add
	}
	flush(len(cur))
	return pieces
}

func lastBlank(ls []line) int {
	for i := len(ls) - 1; i > 0; i-- {
		if ls[i].blank {
			return i
		}
	}
	return -1
}

// splitLong breaks lines longer than maxRunes after a space, or inside a
// word when a single word is longer than maxRunes. The pieces together
// hold every non-space character of the line.
func splitLong(ls []line, maxRunes int) []line {
	var out []line
	for _, l := range ls {
		for {
			// i is the byte offset just past maxRunes runes; cut after the
			// last space before it, else at it. Counting only maxRunes
			// runes per piece keeps this linear in the line's length.
			i := len(truncateBytes(l.text, maxRunes))
			if i == len(l.text) {
				break
			}
			at := strings.LastIndexFunc(l.text[:i], unicode.IsSpace)
			if at <= 0 {
				at = i
			} else {
				_, size := utf8.DecodeRuneInString(l.text[at:])
				at += size
			}
			// A piece of only spaces would be an empty section; dropping it
			// loses nothing but whitespace.
			if piece := l.text[:at]; strings.TrimSpace(piece) != "" {
				out = append(out, line{text: piece, page: l.page})
			}
			l.text = l.text[at:]
		}
		if l.blank || strings.TrimSpace(l.text) != "" {
			out = append(out, l)
		}
	}
	return out
}

// truncateBytes returns the prefix of s holding its first n runes.
func truncateBytes(s string, n int) string {
	i := 0
	for range n {
		if i >= len(s) {
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

func renderedRunes(ls []line) int {
	if len(ls) == 0 {
		return 0
	}
	n := len(ls) - 1
	for _, l := range ls {
		n += utf8.RuneCountInString(l.text)
	}
	return n
}

func render(ls []line) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteByte('\n')
		}
		if !l.blank {
			b.WriteString(l.text)
		}
	}
	return b.String()
}

func pageRange(ls []line) (start, end int32) {
	for _, l := range ls {
		if l.blank {
			continue
		}
		if start == 0 {
			start = l.page
		}
		end = l.page
	}
	return start, end
}

// Heading recognition.

type heading struct {
	at    int // index of the heading's line
	title string
}

var (
	markdownRe = regexp.MustCompile(`^#{1,6}\s+(\S.*)$`)
	articleRe  = regexp.MustCompile(`^(?i:art\.?|articolo|article|sezione|section|capitolo|chapter|parte|part|allegato|annex|appendice|appendix|titolo|clausola|condizione)\s*(?:\d+[a-z]?(?:\.\d+)*|[IVXLC]+|[A-Z])\b\.?(?:$|\s*[-–—:.)]?\s*\S)`)
	numberedRe = regexp.MustCompile(`^(\d{1,2}(?:\.\d{1,2}){1,3}\.?|\d{1,2}[.)])\s+\p{Lu}`)
	footerRe   = regexp.MustCompile(`(?i)^(pag(ina|\.)?|page|p\.)\s*\d+`)
	digitsRe   = regexp.MustCompile(`\d+`)
)

// headings finds the heading lines of ls.
func headings(ls []line) []heading {
	furniture := pageFurniture(ls)
	isFurniture := func(l line) bool { return furniture[furnitureKey(l.text)] }
	capsRun := make([]bool, len(ls))
	for i, l := range ls {
		capsRun[i] = !l.blank && (i == 0 || ls[i-1].blank || capsRun[i-1]) && isCaps(trim(l.text))
	}
	strong := make([]bool, len(ls))
	for i, l := range ls {
		if !l.blank && !isFurniture(l) {
			strong[i] = isStrong(ls, capsRun, i)
		}
	}
	var hs []heading
	for i, l := range ls {
		if l.blank || isFurniture(l) {
			continue
		}
		if !strong[i] && !isLayoutHeading(ls, strong, i) {
			continue
		}
		// A capitals heading wrapped over two lines is one heading.
		if isCaps(trim(l.text)) && i > 0 && !ls[i-1].blank && strong[i-1] && isCaps(trim(ls[i-1].text)) {
			continue
		}
		hs = append(hs, heading{at: i, title: title(ls, i)})
	}
	return hs
}

// pageFurniture returns the lines, with digits masked, that recur on two
// or more pages: running headers and footers, not headings.
func pageFurniture(ls []line) map[string]bool {
	pagesOf := map[string]map[int32]bool{}
	for _, l := range ls {
		if l.blank {
			continue
		}
		k := furnitureKey(l.text)
		if pagesOf[k] == nil {
			pagesOf[k] = map[int32]bool{}
		}
		pagesOf[k][l.page] = true
	}
	f := map[string]bool{}
	for k, ps := range pagesOf {
		if len(ps) >= 2 {
			f[k] = true
		}
	}
	return f
}

// furnitureKey is a line with its digits masked, so that "Pagina 1 di 5"
// and "Pagina 2 di 5" are the same line.
func furnitureKey(s string) string { return trim(digitsRe.ReplaceAllString(s, "#")) }

func trim(s string) string { return strings.Join(strings.Fields(s), " ") }

// isStrong reports whether line i is a heading by its own form. capsRun
// marks the lines that are capitals from the start of their block, so a
// capitals heading wrapped over lines ("CONDIZIONI GENERALI DI /
// ASSICURAZIONE") is recognised on each of them.
func isStrong(ls []line, capsRun []bool, i int) bool {
	t := trim(ls[i].text)
	if markdownRe.MatchString(t) {
		return true
	}
	if continuesSentence(ls, i) {
		return false
	}
	n := utf8.RuneCountInString(t)
	switch {
	case articleRe.MatchString(t):
		return n <= 100 && !strings.HasSuffix(t, ",") && !strings.HasSuffix(t, ";")
	case numberedRe.MatchString(t):
		// A title is short and a single phrase; "2) Gegeben sei X. Dann
		// ist" opens a clause wrapped onto the next line.
		m := numberedRe.FindStringSubmatchIndex(t)
		return n <= 70 && !endsSentence(t) && !strings.Contains(t[m[3]:], ". ") && !inList(ls, i)
	case isCaps(t):
		// Capitals inside a block are table cells and brand names
		// ("IVECO S-WAY"); a heading opens its block or follows a
		// finished sentence or label.
		return n <= 80 && !strings.HasSuffix(t, ",") && !strings.HasSuffix(t, ";") &&
			(i == 0 || ls[i-1].blank || strings.ContainsAny(lastRune(ls[i-1].text), ".:;!?") || capsRun[i-1])
	}
	return false
}

// continuesSentence reports whether line i wraps the sentence of the line
// before: that line is long prose not ending in a stop.
func continuesSentence(ls []line, i int) bool {
	if i == 0 || ls[i-1].blank {
		return false
	}
	prev := trim(ls[i-1].text)
	if utf8.RuneCountInString(prev) < 50 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(prev)
	return unicode.IsLower(r) || r == ','
}

func lastRune(s string) string {
	r, _ := utf8.DecodeLastRuneInString(strings.TrimRightFunc(s, unicode.IsSpace))
	return string(r)
}

func endsSentence(t string) bool {
	r, _ := utf8.DecodeLastRuneInString(t)
	return strings.ContainsRune(".;:,!?", r)
}

// inList reports whether numbered line i is an item of a list: the
// numbered line before it (blank lines aside) carries the number before
// its own, or the one after it the number after ("1. Incendio / 2. Furto").
func inList(ls []line, i int) bool {
	path := numberPath(ls[i].text)
	if len(path) == 0 {
		return false
	}
	step := func(d int) []int {
		p := append([]int(nil), path...)
		p[len(p)-1] += d
		return p
	}
	if j := prevText(ls, i); j >= 0 && slices.Equal(numberPath(ls[j].text), step(-1)) {
		return true
	}
	if j := nextText(ls, i); j >= 0 && slices.Equal(numberPath(ls[j].text), step(+1)) {
		return true
	}
	return false
}

// numberPath returns the numbers of a numbered line, [2 1] for "2.1 Franchigie".
func numberPath(s string) []int {
	m := numberedRe.FindStringSubmatch(trim(s))
	if m == nil {
		return nil
	}
	var path []int
	for _, d := range digitsRe.FindAllString(m[1], -1) {
		n, _ := strconv.Atoi(d) // at most two digits: cannot fail
		path = append(path, n)
	}
	return path
}

func prevText(ls []line, i int) int {
	for j := i - 1; j >= 0; j-- {
		if !ls[j].blank {
			return j
		}
	}
	return -1
}

func nextText(ls []line, i int) int {
	for j := i + 1; j < len(ls); j++ {
		if !ls[j].blank {
			return j
		}
	}
	return -1
}

// isCaps reports whether t is written in capitals: at least four letters,
// all upper case and most of the line, with a word of three letters or
// more (so codes like plates, "GH461XW", and "S.R.L." do not count).
func isCaps(t string) bool {
	var letters, others int
	for _, r := range t {
		switch {
		case unicode.IsLetter(r):
			if !unicode.IsUpper(r) {
				return false
			}
			letters++
		case !unicode.IsSpace(r):
			others++
		}
	}
	return letters >= 4 && letters >= 2*others && hasWord(t)
}

// isLayoutHeading reports whether line i is a short title standing alone
// between blank lines, with body text after it.
func isLayoutHeading(ls []line, strong []bool, i int) bool {
	if (i > 0 && !ls[i-1].blank) || i+1 >= len(ls) || !ls[i+1].blank {
		return false
	}
	next := nextText(ls, i)
	if next < 0 || strong[next] {
		return false
	}
	if !titleShape(trim(ls[i].text)) {
		return false
	}
	// The body must read as text, not as the next label of a form
	// ("Name / Check / Submit"): a paragraph of more than one line, or a
	// line that is not title-shaped.
	paragraph := next+1 < len(ls) && !ls[next+1].blank
	return paragraph || !titleShape(trim(ls[next].text))
}

// titleShape reports whether t looks like a title: short, a capital first,
// a real word in it, and no comma or final stop.
func titleShape(t string) bool {
	first, _ := utf8.DecodeRuneInString(t)
	return unicode.IsUpper(first) &&
		utf8.RuneCountInString(t) <= 60 &&
		len(strings.Fields(t)) <= 8 &&
		hasWord(t) &&
		!endsSentence(t) &&
		!strings.ContainsRune(t, ',') &&
		!footerRe.MatchString(t)
}

// hasWord reports whether t holds a word of three letters or more, so
// that symbols and codes ("U2", "GH461XW", "S.R.L.") are not titles.
func hasWord(t string) bool {
	notAlnum := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
	for _, w := range strings.FieldsFunc(t, notAlnum) {
		if utf8.RuneCountInString(w) >= 3 && strings.IndexFunc(w, unicode.IsDigit) < 0 {
			return true
		}
	}
	return false
}

// title is the heading's text: markdown marks dropped, a capitals heading
// wrapped onto following lines joined, at most 120 runes.
func title(ls []line, i int) string {
	t := trim(ls[i].text)
	if m := markdownRe.FindStringSubmatch(t); m != nil {
		t = m[1]
	}
	if isCaps(t) {
		for j := i + 1; j < len(ls) && !ls[j].blank && utf8.RuneCountInString(t) <= 120 && isCaps(trim(ls[j].text)); j++ {
			t += " " + trim(ls[j].text)
		}
	}
	if utf8.RuneCountInString(t) > 120 {
		t = truncate(t, 120) + "…"
	}
	return t
}
