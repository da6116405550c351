package chat

import (
	"math"
	"sort"
)

// BM25 parameters: the usual values. Passages are short and of similar
// length, so length normalisation matters little either way.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// index holds the passages of one question's sections with their terms.
type index struct {
	passages []passage
	tf       []map[string]int  // per passage: term -> count
	heading  []map[string]bool // per passage: terms of its section's title
	length   []int             // per passage: number of terms
	df       map[string]int
	avgLen   float64
}

// titleWeight is how much a query term found in the heading of a
// passage's section adds, relative to finding it in the passage: under
// "Sinistri e circostanze", "Un sinistro nel 2021" is about claims more
// surely than "massimale per sinistro" elsewhere.
const titleWeight = 0.5

func newIndex(ps []passage, termsOf, headingOf func(p passage) []string) *index {
	ix := &index{passages: ps, tf: make([]map[string]int, len(ps)), heading: make([]map[string]bool, len(ps)),
		length: make([]int, len(ps)), df: make(map[string]int)}
	total := 0
	for i, p := range ps {
		ix.heading[i] = make(map[string]bool)
		for _, t := range headingOf(p) {
			ix.heading[i][t] = true
		}
		tf := make(map[string]int)
		for _, t := range termsOf(p) {
			tf[t]++
			ix.length[i]++
		}
		for t := range tf {
			ix.df[t]++
		}
		ix.tf[i] = tf
		total += ix.length[i]
	}
	if len(ps) > 0 {
		ix.avgLen = float64(total) / float64(len(ps))
	}
	return ix
}

// hit is a passage's score for a query.
type hit struct {
	passage int
	score   float64
}

// alternatives are the terms one word of a question may be found as (its
// stems, its glossary relatives, or a kind of value it asks for), with
// their weights. A passage scores a word once, by its best alternative:
// "indirizzo" found as both "sede" and "via" is still one word found.
type alternatives map[string]float64

// rank scores every passage that matches at least one term of the query
// that may match alone (a word, or a value kind such as a plate; see
// valueKind.alone), best first.
func (ix *index) rank(query []alternatives) []hit {
	n := float64(len(ix.passages))
	var hits []hit
	for i, tf := range ix.tf {
		score, words := 0.0, false
		for _, alts := range query {
			best := 0.0
			for t, w := range alts {
				df := float64(ix.df[t])
				if k, ok := valueKinds[t]; ok && k.alone {
					// A plate asked for is as telling as the rarest word,
					// however many plates the document lists.
					df = 1
				}
				idf := math.Log(1 + (n-df+0.5)/(df+0.5))
				s := 0.0
				if ix.heading[i][t] {
					s = titleWeight * w * idf
				}
				if f := float64(tf[t]); f > 0 {
					if k, ok := valueKinds[t]; !ok || k.alone {
						words = true
					}
					norm := f * (bm25K1 + 1) / (f + bm25K1*(1-bm25B+bm25B*float64(ix.length[i])/ix.avgLen))
					s += w * idf * norm
				}
				best = max(best, s)
			}
			score += best
		}
		if words {
			hits = append(hits, hit{passage: i, score: score})
		}
	}
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].score > hits[b].score })
	return hits
}
