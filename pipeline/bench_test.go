package pipeline_test

import (
	"context"
	"fmt"
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

// BenchmarkStageOverhead measures what the runtime costs over plain
// franz-go: the same Avro records go from one topic to another either
// through a pass-through stage (decode, handle, encode, produce and
// commit in transactions, per-key lanes) or through a raw franz-go
// consume-and-produce loop of the same bytes with no transactions.
// Compare the two events/s figures of one run (the ratio is the
// overhead).
func BenchmarkStageOverhead(b *testing.B) {
	const records = 5000
	for _, mode := range []string{"raw-franz-go", "pipeline-stage", "pipeline-stage-batch-500"} {
		b.Run(mode, func(b *testing.B) {
			benchBatch = 100
			if mode == "pipeline-stage-batch-500" {
				mode, benchBatch = "pipeline-stage", 500
			}
			for range b.N {
				b.StopTimer()
				brokers, in, out := benchTopics(b, records)
				b.StartTimer()
				start := time.Now()
				stop := startMover(b, mode, brokers, in, out)
				waitRecords(b, brokers, out, records)
				elapsed := time.Since(start)
				b.StopTimer()
				stop()
				b.ReportMetric(records/elapsed.Seconds(), "events/s")
				b.StartTimer()
			}
		})
	}
}

var benchCodec *schemas.Codec

// benchBatch is the stage's batch size (records per transaction); the
// runtime's default is 100.
var benchBatch = 100

// benchTopics fills a fresh topic with Avro DocumentReceived records.
func benchTopics(b *testing.B, n int) (brokers []string, in, out string) {
	b.Helper()
	brokers = testenv.Kafka(b)
	in, out = "bench-in", "bench-out"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), 6, in, out, "dead-letter"); err != nil {
		b.Fatal(err)
	}
	srcl, err := sr.NewClient(sr.URLs(testenv.Registry(b, brokers)))
	if err != nil {
		b.Fatal(err)
	}
	benchCodec = schemas.NewCodec(srcl)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		id := fmt.Sprintf("doc-%d", i%500)
		v, err := benchCodec.Encode(ctx, in, &events.DocumentReceived{Meta: events.Meta{Run: 1},
			Document:   events.Document{ID: id, Tenant: "acme", Filename: "polizza.pdf", ContentType: "application/pdf", Blob: "sha256/ab/abcd"},
			ReceivedAt: time.Now().UTC()})
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: in, Key: []byte(id), Value: v}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return brokers, in, out
}

func startMover(b *testing.B, mode string, brokers []string, in, out string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	switch mode {
	case "raw-franz-go":
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("bench-raw"), kgo.ConsumeTopics(in),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic(out))
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer close(done)
			defer cl.Close()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, nil)
				})
			}
		}()
	case "pipeline-stage":
		cfg := pipeline.Config{Brokers: brokers, DeadLetterTopic: "dead-letter", BadRecord: schemas.ErrBadRecord, BatchSize: benchBatch}
		rt := pipeline.New(cfg, benchCodec, nil, nil, nil)
		stage := pipeline.Stage{Name: "bench", Version: "1", Output: out,
			Routes: []pipeline.Route{pipeline.Transform(in, func(_ context.Context, e events.DocumentReceived) (events.DocumentReceived, error) {
				return e, nil
			})}}
		go func() {
			defer close(done)
			_ = rt.Run(ctx, stage)
		}()
	}
	return func() {
		cancel()
		<-done
	}
}

// waitRecords reads out (read_committed) until it has seen n records.
func waitRecords(b *testing.B, brokers []string, out string, n int) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("saw %d of %d records", seen, n)
		}
		seen += len(fs.Records())
	}
}
