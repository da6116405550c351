package schemas_test

import (
	"reflect"
	"testing"

	"prismflow/schemas/events"
)

// DocumentClassified gained the built-in and LLM answers with defaults:
// events written with them round-trip, and events written before they
// existed decode with the defaults (empty categories, no disagreement,
// LLM nil), overwriting whatever the target held.
func TestDocumentClassifiedLLMFields(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	in := &events.DocumentClassified{Meta: meta, Document: doc, PageCount: 2, Category: "Flotta Auto", Confidence: 0.91,
		NeedsReview: true, Provider: "openai/gpt-4o-mini", Feedback: feedback,
		Fields:          []events.Field{{Name: "targhe", Value: "AB123CD", Page: 1, SectionIndex: 0, Start: 3, End: 10}},
		BuiltinCategory: "Altro", BuiltinConfidence: 0.41, LLMCategory: "Flotta Auto", LLMConfidence: 0.91, Disagreement: true,
		LLM: &events.LLMUsage{Sections: 1, InputTokens: 900, OutputTokens: 60, CostUSD: 0.0002, LatencyMS: 800}}
	b, err := codec.Encode(ctx, "prismflow.document-classified.v1", in)
	if err != nil {
		t.Fatal(err)
	}
	var out events.DocumentClassified
	if err := codec.Decode(ctx, b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&out, in) {
		t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", out, in)
	}

	old := editSchema(t, "document_classified", func(root map[string]any) {
		for _, f := range []string{"builtin_category", "builtin_confidence", "llm_category", "llm_confidence", "disagreement", "llm"} {
			dropField(root, f)
		}
	})
	b = registerOld(t, cl, "classified-old-value", old, map[string]any{
		"meta": map[string]any{"stage": "classify", "stage_version": "0.1.0", "produced_at": produced, "traceparent": "", "run": int32(1)},
		"document": map[string]any{"id": "d1", "tenant": "t1", "filename": "a.pdf", "content_type": "application/pdf",
			"size_bytes": int64(10), "sha256": "00", "blob": "sha256/00", "source": "upload", "sender": "", "subject": "", "parent_id": ""},
		"page_count": int32(1), "category": "Fabbricato", "confidence": 0.8, "needs_review": false,
		"provider": "trained-logreg", "fields": []any{}, "feedback": []any{},
	})
	out = events.DocumentClassified{BuiltinCategory: "stale", BuiltinConfidence: 1, LLMCategory: "stale", LLMConfidence: 1,
		Disagreement: true, LLM: &events.LLMUsage{Sections: 9}}
	if err := codec.Decode(ctx, b, &out); err != nil {
		t.Fatalf("decode old record: %v", err)
	}
	if out.Category != "Fabbricato" || out.Provider != "trained-logreg" {
		t.Errorf("old record decoded to category %q, provider %q; want Fabbricato, trained-logreg", out.Category, out.Provider)
	}
	if out.BuiltinCategory != "" || out.BuiltinConfidence != 0 || out.LLMCategory != "" || out.LLMConfidence != 0 ||
		out.Disagreement || out.LLM != nil {
		t.Errorf("old record decoded without the defaults: builtin %q/%v, llm %q/%v, disagreement %v, usage %+v",
			out.BuiltinCategory, out.BuiltinConfidence, out.LLMCategory, out.LLMConfidence, out.Disagreement, out.LLM)
	}
}
