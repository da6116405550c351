package pipeline_test

import (
	"context"
	"prismflow/connectors/blob"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas"
	"prismflow/schemas/events"
)

// TestAvroEndToEnd runs a transform and a sink with the real codec (Avro,
// Confluent framing, the embedded schema registry): outputs arrive once
// and whole, a large event travels claim-checked, and bytes that are not
// Avro are dead-lettered as bad records with their original bytes.
func TestAvroEndToEnd(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 2, "received", "extracted", "dead-letter")
	srcl, err := sr.NewClient(sr.URLs(testenv.Registry(t, brokers)))
	if err != nil {
		t.Fatal(err)
	}
	codec := schemas.NewCodec(srcl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	text := strings.Repeat("Polizza n. 123 — il rischio è descritto nella sezione seguente. ", 6000) // ~390 KB
	var recs []*kgo.Record
	for _, id := range []string{"a", "b", "c"} {
		ev := &events.DocumentReceived{
			Meta:       events.Meta{Run: 2},
			Document:   events.Document{ID: id, Tenant: "acme", Filename: id + ".pdf"},
			ReceivedAt: time.Now().UTC().Truncate(time.Millisecond),
		}
		v, err := codec.Encode(ctx, "received", ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "received", Key: []byte(id), Value: v})
	}
	recs = append(recs, &kgo.Record{Topic: "received", Key: []byte("junk"), Value: []byte("%PDF-1.7 not avro")})
	produce(t, brokers, recs...)

	cfg := testConfig(brokers)
	cfg.BadRecord = schemas.ErrBadRecord
	store := blob.NewMemory()
	got := make(chan events.TextExtracted, 3)
	rt := pipeline.New(cfg, codec, store, nil, nil)
	stop := runStages(t, rt,
		pipeline.Stage{Name: "extract", Version: "1", Output: "extracted", Concurrency: 2,
			Routes: []pipeline.Route{pipeline.Transform("received", func(_ context.Context, in events.DocumentReceived) (events.TextExtracted, error) {
				return events.TextExtracted{Document: in.Document, PageCount: 1, Language: "it",
					Pages: []events.Page{{Number: 1, Text: text, Method: events.MethodDigital, Confidence: 1}}}, nil
			})}},
		pipeline.Stage{Name: "persist",
			Routes: []pipeline.Route{pipeline.Sink("extracted", func(_ context.Context, e events.TextExtracted) error {
				got <- e
				return nil
			})}},
	)
	out := consumeN(t, brokers, "extracted", 3, kgo.ReadCommitted())
	dls := consumeN(t, brokers, "dead-letter", 1, kgo.ReadCommitted())
	seen := map[string]bool{}
	waitFor(t, "the sink to see 3 events", func() bool {
		select {
		case e := <-got:
			if e.Pages[0].Text != text || e.Pages[0].TextRef != "" {
				t.Errorf("%s: page text arrived with %d bytes, ref %q", e.Document.ID, len(e.Pages[0].Text), e.Pages[0].TextRef)
			}
			if e.Meta.Run != 2 || e.Meta.Stage != "extract" {
				t.Errorf("%s: meta %+v", e.Document.ID, e.Meta)
			}
			seen[e.Document.ID] = true
		default:
		}
		return len(seen) == 3
	})
	stop()

	for _, r := range out {
		if len(r.Value) > 4<<10 {
			t.Errorf("%s: %d byte record; the text should be claim-checked", r.Key, len(r.Value))
		}
	}
	var dl events.DeadLetter
	if err := codec.Decode(ctx, dls[0].Value, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.DocumentID != "junk" || string(dl.Value) != "%PDF-1.7 not avro" || !dl.Permanent || dl.Attempts != 1 || dl.Topic != "received" {
		t.Errorf("dead letter %+v", dl)
	}
}
