package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

// TestShutdownFinishesBatchInHand cancels Run while a handler is in the
// middle of a record: the handler must be allowed to finish, the batch
// must commit, Run must return nil, and a new run must not see the batch
// again.
func TestShutdownFinishesBatchInHand(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "in", "out", "dead-letter")
	const n = 5
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprint("doc-", i)
		recs = append(recs, eventRecord(t, "in", id, events.TextExtracted{Document: events.Document{ID: id}, PageCount: int32(i)}))
	}
	produce(t, brokers, recs...)

	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	stage := pipeline.Stage{Name: "slow", Output: "out", Concurrency: 1,
		Routes: []pipeline.Route{pipeline.Transform("in", func(ctx context.Context, in events.TextExtracted) (events.SectionsSplit, error) {
			calls.Add(1)
			if in.PageCount == 2 {
				close(entered)
				<-release
				if ctx.Err() != nil {
					return events.SectionsSplit{}, fmt.Errorf("handler context cancelled at shutdown: %w", ctx.Err())
				}
			}
			return passThrough(ctx, in)
		})}}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil).Run(ctx, stage) }()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("handler never reached record 2")
	}
	cancel()
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	consumeN(t, brokers, "out", n, kgo.ReadCommitted())
	if c := calls.Load(); c != n {
		t.Fatalf("%d handler calls before restart, want %d", c, n)
	}

	// A new run starts after the committed batch: nothing to do.
	produce(t, brokers, eventRecord(t, "in", "doc-last", events.TextExtracted{Document: events.Document{ID: "doc-last"}, PageCount: n}))
	stop := runStages(t, pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil), stage)
	consumeN(t, brokers, "out", n+1, kgo.ReadCommitted())
	stop()
	if c := calls.Load(); c != n+1 {
		t.Errorf("%d handler calls in all, want %d: the restart handled committed records again", c, n+1)
	}
}
