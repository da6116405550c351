package persist

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/schemas/events"
)

// The classify stage's two answers are stored per run and shown in the
// document view; a redelivered event leaves one row with the same values,
// and a run classified without an LLM shows no LLM usage.
func TestClassificationRoundTrip(t *testing.T) {
	s, dsn := openStore(t)
	p := &Persister{Store: s}
	ctx := context.Background()
	steps := pipelineEvents("doc-1", "acme", 1)
	run(t, p, steps[:4]...)
	doc := events.Document{ID: "doc-1", Tenant: "acme", Filename: "polizza doc-1.pdf"}
	withLLM := events.DocumentClassified{Meta: meta("classify", 1, 4*time.Minute), Document: doc, PageCount: 2,
		Category: "Flotta Auto", Confidence: 0.55, NeedsReview: true, Provider: "trained-logreg",
		Fields: []events.Field{}, Feedback: []events.FeedbackItem{},
		BuiltinCategory: "Flotta Auto", BuiltinConfidence: 0.55, LLMCategory: "Fabbricato", LLMConfidence: 0.97, Disagreement: true,
		LLM: &events.LLMUsage{Sections: 1, CachedSections: 1, InputTokens: 812, OutputTokens: 64, CostUSD: 0.00031, LatencyMS: 950}}
	for range 2 { // the second delivery is a redelivery
		if err := p.Classified(ctx, withLLM); err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	want := &ClassificationView{Provider: "trained-logreg", BuiltinCategory: "Flotta Auto", BuiltinConfidence: 0.55,
		LLMCategory: "Fabbricato", LLMConfidence: 0.97, Disagreement: true,
		LLM: &ClassificationLLMView{Answered: true, Cached: true, InputTokens: 812, OutputTokens: 64, CostUSD: 0.00031, LatencyMS: 950}}
	if !reflect.DeepEqual(v.Classification, want) {
		t.Errorf("classification = %+v (llm %+v), want %+v (llm %+v)", v.Classification, llmOf(v.Classification), want, want.LLM)
	}
	if !v.NeedsReview || v.Category != "Flotta Auto" {
		t.Errorf("document category %q review %v, want Flotta Auto needing review", v.Category, v.NeedsReview)
	}
	b, _ := json.Marshal(v)
	for _, key := range []string{`"builtin_category":"Flotta Auto"`, `"llm_category":"Fabbricato"`, `"disagreement":true`, `"input_tokens":812`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM classifications`).Scan(&n); err != nil || n != 1 {
		t.Errorf("classification rows = %d (err %v), want 1 after a redelivery", n, err)
	}

	// A replay classified without an LLM: its own row, no usage; the
	// first run's answers stay readable.
	builtinOnly := withLLM
	builtinOnly.Meta = meta("classify", 2, 2*time.Hour)
	builtinOnly.Confidence, builtinOnly.NeedsReview = 0.55, true
	builtinOnly.LLMCategory, builtinOnly.LLMConfidence, builtinOnly.Disagreement, builtinOnly.LLM = "", 0, false, nil
	if err := p.Classified(ctx, builtinOnly); err != nil {
		t.Fatal(err)
	}
	v2, err := s.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	want2 := &ClassificationView{Provider: "trained-logreg", BuiltinCategory: "Flotta Auto", BuiltinConfidence: 0.55}
	if v2.Run != 2 || !reflect.DeepEqual(v2.Classification, want2) {
		t.Errorf("run %d classification = %+v, want run 2 with %+v", v2.Run, v2.Classification, want2)
	}
	if b, _ := json.Marshal(v2); strings.Contains(string(b), "null") || strings.Contains(string(b), `"llm":`) {
		t.Errorf("JSON of a run without an LLM has null or llm: %s", b)
	}
	v1, err := s.DocumentRun(ctx, "acme", "doc-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v1.Classification, want) {
		t.Errorf("run 1 classification after the replay = %+v, want %+v", v1.Classification, want)
	}
}

func llmOf(c *ClassificationView) *ClassificationLLMView {
	if c == nil {
		return nil
	}
	return c.LLM
}
