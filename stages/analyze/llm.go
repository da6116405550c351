package analyze

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"prismflow/pipeline/config"
	"prismflow/schemas/events"
	"prismflow/stages/internal/llm"
)

//go:embed prompts/feedback.tmpl prompts/feedback.schema.json
var prompts embed.FS

// Report is what a Reporter says about one section: the items, who
// really wrote them and what it cost.
type Report struct {
	Items []events.FeedbackItem
	// Provider that wrote the items, e.g. "openai/gpt-4o-mini" or
	// "rules (fallback from openai/gpt-4o-mini)".
	Provider     string
	InputTokens  int64
	OutputTokens int64
	CostUSD      float64
	Latency      time.Duration
	Cached       bool
	Fallback     bool // the fallback provider wrote Items
}

// Reporter is a Provider that can say who answered for a section; the
// Analyzer uses it to mark documents a fallback provider analyzed.
type Reporter interface {
	Provider
	AnalyzeReport(ctx context.Context, req Request) (Report, error)
}

// LLM asks a language model for feedback and falls back to another
// provider (rules) when the model's answer stays invalid or the provider
// is down (its circuit breaker is open). Other errors (a provider still
// failing after retries, before its breaker opens) are returned, so the
// runtime retries the document rather than silently lowering its quality.
type LLM struct {
	Client   llm.Completer
	Fallback Provider
	Now      func() time.Time // nil: time.Now
	Log      *slog.Logger

	prompt *llm.Prompt
	schema json.RawMessage
}

// NewLLM returns the LLM provider over c with fallback for bad answers
// and outages.
func NewLLM(c llm.Completer, fallback Provider, log *slog.Logger) (*LLM, error) {
	if c == nil || fallback == nil {
		return nil, errors.New("analyze: LLM provider needs a client and a fallback")
	}
	p, err := llm.LoadPrompt(prompts, "prompts/feedback.tmpl")
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	schema, err := prompts.ReadFile("prompts/feedback.schema.json")
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LLM{Client: c, Fallback: fallback, Log: log, prompt: p, schema: schema}, nil
}

// OpenLLM builds the LLM provider named in provider (openai, bedrock)
// from the configuration, with the rules provider as fallback; pool (may
// be nil) holds the response cache, reg (may be nil) takes the metrics.
func OpenLLM(ctx context.Context, provider string, c config.LLM, pool *pgxpool.Pool, reg prometheus.Registerer, log *slog.Logger) (*LLM, error) {
	client, err := llm.Open(ctx, provider, c, pool, llm.NewMetrics(reg), log)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return NewLLM(client, NewRules(nil), log)
}

// Name implements Provider.
func (p *LLM) Name() string { return p.Client.Name() + "/" + p.Client.Model() }

// Analyze implements Provider.
func (p *LLM) Analyze(ctx context.Context, req Request) ([]events.FeedbackItem, error) {
	r, err := p.AnalyzeReport(ctx, req)
	return r.Items, err
}

// llmItem is one item of the model's answer (prompts/feedback.schema.json).
type llmItem struct {
	Type       string `json:"type"`
	Severity   string `json:"severity"`
	Message    string `json:"message"`
	Suggestion string `json:"suggestion"`
	Quote      string `json:"quote"`
}

type llmAnswer struct {
	Items *[]llmItem `json:"items"`
}

// decodeAnswer is the answer's validation: the schema's rules checked on
// Go types (unknown fields refused), with errors phrased for the model.
func decodeAnswer(b []byte) ([]llmItem, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a llmAnswer
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("does not match the schema: %v", err)
	}
	if dec.More() {
		return nil, errors.New("extra data after the JSON object")
	}
	if a.Items == nil {
		return nil, errors.New(`missing required property "items"`)
	}
	for i, it := range *a.Items {
		switch {
		case it.Type == "":
			return nil, fmt.Errorf("items[%d]: empty \"type\"", i)
		case it.Severity != "low" && it.Severity != "medium" && it.Severity != "high":
			return nil, fmt.Errorf("items[%d]: \"severity\" must be low, medium or high, got %q", i, it.Severity)
		case it.Message == "":
			return nil, fmt.Errorf("items[%d]: empty \"message\"", i)
		case it.Quote == "":
			return nil, fmt.Errorf("items[%d]: empty \"quote\"", i)
		}
	}
	return *a.Items, nil
}

// AnalyzeReport implements Reporter.
func (p *LLM) AnalyzeReport(ctx context.Context, req Request) (Report, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	lang := "it"
	if req.Language == "en" {
		lang = "en"
	}
	system, user, err := p.prompt.Render(map[string]any{
		"Language": lang, "Today": now().Format("2006-01-02"),
		"Filename": req.Document.Filename, "Subject": req.Document.Subject,
		"Index": req.Section.Index, "Title": req.Section.Title, "Text": req.Section.Text,
	})
	if err != nil {
		return Report{}, fmt.Errorf("analyze: %w", err)
	}
	resp, err := p.Client.Complete(ctx, llm.Request{
		PromptVersion: p.prompt.Version, System: system, User: user,
		SchemaName: "feedback", Schema: p.schema,
		Validate: func(b []byte) error { _, err := decodeAnswer(b); return err },
	})
	if errors.Is(err, llm.ErrInvalidOutput) || errors.Is(err, llm.ErrUnavailable) {
		p.Log.Warn("analyze: LLM failed, using fallback", "provider", p.Name(), "fallback", p.Fallback.Name(),
			"document", req.Document.ID, "section", req.Section.Index, "err", err)
		items, ferr := p.Fallback.Analyze(ctx, req)
		if ferr != nil {
			return Report{}, fmt.Errorf("fallback %s after %w: %w", p.Fallback.Name(), err, ferr)
		}
		return Report{Items: items, Provider: fmt.Sprintf("%s (fallback from %s)", p.Fallback.Name(), p.Name()), Fallback: true,
			InputTokens: resp.InputTokens, OutputTokens: resp.OutputTokens, CostUSD: resp.CostUSD, Latency: resp.Latency}, nil
	}
	if err != nil {
		return Report{}, err
	}
	answer, err := decodeAnswer([]byte(resp.Text))
	if err != nil { // validated already; a cache entry from a looser past
		return Report{}, fmt.Errorf("analyze: cached answer: %w", err)
	}
	items := make([]events.FeedbackItem, 0, len(answer))
	for _, it := range answer {
		items = append(items, events.FeedbackItem{Type: it.Type, Severity: events.Severity(it.Severity),
			Message: it.Message, Suggestion: it.Suggestion, Quote: it.Quote})
	}
	return Report{Items: items, Provider: p.Name(), InputTokens: resp.InputTokens, OutputTokens: resp.OutputTokens,
		CostUSD: resp.CostUSD, Latency: resp.Latency, Cached: resp.Cached}, nil
}
