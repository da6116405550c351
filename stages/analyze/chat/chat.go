package chat

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"prismflow/pipeline/config"
	"prismflow/stages/internal/llm"
)

// Section is one titled part of the document the question is about, as
// the split stage produced it.
type Section struct {
	Index     int32
	Title     string
	Text      string
	PageStart int32
	PageEnd   int32
}

// Turn is an earlier question or answer about the same document.
type Turn struct {
	Role string // "question" or "answer"
	Text string
}

// Question is what a reviewer asks about one document.
type Question struct {
	Document string
	// Language is the reviewer's, "it" (default) or "en". The answer's
	// own words are in the language the question is written in, and in
	// this one when the question's words do not tell.
	Language string
	Text     string
	Sections []Section
	History  []Turn // oldest first
}

// Citation points at the words of a section that support an answer.
type Citation struct {
	Section int32  // Section.Index
	Quote   string // an exact span of that section's Text; "" cites the whole section
}

// Answer is a complete answer.
type Answer struct {
	// Text is what was emitted, except that markers naming no section
	// are removed from an LLM's answer. [S<n>] in it cites the section of
	// Index n.
	Text      string
	Citations []Citation
	Grounding string // GroundingLLM or GroundingRetrieval
	// Provider wrote Text: rules, openai or bedrock. An LLM answerer whose
	// provider failed answers by retrieval: Provider "rules", and the
	// text says the model was unavailable.
	Provider string
	Model    string // the model that wrote Text; "" for retrieval
}

// Grounding says how an answer was produced.
const (
	// GroundingLLM: a language model wrote the answer from the sections.
	GroundingLLM = "llm"
	// GroundingRetrieval: the answer quotes the best-matching passages,
	// with no language model involved.
	GroundingRetrieval = "retrieval"
)

// Answerer answers questions about a document. The answerers of this
// package are safe for concurrent use.
type Answerer interface {
	// Answer streams the answer's text through emit as it is produced
	// (emit's error stops it) and returns the whole answer.
	Answer(ctx context.Context, q Question, emit func(delta string) error) (Answer, error)
}

// Open returns the answerer of provider (rules, openai, bedrock) with the
// c settings; reg (may be nil) takes the llm metrics. pool is not used:
// chat answers are not cached (a question asked again is usually asked
// because the first answer did not help), but Open takes what every
// opener of an LLM provider takes, so that callers wire all of them alike.
func Open(ctx context.Context, provider string, c config.LLM, pool *pgxpool.Pool, reg prometheus.Registerer, log *slog.Logger) (Answerer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retrieval, err := NewRetrieval()
	if err != nil {
		return nil, err
	}
	switch provider {
	case "", "rules":
		return retrieval, nil
	case "openai", "bedrock":
		client, err := llm.Open(ctx, provider, c, nil, llm.NewMetrics(reg), log)
		if err != nil {
			return nil, fmt.Errorf("chat: %w", err)
		}
		return NewLLM(client, retrieval, log)
	}
	return nil, fmt.Errorf("chat: unknown provider %q (providers: rules, openai, bedrock)", provider)
}
