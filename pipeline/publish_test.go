package pipeline_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

func TestPublisherStartsTraceAndRun(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "in")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pub := pipeline.NewPublisher(cl, jsonCodec{}, "9.9.9")
	ev := events.DocumentReceived{Document: events.Document{ID: "doc-1", Tenant: "acme"}}
	if err := pub.Publish(context.Background(), "in", "ingest", &ev); err != nil {
		t.Fatal(err)
	}
	r := consumeN(t, brokers, "in", 1, kgo.ReadCommitted())[0]
	got := decode[events.DocumentReceived](t, r)
	if string(r.Key) != "doc-1" {
		t.Errorf("key = %q, want the document id", r.Key)
	}
	if got.Meta.Stage != "ingest" || got.Meta.StageVersion != "9.9.9" || got.Meta.Run != 1 || got.Meta.ProducedAt.IsZero() {
		t.Errorf("meta = %+v", got.Meta)
	}
	if tp := header(r, "traceparent"); tp == "" || tp != got.Meta.TraceParent {
		t.Errorf("traceparent header %q, meta %q: want the same new trace", tp, got.Meta.TraceParent)
	}
	if header(r, pipeline.HeaderStage) != "ingest" {
		t.Errorf("stage header = %q", header(r, pipeline.HeaderStage))
	}
}
