package pipeline_test

import (
	"prismflow/connectors/blob"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

func TestHandledRecordSpanContinuesTheRecordsTrace(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "in", "out", "dead-letter")
	const (
		inTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		inSpan  = "00f067aa0ba902b7"
	)
	produce(t, brokers,
		eventRecord(t, "in", "traced", events.TextExtracted{Document: events.Document{ID: "traced"}, PageCount: 1},
			kgo.RecordHeader{Key: "traceparent", Value: []byte("00-" + inTrace + "-" + inSpan + "-01")}),
		eventRecord(t, "in", "untraced", events.TextExtracted{Document: events.Document{ID: "untraced"}, PageCount: 2}),
	)

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	cfg := testConfig(brokers)
	cfg.TracerProvider = tp
	rt := pipeline.New(cfg, jsonCodec{}, blob.NewMemory(), nil, nil)
	stop := runStages(t, rt, pipeline.Stage{Name: "pass", Version: "v1", Output: "out",
		Routes: []pipeline.Route{pipeline.Transform("in", passThrough)}})
	out := consumeN(t, brokers, "out", 2, kgo.ReadCommitted())
	stop()

	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.Name == "pass process" {
			for _, a := range s.Attributes {
				if a.Key == "messaging.kafka.message.key" {
					spans[a.Value.AsString()] = s
				}
			}
		}
	}
	traced, ok := spans["traced"]
	switch {
	case !ok:
		t.Fatalf("no span for the traced record; spans: %v", exp.GetSpans())
	case traced.SpanContext.TraceID().String() != inTrace:
		t.Errorf("span trace id %s, want the record's %s", traced.SpanContext.TraceID(), inTrace)
	case traced.Parent.SpanID().String() != inSpan || !traced.Parent.IsRemote():
		t.Errorf("span parent %s (remote %v), want the record's span %s", traced.Parent.SpanID(), traced.Parent.IsRemote(), inSpan)
	}
	untraced, ok := spans["untraced"]
	if !ok || !untraced.SpanContext.IsValid() || untraced.Parent.IsValid() {
		t.Errorf("untraced record: span %+v, want a valid root span", untraced.SpanContext)
	}

	// Each output carries its handling span as parent for the next stage.
	for _, r := range out {
		s := spans[string(r.Key)]
		want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
		if got := header(r, "traceparent"); got != want {
			t.Errorf("output %s: traceparent %q, want the span's %q", r.Key, got, want)
		}
		if ev := decode[events.SectionsSplit](t, r); ev.Meta.TraceParent != header(r, "traceparent") {
			t.Errorf("output %s: meta traceparent %q, header %q", r.Key, ev.Meta.TraceParent, header(r, "traceparent"))
		}
	}
	if got := header(out[0], "traceparent") + header(out[1], "traceparent"); !strings.Contains(got, inTrace) {
		t.Errorf("no output continues trace %s: %s", inTrace, got)
	}
}
