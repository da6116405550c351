package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

func TestPublisherStartsTraceAndRun(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "in")
	pub, err := pipeline.NewPublisher(jsonCodec{}, "9.9.9", kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
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

// TestPublisherConcurrentCalls publishes from many goroutines at once,
// as concurrent uploads do, and checks that every call's record is in
// the topic exactly once, keyed by its document id, and that a call
// whose context ended before its record was sent fails without writing
// it.
func TestPublisherConcurrentCalls(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 6, "in")
	pub, err := pipeline.NewPublisher(jsonCodec{}, "1", kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	ev := events.DocumentReceived{Document: events.Document{ID: "never", Tenant: "acme"}}
	if err := pub.Publish(gone, "in", "ingest", &ev); !errors.Is(err, context.Canceled) {
		t.Errorf("publish with a cancelled context: %v, want context.Canceled", err)
	}

	const callers, each = 20, 25
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				ev := events.DocumentReceived{Document: events.Document{ID: fmt.Sprintf("doc-%d-%d", c, i), Tenant: "acme"}}
				if err := pub.Publish(context.Background(), "in", "ingest", &ev); err != nil {
					t.Errorf("publish %s: %v", ev.Document.ID, err)
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	partitions := map[int32]bool{}
	for _, r := range consumeN(t, brokers, "in", callers*each, kgo.ReadCommitted()) {
		got := decode[events.DocumentReceived](t, r)
		if string(r.Key) != got.Document.ID {
			t.Errorf("record of %s has key %q", got.Document.ID, r.Key)
		}
		seen[got.Document.ID]++
		partitions[r.Partition] = true
	}
	for c := range callers {
		for i := range each {
			if id := fmt.Sprintf("doc-%d-%d", c, i); seen[id] != 1 {
				t.Errorf("%s written %d times, want once", id, seen[id])
			}
		}
	}
	if seen["never"] != 0 {
		t.Error("the record of the cancelled call was written")
	}
	if len(partitions) < 2 {
		t.Errorf("%d records all on %d partition(s): sticky spreading should still move on", callers*each, len(partitions))
	}

	pub.Close()
	if err := pub.Publish(context.Background(), "in", "ingest", &ev); err == nil {
		t.Error("publish after Close succeeded")
	}
}

// BenchmarkPublish measures what an uploader waits for once its file is
// stored: 50 concurrent callers each publishing a document's first event
// and waiting for the embedded broker (which syncs every append to disk)
// to acknowledge it, into a topic of 6 partitions. It compares the
// Publisher (one produce request at a time, sticky partitions) with
// franz-go's ProduceSync on a client without linger (up to five requests
// in flight, partitions by the key's hash), the way the publisher worked
// before; compare the publishes/s and latency figures of one run.
func BenchmarkPublish(b *testing.B) {
	const clients, each = 50, 100
	for _, mode := range []string{"produce-sync", "publisher"} {
		b.Run(mode, func(b *testing.B) {
			brokers := testenv.Kafka(b)
			admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				b.Fatal(err)
			}
			defer admin.Close()
			if _, err := kadm.NewClient(admin).CreateTopic(context.Background(), 6, 1, nil, "received"); err != nil {
				b.Fatal(err)
			}
			var publish func(events.DocumentReceived) error
			switch mode {
			case "produce-sync":
				cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				publish = func(ev events.DocumentReceived) error {
					value, err := jsonCodec{}.Encode(context.Background(), "received", &ev)
					if err != nil {
						return err
					}
					rec := &kgo.Record{Topic: "received", Key: []byte(ev.Document.ID), Value: value}
					return cl.ProduceSync(context.Background(), rec).FirstErr()
				}
			case "publisher":
				pub, err := pipeline.NewPublisher(jsonCodec{}, "bench", kgo.SeedBrokers(brokers...))
				if err != nil {
					b.Fatal(err)
				}
				defer pub.Close()
				publish = func(ev events.DocumentReceived) error {
					return pub.Publish(context.Background(), "received", "ingest", &ev)
				}
			}
			var (
				mu  sync.Mutex
				lat []time.Duration
			)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for c := range clients {
					wg.Go(func() {
						for i := range each {
							ev := events.DocumentReceived{Document: events.Document{ID: fmt.Sprintf("doc-%d-%d", c, i), Tenant: "acme"}}
							t0 := time.Now()
							if err := publish(ev); err != nil {
								b.Error(err)
								return
							}
							mu.Lock()
							lat = append(lat, time.Since(t0))
							mu.Unlock()
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "publishes/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
