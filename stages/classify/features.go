package classify

import (
	"hash/fnv"
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// featurizer turns text into a sparse, L2-normalised vector of hashed
// n-gram counts. Hashing (instead of a vocabulary) keeps the model file
// small and lets a model trained on one set of documents read words it
// has never seen without a lookup table; with 2^18 buckets and a few
// hundred documents collisions are rare enough not to matter.
type featurizer struct {
	dim       int // number of hash buckets, a power of two
	maxTokens int // words read per document: long attachments repeat themselves
}

const (
	defaultDim       = 1 << 18
	defaultMaxTokens = 4000
	numberToken      = "0" // every number reads the same: amounts and dates are not topics
)

// numberRE matches a number with its Italian separators (1.250.000,00;
// 01/03/2027) so that it becomes one token, not several.
var numberRE = regexp.MustCompile(`\d(?:[\d.,/]*\d)?`)

// sparse is a feature vector: sorted bucket indices and their values.
type sparse struct {
	idx []int32
	val []float64
}

// normalizeText lowercases, folds accents (perché, perche and PERCHÈ are
// one word: brokers' clients type all three) and apostrophes, and returns
// the words with every number replaced by numberToken.
func normalizeText(text string) []string {
	var b strings.Builder
	b.Grow(len(text))
	text = numberRE.ReplaceAllString(text, " "+numberToken+" ")
	for _, r := range norm.NFD.String(text) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// the accent of a decomposed letter
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteByte(' ')
		}
	}
	words := strings.Fields(b.String())
	for i, w := range words {
		if strings.IndexFunc(w, unicode.IsDigit) >= 0 {
			words[i] = numberToken
		}
	}
	return words
}

// vector builds the features of text: word unigrams and bigrams (topic
// words and short phrases like "libro matricola") and character 3-5
// grams of each padded word (Italian inflection: fabbricato, fabbricati
// and fabbricativi share "fabbr"; typos keep most of their grams). Counts
// are damped to 1+ln(n) so a 40-row vehicle table is strong evidence
// without drowning every other word, then the vector is scaled to unit
// length so long and short documents score on one scale.
func (f featurizer) vector(text string) sparse {
	words := normalizeText(text)
	if len(words) > f.maxTokens {
		words = words[:f.maxTokens]
	}
	counts := map[int32]float64{}
	add := func(kind byte, s string) {
		h := fnv.New32a()
		h.Write([]byte{kind})
		h.Write([]byte(s))
		counts[int32(h.Sum32()&uint32(f.dim-1))]++
	}
	for i, w := range words {
		add('w', w)
		if i > 0 {
			add('b', words[i-1]+" "+w)
		}
		if w == numberToken {
			continue
		}
		r := []rune(" " + w + " ")
		for n := 3; n <= 5; n++ {
			for s := 0; s+n <= len(r); s++ {
				add('c', string(r[s:s+n]))
			}
		}
	}
	v := sparse{idx: make([]int32, 0, len(counts)), val: make([]float64, 0, len(counts))}
	for k := range counts {
		v.idx = append(v.idx, k)
	}
	sort.Slice(v.idx, func(i, j int) bool { return v.idx[i] < v.idx[j] })
	var norm2 float64
	for _, k := range v.idx {
		x := 1 + math.Log(counts[k])
		v.val = append(v.val, x)
		norm2 += x * x
	}
	if norm2 > 0 {
		s := 1 / math.Sqrt(norm2)
		for i := range v.val {
			v.val[i] *= s
		}
	}
	return v
}
