package classify

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"prismflow/schemas/events"
)

// DefaultReviewThreshold is the confidence below which a classification
// is flagged for review when Classifier.ReviewThreshold is zero.
const DefaultReviewThreshold = 0.6

// defaultSelf names the broker: its own name and addresses appear in
// every request ("Spett.le Navigli Broker S.r.l.") and are never the
// contraente's.
func defaultSelf() []string { return []string{"navigli broker", "navigli-broker"} }

// Classifier assigns a category and extracts the key fields of a
// document. The zero value is ready to use with the embedded taxonomy.
type Classifier struct {
	// Taxonomy lists the allowed categories; the last one is the
	// fallback. Default: the names in the embedded taxonomy.json.
	Taxonomy []string
	// ReviewThreshold: below this confidence NeedsReview is set.
	// Default DefaultReviewThreshold.
	ReviewThreshold float64
	// Model scores categories; default the trained model (Trained) with
	// the taxonomy's keyword cues for categories it has no examples of.
	Model Model
	// Trained is a model from LoadModel (prismflow train); nil means the
	// built-in one, trained at first use from the embedded examples.
	// Used only when Model is nil.
	Trained *TrainedModel
	// TaxonomyData is a broker's own taxonomy file, JSON or YAML (see
	// TaxonomyFile); empty means the embedded one. Used only when Model
	// is nil.
	TaxonomyData []byte
	// Self lists lowercase names of the broker, never taken as the
	// contraente. Default: Navigli Broker.
	Self []string
	// Logger receives one debug line per document; nil means slog.Default.
	Logger *slog.Logger

	once     sync.Once
	model    Model
	taxonomy []string
	initErr  error
	llm      *llmSecond // nil: the built-in model only (SetLLM)
}

// New builds a Classifier from a taxonomy file (JSON or YAML; empty path:
// the embedded taxonomy) and a review threshold (0: the default) with the
// built-in trained model. It reads and compiles the taxonomy and trains
// the model at once, so a bad file fails at start.
func New(taxonomyPath string, reviewThreshold float64) (*Classifier, error) {
	return Open(taxonomyPath, "", reviewThreshold)
}

// Open is New with a model file written by `prismflow train` (empty
// path: the built-in model).
func Open(taxonomyPath, modelPath string, reviewThreshold float64) (*Classifier, error) {
	c := &Classifier{ReviewThreshold: reviewThreshold}
	if modelPath != "" {
		f, err := os.Open(modelPath)
		if err != nil {
			return nil, fmt.Errorf("classify: open model: %w", err)
		}
		m, err := LoadModel(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("classify: model %s: %w", modelPath, err)
		}
		c.Trained = m
	}
	if taxonomyPath != "" {
		data, err := os.ReadFile(taxonomyPath)
		if err != nil {
			return nil, fmt.Errorf("classify: read taxonomy: %w", err)
		}
		c.TaxonomyData = data
	}
	c.once.Do(c.init)
	if c.initErr != nil {
		return nil, fmt.Errorf("classify: taxonomy %s: %w", taxonomyPath, c.initErr)
	}
	return c, nil
}

// Categories returns the categories the classifier assigns, the fallback
// last: what render.NewWithTemplates must have templates for.
func (c *Classifier) Categories() ([]string, error) {
	c.once.Do(c.init)
	if c.initErr != nil {
		return nil, c.initErr
	}
	return append([]string(nil), c.taxonomy...), nil
}

func (c *Classifier) init() {
	c.model, c.taxonomy = c.Model, c.Taxonomy
	if c.model == nil {
		data := c.TaxonomyData
		if len(data) == 0 {
			data = defaultTaxonomy
		}
		tf, err := ParseTaxonomy(data)
		if err != nil {
			c.initErr = err
			return
		}
		km, err := NewKeywordModel(tf)
		if err != nil {
			c.initErr = err
			return
		}
		if len(c.taxonomy) == 0 {
			c.taxonomy = tf.Ordered()
		}
		if c.model, err = modelFor(c.Trained, km, c.taxonomy); err != nil {
			c.initErr = err
			return
		}
	}
	if len(c.taxonomy) == 0 {
		c.initErr = fmt.Errorf("classify: a custom Model needs an explicit Taxonomy")
	}
}

// Handle classifies in and extracts its fields. The feedback of the
// analyze stage is carried through unchanged.
//
// With an LLM set (SetLLM, UseLLM) the built-in model still runs and
// both answers are recorded (BuiltinCategory, LLMCategory, their
// confidences, LLM usage). When they agree, the category stands with the
// higher confidence. When they disagree, Disagreement and NeedsReview are
// set and the LLM's category is chosen only if its confidence is at or
// above the review threshold while the built-in one's is below it;
// otherwise the built-in category stands. Fields the LLM reports are
// added where the built-in extraction found none, only after the same
// validators (check digits, plates, provinces, amounts, dates) pass and
// the value is found in the document. Invalid LLM output or an open
// circuit breaker leaves the built-in result, with Provider
// "<model> (fallback from <llm>)"; other LLM errors are returned, so the
// runtime retries the document.
func (c *Classifier) Handle(ctx context.Context, in events.SectionsAnalyzed) (events.DocumentClassified, error) {
	c.once.Do(c.init)
	if c.initErr != nil {
		return events.DocumentClassified{}, fmt.Errorf("classify: %w", c.initErr)
	}
	if err := ctx.Err(); err != nil {
		return events.DocumentClassified{}, err
	}
	text := documentText(in.Document, in.Sections)
	category, confidence, scores := c.model.Predict(text)
	fallback := c.taxonomy[len(c.taxonomy)-1]
	allowed := false
	for _, t := range c.taxonomy {
		allowed = allowed || t == category
	}
	if !allowed {
		// The model knows a category the broker does not use: file it
		// under the fallback with the evidence it had, and ask a person.
		category, confidence = fallback, scores[fallback]
	}
	threshold := c.ReviewThreshold
	if threshold == 0 {
		threshold = DefaultReviewThreshold
	}
	self := c.Self
	if self == nil {
		self = defaultSelf()
	}
	builtin, builtinConf := category, confidence
	needsReview := confidence < threshold || !allowed
	provider := modelName(c.model)
	var second secondOpinion
	if c.llm != nil {
		var err error
		if second, err = c.llm.ask(ctx, in, text, c.taxonomy, self); err != nil {
			return events.DocumentClassified{}, err
		}
		switch {
		case !second.ok:
			provider = fmt.Sprintf("%s (fallback from %s)", provider, second.provider)
		default:
			var fromLLM, disagree bool
			category, confidence, fromLLM, disagree = decide(builtin, builtinConf, second.answer.Category, *second.answer.Confidence, threshold)
			switch {
			case disagree:
				needsReview = true
				if fromLLM {
					provider = second.provider
				}
			default:
				provider = second.provider + ", " + provider
				needsReview = confidence < threshold || !allowed
			}
		}
	}
	x := &extractor{doc: in.Document, secs: in.Sections, self: self, category: category}
	out := events.DocumentClassified{
		Document:          in.Document,
		PageCount:         in.PageCount,
		Category:          category,
		Confidence:        confidence,
		NeedsReview:       needsReview,
		Provider:          provider,
		Fields:            x.extract(),
		Feedback:          in.Feedback,
		BuiltinCategory:   builtin,
		BuiltinConfidence: builtinConf,
	}
	if c.llm != nil {
		out.LLM = &second.usage
		if second.ok {
			out.LLMCategory, out.LLMConfidence = second.answer.Category, *second.answer.Confidence
			out.Disagreement = out.LLMCategory != builtin
			out.Fields = x.mergeLLMFields(out.Fields, second.answer.Fields)
		}
	}
	if out.Fields == nil {
		out.Fields = []events.Field{}
	}
	if out.Feedback == nil {
		out.Feedback = []events.FeedbackItem{}
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if logger.Enabled(ctx, slog.LevelDebug) {
		attrs := []any{"document", in.Document.ID, "category", category, "confidence", confidence,
			"needs_review", out.NeedsReview, "fields", len(out.Fields), "builtin", builtin, "llm", out.LLMCategory}
		switch m := c.model.(type) {
		case *KeywordModel:
			attrs = append(attrs, "cues", m.Explain(text, category))
		case *hybridModel:
			attrs = append(attrs, "cues", m.keywords.Explain(text, category))
		}
		logger.DebugContext(ctx, "classified", attrs...)
	}
	return out, nil
}

// documentText is what the model reads: the subject (often the clearest
// statement of the request) and every section.
func documentText(doc events.Document, secs []events.Section) string {
	var b strings.Builder
	b.WriteString(doc.Subject)
	for _, s := range secs {
		b.WriteString("\n\n")
		b.WriteString(s.Title)
		b.WriteString("\n")
		b.WriteString(s.Text)
	}
	return b.String()
}

func modelName(m Model) string {
	if n, ok := m.(interface{ Name() string }); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", m)
}

// DocumentText is the text the model reads for in: what `prismflow
// train` must learn from so that training and classification agree.
func DocumentText(in events.SectionsAnalyzed) string { return documentText(in.Document, in.Sections) }
