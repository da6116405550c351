package classify

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Model scores a document's text against the categories. The keyword
// model below is the first implementation; a trained model or an LLM
// provider replaces it behind the same interface.
type Model interface {
	// Predict returns the best category, its probability and the
	// probability of every category (summing to 1).
	Predict(text string) (category string, confidence float64, scores map[string]float64)
}

// defaultTaxonomy is the embedded cue file for the default categories.
//
//go:embed taxonomy.json
var defaultTaxonomy []byte

// TaxonomyFile is the JSON form of a taxonomy: categories with their cue
// terms and patterns. A broker can pass their own file to use other
// categories or other words.
type TaxonomyFile struct {
	Fallback string `json:"fallback" yaml:"fallback"`
	// Temperature divides the scores before the softmax: higher means
	// less confident probabilities for the same evidence. Default 1.
	Temperature float64          `json:"temperature" yaml:"temperature"`
	Categories  []CategoryConfig `json:"categories" yaml:"categories"`
}

// CategoryConfig lists the cues of one category.
type CategoryConfig struct {
	Name     string             `json:"name" yaml:"name"`
	Prior    float64            `json:"prior" yaml:"prior"`       // score before any cue
	Terms    map[string]float64 `json:"terms" yaml:"terms"`       // whole words/phrases, case-insensitive
	Patterns map[string]float64 `json:"patterns" yaml:"patterns"` // Go regexps, case-sensitive
}

// ParseTaxonomy reads and checks a taxonomy file, JSON or YAML.
func ParseTaxonomy(data []byte) (TaxonomyFile, error) {
	var tf TaxonomyFile
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(data, &tf); err != nil {
			return TaxonomyFile{}, fmt.Errorf("parse taxonomy (JSON): %w", err)
		}
	} else if err := yaml.Unmarshal(data, &tf); err != nil {
		return TaxonomyFile{}, fmt.Errorf("parse taxonomy (YAML): %w", err)
	}
	if len(tf.Categories) == 0 {
		return TaxonomyFile{}, errors.New("taxonomy has no categories")
	}
	seen := map[string]bool{}
	for _, c := range tf.Categories {
		if c.Name == "" || seen[c.Name] {
			return TaxonomyFile{}, fmt.Errorf("taxonomy: empty or duplicate category %q", c.Name)
		}
		seen[c.Name] = true
	}
	if tf.Fallback != "" && !seen[tf.Fallback] {
		return TaxonomyFile{}, fmt.Errorf("taxonomy: fallback %q is not a category", tf.Fallback)
	}
	return tf, nil
}

// Ordered returns the category names in file order with the fallback
// moved last, the order Classifier.Taxonomy and render.New expect.
func (tf TaxonomyFile) Ordered() []string {
	var out []string
	for _, n := range tf.Names() {
		if n != tf.Fallback {
			out = append(out, n)
		}
	}
	if tf.Fallback != "" {
		out = append(out, tf.Fallback)
	}
	return out
}

// Names returns the category names in file order.
func (tf TaxonomyFile) Names() []string {
	names := make([]string, len(tf.Categories))
	for i, c := range tf.Categories {
		names[i] = c.Name
	}
	return names
}

// KeywordModel scores each category by the weighted evidence of its cues
// and turns the scores into probabilities with a softmax. A cue seen n
// times counts w·(1+ln n): repetition (a long vehicle table) adds
// evidence, but with diminishing returns so one repeated word cannot
// outvote several distinct ones. It is explainable: Explain lists the
// cues that fired.
type KeywordModel struct {
	categories  []string
	priors      []float64
	cues        [][]cue
	temperature float64
}

type cue struct {
	label  string
	re     *regexp.Regexp
	weight float64
}

// NewKeywordModel compiles a taxonomy file into a model.
func NewKeywordModel(tf TaxonomyFile) (*KeywordModel, error) {
	m := &KeywordModel{temperature: tf.Temperature}
	if m.temperature <= 0 {
		m.temperature = 1
	}
	for _, c := range tf.Categories {
		var cs []cue
		for _, term := range sortedKeys(c.Terms) {
			// Whole-word match on letters and digits: "car" must not fire on "carico".
			re, err := regexp.Compile(`(?i)(?:^|[^\p{L}\d])` + regexp.QuoteMeta(strings.ToLower(term)) + `(?:$|[^\p{L}\d])`)
			if err != nil {
				return nil, fmt.Errorf("category %q term %q: %w", c.Name, term, err)
			}
			cs = append(cs, cue{term, re, c.Terms[term]})
		}
		for _, p := range sortedKeys(c.Patterns) {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("category %q pattern %q: %w", c.Name, p, err)
			}
			cs = append(cs, cue{p, re, c.Patterns[p]})
		}
		m.categories = append(m.categories, c.Name)
		m.priors = append(m.priors, c.Prior)
		m.cues = append(m.cues, cs)
	}
	return m, nil
}

// Name is reported as the classification provider.
func (m *KeywordModel) Name() string { return "keywords" }

// Predict implements Model.
func (m *KeywordModel) Predict(text string) (string, float64, map[string]float64) {
	raw := make([]float64, len(m.categories))
	for i := range m.categories {
		raw[i] = m.priors[i]
		for _, c := range m.cues[i] {
			if n := countMatches(c.re, text); n > 0 {
				raw[i] += c.weight * (1 + math.Log(float64(n)))
			}
		}
	}
	probs := softmax(raw, m.temperature)
	best := 0
	scores := make(map[string]float64, len(probs))
	for i, p := range probs {
		scores[m.categories[i]] = p
		if p > probs[best] {
			best = i
		}
	}
	return m.categories[best], probs[best], scores
}

// Explain returns the cues that fired for a category with their counts,
// for logs and for a reviewer asking "why this category?".
func (m *KeywordModel) Explain(text, category string) map[string]int {
	out := map[string]int{}
	for i, name := range m.categories {
		if name != category {
			continue
		}
		for _, c := range m.cues[i] {
			if n := countMatches(c.re, text); n > 0 {
				out[c.label] = n
			}
		}
	}
	return out
}

// countMatches counts occurrences; the boundary characters the term
// regexps consume can hide a match right after another ("rca rca"), which
// only undercounts repetitions and is fine for evidence.
func countMatches(re *regexp.Regexp, text string) int {
	return len(re.FindAllStringIndex(text, -1))
}

func softmax(xs []float64, temperature float64) []float64 {
	maxX := math.Inf(-1)
	for _, x := range xs {
		maxX = math.Max(maxX, x)
	}
	out := make([]float64, len(xs))
	var sum float64
	for i, x := range xs {
		out[i] = math.Exp((x - maxX) / temperature)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DefaultTaxonomy returns the embedded taxonomy: Flotta Auto, RC
// Professionale, Fabbricato, Rischi Tecnologici and the fallback Altro.
func DefaultTaxonomy() (TaxonomyFile, error) { return ParseTaxonomy(defaultTaxonomy) }
