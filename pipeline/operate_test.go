package pipeline_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas"
	"prismflow/schemas/events"
)

func avroSetup(t *testing.T, topics ...string) ([]string, *schemas.Codec, *kgo.Client) {
	t.Helper()
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 2, topics...)
	srcl, err := sr.NewClient(sr.URLs(testenv.Registry(t, brokers)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return brokers, schemas.NewCodec(srcl), cl
}

func avroRecord(t *testing.T, codec *schemas.Codec, topic string, ev interface {
	events.Documented
}) *kgo.Record {
	t.Helper()
	v, err := codec.Encode(context.Background(), topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(ev.Doc().ID), Value: v,
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
}

func TestRepublishStartsANewRunOfTheChosenDocuments(t *testing.T) {
	brokers, codec, cl := avroSetup(t, "split-in")
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		produce(t, brokers, avroRecord(t, codec, "split-in", &events.TextExtracted{
			Meta:     events.Meta{Stage: "extract", Run: 1},
			Document: events.Document{ID: id, Tenant: "acme"}, PageCount: 1,
			Pages: []events.Page{{Number: 1, Text: "testo " + id, Method: events.MethodDigital, Confidence: 1}},
		}))
	}
	q := pipeline.ReplayQuery{Topics: []string{"split-in"}, Documents: []string{"a"}}

	dry, err := pipeline.Republish(ctx, cl, codec, q, true)
	if err != nil || len(dry) != 1 || dry[0].Run != 2 {
		t.Fatalf("dry run = %+v, %v; want document a as run 2", dry, err)
	}
	if _, err := pipeline.Republish(ctx, cl, codec, q, false); err != nil {
		t.Fatal(err)
	}
	second, err := pipeline.Republish(ctx, cl, codec, q, false)
	if err != nil || len(second) != 1 || second[0].Run != 3 {
		t.Fatalf("second replay = %+v, %v; want document a as run 3 (one above every earlier run)", second, err)
	}

	recs := consumeN(t, brokers, "split-in", 4, kgo.ReadCommitted())
	runs := map[string][]int32{}
	for _, r := range recs {
		var ev events.TextExtracted
		if err := codec.Decode(ctx, r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		runs[string(r.Key)] = append(runs[string(r.Key)], ev.Meta.Run)
		if ev.Meta.Run > 1 {
			if header(r, pipeline.HeaderReplay) == "" || header(r, "traceparent") == "" {
				t.Errorf("replayed record lacks the replay or trace header: %v", r.Headers)
			}
			if ev.Pages[0].Text != "testo a" {
				t.Errorf("replayed event changed beyond its run: %+v", ev)
			}
		}
	}
	slices.Sort(runs["a"])
	if !slices.Equal(runs["a"], []int32{1, 2, 3}) || !slices.Equal(runs["b"], []int32{1}) {
		t.Errorf("runs per document = %v, want a: 1,2,3 and b: 1", runs)
	}
}

func TestDeadLettersReadAndRedrive(t *testing.T) {
	brokers, codec, cl := avroSetup(t, "orig", "dlq")
	ctx := context.Background()
	original := avroRecord(t, codec, "orig", &events.DocumentReceived{Meta: events.Meta{Run: 1}, Document: events.Document{ID: "doc-1", Tenant: "acme"}})
	dl := &events.DeadLetter{
		Meta: events.Meta{Stage: "extract", Run: 1}, DocumentID: "doc-1", Tenant: "acme",
		Topic: "orig", Partition: 1, Offset: 7, Key: original.Key, Value: original.Value,
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", pipeline.HeaderAttempts: "3"},
		Error:   "extract: too many pages", Permanent: true, Attempts: 3,
	}
	v, err := codec.Encode(ctx, "dlq", dl)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, &kgo.Record{Topic: "dlq", Key: []byte("doc-1"), Value: v})

	got, err := pipeline.ReadDeadLetters(ctx, cl, codec, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DocumentID != "doc-1" || got[0].Meta.Stage != "extract" || !strings.Contains(got[0].ID, ":") {
		t.Fatalf("dead letters = %+v", got)
	}
	if err := pipeline.Redrive(ctx, cl, got[0]); err != nil {
		t.Fatal(err)
	}
	r := consumeN(t, brokers, "orig", 1, kgo.ReadCommitted())[0]
	if string(r.Key) != "doc-1" || string(r.Value) != string(original.Value) {
		t.Errorf("redriven record differs from the original")
	}
	if header(r, pipeline.HeaderAttempts) != "3" || header(r, pipeline.HeaderRedrive) != got[0].ID || header(r, "traceparent") == "" {
		t.Errorf("redriven headers = %v", r.Headers)
	}
}

func TestResetOffsetsRefusesARunningStage(t *testing.T) {
	brokers, codec, cl := avroSetup(t, "reset-in")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		produce(t, brokers, avroRecord(t, codec, "reset-in", &events.DocumentReceived{Meta: events.Meta{Run: 1}, Document: events.Document{ID: "d"}}))
	}
	adm := kadm.NewClient(cl)

	// A member in the group: the reset must refuse.
	member, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("prismflow-resetme"), kgo.ConsumeTopics("reset-in"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member to join", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		member.PollFetches(pctx)
		g, err := adm.DescribeGroups(ctx, "prismflow-resetme")
		return err == nil && len(g["prismflow-resetme"].Members) > 0
	})
	if _, err := pipeline.ResetOffsets(ctx, adm, "prismflow-resetme", []string{"reset-in"}, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "running members") {
		t.Errorf("reset of a running group: err = %v, want a refusal", err)
	}
	member.Close()

	offsets, err := pipeline.ResetOffsets(ctx, adm, "prismflow-resetme", []string{"reset-in"}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, "prismflow-resetme")
	if err != nil {
		t.Fatal(err)
	}
	offsets.Each(func(o kadm.Offset) {
		if c, ok := committed.Lookup(o.Topic, o.Partition); !ok || c.At != 0 {
			t.Errorf("%s[%d] committed at %v, want 0", o.Topic, o.Partition, c.At)
		}
	})
}
