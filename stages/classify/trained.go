package classify

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Example is one labelled document: what a broker's mail said and the
// category it belongs to. Group ties the documents of one request
// together (its e-mail and attachments) so that cross-validation never
// trains on an e-mail and tests on its own attachment.
type Example struct {
	Category string `json:"category"`
	Text     string `json:"text"`
	Group    string `json:"group,omitempty"`
}

// Algorithm names a learner.
type Algorithm string

const (
	// LogisticRegression is multinomial logistic regression (softmax)
	// with L2 regularisation, fitted by AdaGrad stochastic gradient
	// descent. The default: see the package doc for the measurement.
	LogisticRegression Algorithm = "logreg"
	// ComplementNB is complement naive Bayes (Rennie et al., 2003) with
	// weight normalisation, kept for comparison.
	ComplementNB Algorithm = "cnb"
)

// TrainOptions tune training; the zero value gives the defaults.
type TrainOptions struct {
	Algorithm Algorithm // default LogisticRegression
	Epochs    int       // SGD passes over the data; default 20
	L2        float64   // L2 penalty per example update; default 1e-3
	Rate      float64   // AdaGrad base learning rate; default 0.5
	Alpha     float64   // CNB smoothing; default 0.3
	Folds     int       // folds for fitting the temperature; default 3
	Seed      uint64    // shuffling seed; default 1 (training is deterministic)
}

func (o TrainOptions) withDefaults() TrainOptions {
	if o.Algorithm == "" {
		o.Algorithm = LogisticRegression
	}
	if o.Epochs <= 0 {
		o.Epochs = 20
	}
	if o.L2 <= 0 {
		o.L2 = 1e-3
	}
	if o.Rate <= 0 {
		o.Rate = 0.5
	}
	if o.Alpha <= 0 {
		o.Alpha = 0.3
	}
	if o.Folds <= 1 {
		o.Folds = 3
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	return o
}

// TrainedModel is a linear classifier over hashed word and character
// n-grams whose softmax probabilities are calibrated by a temperature
// fitted on cross-validation folds. It is immutable after training and
// safe for concurrent use.
type TrainedModel struct {
	algorithm   Algorithm
	feat        featurizer
	categories  []string  // the classes it was trained on
	weights     []float64 // bucket-major: weights[j*k+c], so one bucket's classes share a cache line
	unseen      []float64 // per-class weight of a bucket no training document had (CNB)
	bias        []float64
	temperature float64
	examples    int
}

// Name is reported as the classification provider.
func (m *TrainedModel) Name() string { return "trained-" + string(m.algorithm) }

// Categories returns the classes the model was trained on.
func (m *TrainedModel) Categories() []string { return slices.Clone(m.categories) }

// Temperature is the calibration temperature fitted on held-out folds.
func (m *TrainedModel) Temperature() float64 { return m.temperature }

// Predict implements Model.
func (m *TrainedModel) Predict(text string) (string, float64, map[string]float64) {
	probs := softmax(m.logits(m.feat.vector(text)), m.temperature)
	return pick(m.categories, probs)
}

func (m *TrainedModel) logits(x sparse) []float64 {
	k := len(m.categories)
	out := slices.Clone(m.bias)
	for i, j := range x.idx {
		w := m.weights[int(j)*k : int(j)*k+k]
		if m.unseen != nil && w[0] == 0 {
			w = m.unseen // CNB: a bucket no training document had sits at the smoothing floor
		}
		for c := range out {
			out[c] += x.val[i] * w[c]
		}
	}
	return out
}

func pick(categories []string, probs []float64) (string, float64, map[string]float64) {
	best := 0
	scores := make(map[string]float64, len(probs))
	for i, p := range probs {
		scores[categories[i]] = p
		if p > probs[best] {
			best = i
		}
	}
	return categories[best], probs[best], scores
}

// Train fits a model on examples. Every category with at least one
// example becomes a class, in order of first appearance in order (the
// taxonomy's order; categories missing from order come after, sorted).
// The temperature is fitted on out-of-fold predictions so that a
// confidence of 0.8 is right about 80% of the time on unseen documents.
func Train(examples []Example, order []string, opts TrainOptions) (*TrainedModel, error) {
	opts = opts.withDefaults()
	cats := classes(examples, order)
	if len(cats) < 2 {
		return nil, fmt.Errorf("train: need examples of at least 2 categories, have %d", len(cats))
	}
	feat := featurizer{dim: defaultDim, maxTokens: defaultMaxTokens}
	xs := make([]sparse, len(examples))
	ys := make([]int, len(examples))
	for i, e := range examples {
		xs[i] = feat.vector(e.Text)
		ys[i] = slices.Index(cats, e.Category)
	}
	// Out-of-fold logits for the temperature.
	folds := assignFolds(examples, opts.Folds, opts.Seed)
	var oofLogits [][]float64
	var oofY []int
	for f := 0; f < opts.Folds; f++ {
		var trX []sparse
		var trY []int
		for i := range xs {
			if folds[i] != f {
				trX, trY = append(trX, xs[i]), append(trY, ys[i])
			}
		}
		if len(trX) == len(xs) || !hasAll(trY, len(cats)) {
			continue // this fold is empty or would lose a class: it tells nothing about calibration
		}
		fm := fit(feat, cats, trX, trY, opts)
		for i := range xs {
			if folds[i] == f {
				oofLogits = append(oofLogits, fm.logits(xs[i]))
				oofY = append(oofY, ys[i])
			}
		}
	}
	m := fit(feat, cats, xs, ys, opts)
	m.temperature = fitTemperature(oofLogits, oofY)
	return m, nil
}

func hasAll(ys []int, k int) bool {
	seen := make([]bool, k)
	n := 0
	for _, y := range ys {
		if !seen[y] {
			seen[y] = true
			n++
		}
	}
	return n == k
}

func classes(examples []Example, order []string) []string {
	present := map[string]bool{}
	for _, e := range examples {
		present[e.Category] = true
	}
	var cats []string
	for _, c := range order {
		if present[c] && !slices.Contains(cats, c) {
			cats = append(cats, c)
		}
	}
	var rest []string
	for c := range present {
		if !slices.Contains(cats, c) {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	return append(cats, rest...)
}

// assignFolds deals the groups (requests) round-robin over the folds in
// a seeded shuffle, stratified by category so every fold sees every
// category when there are enough requests.
func assignFolds(examples []Example, k int, seed uint64) []int {
	type group struct{ key, cat string }
	var groups []group
	seen := map[string]bool{}
	for i, e := range examples {
		key := e.Group
		if key == "" {
			key = fmt.Sprintf("#%d", i)
		}
		if !seen[key] {
			seen[key] = true
			groups = append(groups, group{key, e.Category})
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	rng.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].cat < groups[j].cat })
	foldOf := map[string]int{}
	for i, g := range groups {
		foldOf[g.key] = i % k
	}
	out := make([]int, len(examples))
	for i, e := range examples {
		key := e.Group
		if key == "" {
			key = fmt.Sprintf("#%d", i)
		}
		out[i] = foldOf[key]
	}
	return out
}

func fit(feat featurizer, cats []string, xs []sparse, ys []int, opts TrainOptions) *TrainedModel {
	if opts.Algorithm == ComplementNB {
		return fitCNB(feat, cats, xs, ys, opts)
	}
	return fitLogReg(feat, cats, xs, ys, opts)
}

// fitLogReg minimises the softmax cross-entropy with an L2 penalty by
// AdaGrad SGD: per-bucket step sizes suit hashed n-grams, where a few
// buckets fire in every document and most in one. The penalty is applied
// to the buckets an example touches, the usual lazy form for sparse data.
func fitLogReg(feat featurizer, cats []string, xs []sparse, ys []int, opts TrainOptions) *TrainedModel {
	k := len(cats)
	m := &TrainedModel{algorithm: LogisticRegression, feat: feat, categories: cats,
		weights: make([]float64, feat.dim*k), bias: make([]float64, k), temperature: 1, examples: len(xs)}
	g2 := make([]float64, feat.dim*k)
	d := make([]float64, k)
	bg2 := make([]float64, k)
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x2545f4914f6cdd1d))
	for epoch := 0; epoch < opts.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, n := range order {
			x := xs[n]
			p := softmax(m.logits(x), 1)
			for c := range d {
				d[c] = p[c]
				if c == ys[n] {
					d[c]--
				}
				bg2[c] += d[c] * d[c]
				m.bias[c] -= opts.Rate * d[c] / (math.Sqrt(bg2[c]) + 1e-8)
			}
			for i, j := range x.idx {
				base := int(j) * k
				w, g := m.weights[base:base+k], g2[base:base+k]
				for c := range d {
					grad := d[c]*x.val[i] + opts.L2*w[c]
					g[c] += grad * grad
					w[c] -= opts.Rate * grad / (math.Sqrt(g[c]) + 1e-8)
				}
			}
		}
	}
	return m
}

// fitCNB estimates, for each class, the smoothed n-gram distribution of
// every other class, and scores a document by how badly it fits the
// complement: more robust than plain naive Bayes with few, uneven
// examples. Weights are normalised per class as Rennie et al. advise.
func fitCNB(feat featurizer, cats []string, xs []sparse, ys []int, opts TrainOptions) *TrainedModel {
	k := len(cats)
	perClass := make([]map[int32]float64, k)
	totals := make([]float64, k)
	all := map[int32]float64{}
	var total float64
	for c := range perClass {
		perClass[c] = map[int32]float64{}
	}
	for n, x := range xs {
		for i, j := range x.idx {
			perClass[ys[n]][j] += x.val[i]
			totals[ys[n]] += x.val[i]
			all[j] += x.val[i]
			total += x.val[i]
		}
	}
	m := &TrainedModel{algorithm: ComplementNB, feat: feat, categories: cats,
		weights: make([]float64, feat.dim*k), unseen: make([]float64, k), bias: make([]float64, k), temperature: 1, examples: len(xs)}
	d := float64(feat.dim)
	logTheta := make(map[int32]float64, len(all))
	for c := 0; c < k; c++ {
		compTotal := total - totals[c]
		denom := compTotal + opts.Alpha*d
		// Σ_j |log θ_cj| over all buckets: the seen ones plus the rest at
		// the smoothing floor.
		floor := math.Log(opts.Alpha / denom)
		var sumAbs float64
		for j, v := range all {
			theta := (v - perClass[c][j] + opts.Alpha) / denom
			w := math.Log(theta)
			logTheta[j] = w
			sumAbs += math.Abs(w)
		}
		sumAbs += math.Abs(floor) * (d - float64(len(all)))
		// A document that fits the complement well is unlikely to be c:
		// the score is minus the normalised complement log-likelihood.
		for j, w := range logTheta {
			m.weights[int(j)*k+c] = -w / sumAbs * d // never 0: θ < 1
		}
		m.unseen[c] = -floor / sumAbs * d
	}
	return m
}

// fitTemperature finds T minimising the negative log-likelihood of the
// held-out labels under softmax(logits/T), by golden-section search on
// log T. Without held-out predictions it returns 1.
func fitTemperature(logits [][]float64, ys []int) float64 {
	if len(logits) == 0 {
		return 1
	}
	nll := func(logT float64) float64 {
		t := math.Exp(logT)
		var s float64
		for i, l := range logits {
			p := softmax(l, t)
			s -= math.Log(math.Max(p[ys[i]], 1e-12))
		}
		return s
	}
	lo, hi := math.Log(0.01), math.Log(100.0)
	phi := (math.Sqrt(5) - 1) / 2
	a, b := hi-phi*(hi-lo), lo+phi*(hi-lo)
	fa, fb := nll(a), nll(b)
	for i := 0; i < 60; i++ {
		if fa < fb {
			hi, b, fb = b, a, fa
			a = hi - phi*(hi-lo)
			fa = nll(a)
		} else {
			lo, a, fa = a, b, fb
			b = lo + phi*(hi-lo)
			fb = nll(b)
		}
	}
	return math.Exp((lo + hi) / 2)
}

// CVResult is the outcome of a cross-validation.
type CVResult struct {
	Documents int
	Correct   int
	// Confusion counts [truth][predicted].
	Confusion map[string]map[string]int
	// Errors lists the misclassified examples' groups with their truth
	// and prediction.
	Errors []string
}

// Accuracy is Correct/Documents.
func (r CVResult) Accuracy() float64 {
	if r.Documents == 0 {
		return 0
	}
	return float64(r.Correct) / float64(r.Documents)
}

// CrossValidate trains on k-1 folds of examples (grouped by request) plus
// every always example, tests on the remaining fold, and sums the k
// results: an estimate of accuracy on documents the model never saw.
func CrossValidate(examples, always []Example, order []string, k int, opts TrainOptions) (CVResult, error) {
	opts = opts.withDefaults()
	folds := assignFolds(examples, k, opts.Seed)
	res := CVResult{Confusion: map[string]map[string]int{}}
	for f := 0; f < k; f++ {
		train := slices.Clone(always)
		var test []Example
		for i, e := range examples {
			if folds[i] == f {
				test = append(test, e)
			} else {
				train = append(train, e)
			}
		}
		if len(test) == 0 {
			continue
		}
		m, err := Train(train, order, opts)
		if err != nil {
			return CVResult{}, fmt.Errorf("fold %d: %w", f, err)
		}
		for _, e := range test {
			got, _, _ := m.Predict(e.Text)
			res.Documents++
			if res.Confusion[e.Category] == nil {
				res.Confusion[e.Category] = map[string]int{}
			}
			res.Confusion[e.Category][got]++
			if got == e.Category {
				res.Correct++
			} else {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %s predicted as %s", e.Group, e.Category, got))
			}
		}
	}
	return res, nil
}

//go:embed training/*.jsonl
var trainingFS embed.FS

// BuiltinExamples returns the labelled examples shipped in training/.
func BuiltinExamples() ([]Example, error) {
	names, err := fs.Glob(trainingFS, "training/*.jsonl")
	if err != nil {
		return nil, err
	}
	var out []Example
	for _, n := range names {
		b, err := trainingFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ex, err := ReadExamples(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		for i := range ex {
			if ex[i].Group == "" {
				ex[i].Group = fmt.Sprintf("%s:%d", path.Base(n), i+1)
			}
		}
		out = append(out, ex...)
	}
	return out, nil
}

// ReadExamples reads JSON lines {"category", "text"[, "group"]}; blank
// lines are skipped. A line without category or text is an error that
// names the line.
func ReadExamples(r io.Reader) ([]Example, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var out []Example
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e Example
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if strings.TrimSpace(e.Category) == "" || strings.TrimSpace(e.Text) == "" {
			return nil, fmt.Errorf("line %d: category and text are required", line)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read examples: %w", err)
	}
	return out, nil
}

// builtin trains the default model once per process from the embedded
// examples. It is a lazily computed constant, not mutable state: the
// result never changes and the model is read-only.
var builtin = sync.OnceValues(func() (*TrainedModel, error) {
	ex, err := BuiltinExamples()
	if err != nil {
		return nil, err
	}
	tf, err := DefaultTaxonomy()
	if err != nil {
		return nil, err
	}
	return Train(ex, tf.Ordered(), TrainOptions{})
})

// BuiltinModel returns the model trained from the embedded examples over
// the default taxonomy.
func BuiltinModel() (*TrainedModel, error) { return builtin() }

// modelFile is the serialised form: only the buckets some training
// document had are stored, which keeps a 2^18-bucket model to a few MB.
type modelFile struct {
	Magic       string
	Version     int
	Algorithm   Algorithm
	Dim         int
	MaxTokens   int
	Categories  []string
	Bias        []float64
	Unseen      []float64
	Temperature float64
	Examples    int
	Index       []int32
	Weights     []float32 // len(Index) × len(Categories), bucket-major
}

const (
	modelMagic   = "prismflow-classify-model"
	modelVersion = 1
)

// Save writes the model as gzip-compressed gob.
func (m *TrainedModel) Save(w io.Writer) error {
	f := modelFile{Magic: modelMagic, Version: modelVersion, Algorithm: m.algorithm, Dim: m.feat.dim,
		MaxTokens: m.feat.maxTokens, Categories: m.categories, Bias: m.bias, Unseen: m.unseen,
		Temperature: m.temperature, Examples: m.examples}
	k := len(m.categories)
	for j := 0; j < m.feat.dim; j++ {
		w := m.weights[j*k : j*k+k]
		if !slices.ContainsFunc(w, func(x float64) bool { return x != 0 }) {
			continue
		}
		f.Index = append(f.Index, int32(j))
		for _, x := range w {
			f.Weights = append(f.Weights, float32(x))
		}
	}
	zw := gzip.NewWriter(w)
	if err := gob.NewEncoder(zw).Encode(&f); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}

// LoadModel reads a model written by Save. A file that is not one, or
// is inconsistent, is an error naming what is wrong.
func LoadModel(r io.Reader) (*TrainedModel, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("load model: not a model file: %w", err)
	}
	var f modelFile
	if err := gob.NewDecoder(zr).Decode(&f); err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	k := len(f.Categories)
	switch {
	case f.Magic != modelMagic:
		return nil, errors.New("load model: not a prismflow classify model")
	case f.Version != modelVersion:
		return nil, fmt.Errorf("load model: version %d, this build reads %d", f.Version, modelVersion)
	case k < 2 || len(f.Bias) != k || len(f.Weights) != len(f.Index)*k:
		return nil, errors.New("load model: inconsistent sizes")
	case f.Dim <= 0 || f.Dim&(f.Dim-1) != 0 || f.Dim > 1<<24 || f.MaxTokens <= 0:
		return nil, fmt.Errorf("load model: bad feature space %d/%d", f.Dim, f.MaxTokens)
	case f.Unseen != nil && len(f.Unseen) != k:
		return nil, errors.New("load model: inconsistent sizes")
	case !(f.Temperature > 0):
		return nil, fmt.Errorf("load model: bad temperature %v", f.Temperature)
	}
	m := &TrainedModel{algorithm: f.Algorithm, feat: featurizer{dim: f.Dim, maxTokens: f.MaxTokens},
		categories: f.Categories, bias: f.Bias, unseen: f.Unseen, temperature: f.Temperature,
		examples: f.Examples, weights: make([]float64, f.Dim*k)}
	for n, j := range f.Index {
		if j < 0 || int(j) >= f.Dim {
			return nil, fmt.Errorf("load model: bucket %d out of range", j)
		}
		for c := 0; c < k; c++ {
			m.weights[int(j)*k+c] = float64(f.Weights[n*k+c])
		}
	}
	return m, nil
}
