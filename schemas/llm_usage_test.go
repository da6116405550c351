package schemas_test

import (
	"reflect"
	"testing"

	"prismflow/schemas/events"
)

// SectionsAnalyzed.llm was added with a null default: events written
// with it round-trip, and events written before it existed decode with
// LLM nil.
func TestSectionsAnalyzedLLMUsage(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	in := &events.SectionsAnalyzed{Meta: meta, Document: doc, PageCount: 4, Language: "it", Sections: sections,
		Provider: "openai/gpt-4o-mini, rules (fallback from openai/gpt-4o-mini)", Feedback: feedback,
		LLM: &events.LLMUsage{Sections: 3, CachedSections: 1, FallbackSections: 1, InputTokens: 1234, OutputTokens: 321,
			CostUSD: 0.00042, LatencyMS: 2500}}
	b, err := codec.Encode(ctx, "prismflow.sections-analyzed.v1", in)
	if err != nil {
		t.Fatal(err)
	}
	var out events.SectionsAnalyzed
	if err := codec.Decode(ctx, b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&out, in) {
		t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", out, in)
	}

	old := editSchema(t, "sections_analyzed", func(root map[string]any) { dropField(root, "llm") })
	b = registerOld(t, cl, "analyzed-old-value", old, map[string]any{
		"meta": map[string]any{"stage": "analyze", "stage_version": "0.1.0", "produced_at": produced, "traceparent": "", "run": int32(1)},
		"document": map[string]any{"id": "d1", "tenant": "t1", "filename": "a.pdf", "content_type": "application/pdf",
			"size_bytes": int64(10), "sha256": "00", "blob": "sha256/00", "source": "upload", "sender": "", "subject": "", "parent_id": ""},
		"page_count": int32(1), "language": "it", "sections": []any{}, "provider": "rules", "feedback": []any{},
	})
	out = events.SectionsAnalyzed{LLM: &events.LLMUsage{Sections: 9}}
	if err := codec.Decode(ctx, b, &out); err != nil {
		t.Fatalf("decode old record: %v", err)
	}
	if out.LLM != nil || out.Provider != "rules" {
		t.Errorf("old record decoded to LLM %+v, provider %q; want nil, rules", out.LLM, out.Provider)
	}
}
