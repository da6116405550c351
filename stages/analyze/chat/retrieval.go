package chat

import (
	"context"
	"fmt"
	"strings"
)

// Retrieval answers by quoting the passages of the document that best
// match the question. It needs no network and no model, so it is both the
// "rules" provider and the fallback of the LLM ones.
type Retrieval struct {
	it, en   analyzer
	glossary *glossary
}

// Weights of the query's terms: a word as asked, a related word from the
// glossary, a kind of value a question word asks for (weightValue when
// the value is the answer itself, a plate for "targa").
const (
	weightWord    = 1.0
	weightRelated = 0.6
	weightKind    = 0.5
	weightValue   = 1.0
	// maxQuotes passages are quoted at most; the others must score at
	// least minRelative of the best to be worth reading.
	maxQuotes   = 3
	minRelative = 0.5
)

// NewRetrieval returns the retrieval answerer.
func NewRetrieval() (*Retrieval, error) {
	r := &Retrieval{it: newAnalyzer("it"), en: newAnalyzer("en")}
	g, err := parseGlossary(glossaryText, r.it, r.en)
	if err != nil {
		return nil, err
	}
	r.glossary = g
	return r, nil
}

// Answer implements Answerer.
func (r *Retrieval) Answer(ctx context.Context, q Question, emit func(string) error) (Answer, error) {
	lang := r.questionLanguage(q)
	return r.answer(ctx, q, lang, textsFor(lang).retrieval, textsFor(lang).noMatch, emit)
}

// questionLanguage is the language the question is written in, or the
// reviewer's (Question.Language, Italian by default) when the words do
// not tell.
func (r *Retrieval) questionLanguage(q Question) string {
	fallback := "it"
	if q.Language == "en" {
		fallback = "en"
	}
	return language(q.Text, fallback, r.it, r.en)
}

// answer writes intro and the best passages, or noMatch.
func (r *Retrieval) answer(ctx context.Context, q Question, lang, intro, noMatch string, emit func(string) error) (Answer, error) {
	a := Answer{Grounding: GroundingRetrieval, Provider: "rules"}
	var b strings.Builder
	send := func(s string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(s); err != nil {
			return fmt.Errorf("chat: emit: %w", err)
		}
		b.WriteString(s)
		return nil
	}
	found := r.search(q, lang)
	if len(found) == 0 {
		if err := send(noMatch); err != nil {
			return Answer{}, err
		}
		a.Text = b.String()
		return a, nil
	}
	if err := send(intro); err != nil {
		return Answer{}, err
	}
	for i, c := range found {
		if err := send(fmt.Sprintf("\n\n%d. «%s» [S%d]", i+1, strings.Join(strings.Fields(c.Quote), " "), c.Section)); err != nil {
			return Answer{}, err
		}
		a.Citations = append(a.Citations, c)
	}
	a.Text = b.String()
	return a, nil
}

// search returns the passages of q's sections that best answer q.Text,
// best first, at most three; none when no passage shares a word (or a
// glossary relative of one, or a value asked for) with the question.
// lang, the question's language, is the guess for sections too short to
// tell their own.
func (r *Retrieval) search(q Question, lang string) []Citation {
	ix, hits := r.rank(q, lang)
	var out []Citation
	for _, h := range hits {
		if len(out) == maxQuotes || h.score < hits[0].score*minRelative {
			break
		}
		p := ix.passages[h.passage]
		s := q.Sections[p.section]
		out = append(out, Citation{Section: s.Index, Quote: s.Text[p.start:p.end]})
	}
	return out
}

// sectionRelevance returns the positions of q's sections, those with the
// best-matching passages first, the first section next, then the rest in
// document order.
func (r *Retrieval) sectionRelevance(q Question, lang string) []int {
	ix, hits := r.rank(q, lang)
	score := make([]float64, len(q.Sections))
	for _, h := range hits {
		s := ix.passages[h.passage].section
		score[s] = max(score[s], h.score)
	}
	if len(score) > 0 && score[0] == 0 {
		score[0] = 1e-9 // before the unrelated ones
	}
	return sortByScore(score)
}

// rank indexes the passages of q's sections and ranks them for q.Text.
func (r *Retrieval) rank(q Question, lang string) (*index, []hit) {
	query := r.query(q.Text)
	var kinds []string
	for _, alts := range query {
		for t := range alts {
			if _, ok := valueKinds[t]; ok {
				kinds = append(kinds, t)
			}
		}
	}
	docLang := r.documentLanguage(q.Sections, lang)
	var ps []passage
	sectionLang := make([]analyzer, len(q.Sections))
	for i, s := range q.Sections {
		for _, p := range passages(i, s.Text) {
			// A passage that is only its section's heading names a topic
			// and answers nothing (the passages under it do), unless the
			// heading holds a value ("Tel. 02 5693021").
			if span := s.Text[p.start:p.end]; span != strings.TrimSpace(s.Title) || strings.ContainsAny(span, "0123456789@") {
				ps = append(ps, p)
			}
		}
		sectionLang[i] = r.analyzer(language(s.Text, docLang, r.it, r.en))
	}
	ix := newIndex(ps, func(p passage) []string {
		span := q.Sections[p.section].Text[p.start:p.end]
		a := sectionLang[p.section]
		var terms []string
		for _, w := range words(span) {
			if t := a.term(w.text); t != "" {
				terms = append(terms, t)
			}
		}
		// Only the kinds the question asks for: the patterns cost more
		// than the rest of the indexing.
		for _, kind := range kinds {
			if valueKinds[kind].pattern.MatchString(span) {
				terms = append(terms, kind)
			}
		}
		return terms
	}, func(p passage) []string {
		var terms []string
		for _, w := range words(q.Sections[p.section].Title) {
			if t := sectionLang[p.section].term(w.text); t != "" {
				terms = append(terms, t)
			}
		}
		return terms
	})
	return ix, ix.rank(query)
}

func (r *Retrieval) analyzer(lang string) analyzer {
	if lang == "en" {
		return r.en
	}
	return r.it
}

func kindWeight(kind string) float64 {
	if valueKinds[kind].alone {
		return weightValue
	}
	return weightKind
}

// documentLanguage guesses the language of the sections from their
// first few thousand bytes.
func (r *Retrieval) documentLanguage(sections []Section, fallback string) string {
	var sample strings.Builder
	for _, s := range sections {
		if sample.Len() > 20000 {
			break
		}
		sample.WriteString(s.Text)
		sample.WriteByte('\n')
	}
	return language(sample.String(), fallback, r.it, r.en)
}

// query turns the question into its words' alternatives: each word
// stemmed as Italian and as English, the glossary's relatives of each
// stem; and, each on its own, the kinds of value its words ask for.
func (r *Retrieval) query(text string) []alternatives {
	var q []alternatives
	kinds := make(alternatives)
	// A short question often has no stop word to tell its language by,
	// so every word is stemmed both ways; a stem of the wrong language
	// rarely matches anything.
	for _, w := range words(text) {
		alts := make(alternatives)
		add := func(m alternatives, t string, w float64) {
			if t != "" && m[t] < w {
				m[t] = w
			}
		}
		for _, kind := range r.glossary.cues[w.text] {
			add(kinds, kind, kindWeight(kind))
		}
		for _, a := range []analyzer{r.it, r.en} {
			t := a.term(w.text)
			if t == "" {
				continue
			}
			add(alts, t, weightWord)
			for _, rel := range r.glossary.related[t] {
				add(alts, rel, weightRelated)
			}
			for _, kind := range r.glossary.cues[t] {
				add(kinds, kind, kindWeight(kind))
			}
		}
		if len(alts) > 0 {
			q = append(q, alts)
		}
	}
	for kind, w := range kinds {
		q = append(q, alternatives{kind: w})
	}
	return q
}
