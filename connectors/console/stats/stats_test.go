package stats_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/connectors/blob"
	"prismflow/connectors/console/stats"
	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
	"prismflow/schemas/events"
)

const wait = 90 * time.Second

// TestCollect runs a real split stage (consumer group, transactional
// commits, dead letters) on kfake and checks each figure of its row.
func TestCollect(t *testing.T) {
	brokers := testenv.Kafka(t)
	srcl, err := sr.NewClient(sr.URLs(testenv.Registry(t, brokers)))
	if err != nil {
		t.Fatal(err)
	}
	codec := schemas.NewCodec(srcl)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*wait)
	defer cancel()
	const partitions = 2
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), partitions, topology.Topics...); err != nil {
		t.Fatal(err)
	}
	produce := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			ev := &events.TextExtracted{Meta: events.Meta{Stage: "extract", StageVersion: "test", ProducedAt: time.Now(), Run: 1},
				Document: events.Document{ID: id, Tenant: "acme", Filename: id + ".pdf"}, PageCount: 1}
			v, err := codec.Encode(ctx, topology.TextExtracted, ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topology.TextExtracted, Key: []byte(id), Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The split stage: "bad-" documents are bad input, "slow" waits for
	// the test.
	release := make(chan struct{})
	split := func(ctx context.Context, in events.TextExtracted) (events.SectionsSplit, error) {
		switch {
		case strings.HasPrefix(in.Document.ID, "bad-"):
			return events.SectionsSplit{}, pipeline.Permanent(errors.New("no text to split"))
		case in.Document.ID == "slow":
			select {
			case <-release:
			case <-ctx.Done():
				return events.SectionsSplit{}, ctx.Err()
			}
		}
		return events.SectionsSplit{Document: in.Document, PageCount: in.PageCount}, nil
	}
	reg := prometheus.NewRegistry()
	rt := pipeline.New(pipeline.Config{
		Brokers: brokers, DeadLetterTopic: topology.DeadLetter, BadRecord: schemas.ErrBadRecord,
		Retry: pipeline.Retry{Attempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond},
	}, codec, blob.NewMemory(), slog.New(slog.DiscardHandler), reg)
	runCtx, stopStage := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- rt.Run(runCtx, pipeline.Stage{Name: "split", Version: "test", Output: topology.SectionsSplit,
			Routes: []pipeline.Route{pipeline.Transform(topology.TextExtracted, split)}})
	}()
	defer func() {
		stopStage()
		if err := <-done; err != nil {
			t.Errorf("stage: %v", err)
		}
	}()

	c := stats.New(cl, reg, stats.WithLogger(slog.New(slog.DiscardHandler)))
	defer c.Close()
	row := func() (split, analyze stats.StageStats) {
		t.Helper()
		all, err := c.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(topology.Names) {
			t.Fatalf("%d rows, want one per stage (%d)", len(all), len(topology.Names))
		}
		for i, s := range all {
			if s.Stage != topology.Names[i] {
				t.Fatalf("row %d is %s, want %s: rows in stage order", i, s.Stage, topology.Names[i])
			}
		}
		return all[2], all[3]
	}
	eventually := func(what string, cond func(split, analyze stats.StageStats) bool) (stats.StageStats, stats.StageStats) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			s, a := row()
			if cond(s, a) {
				return s, a
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; split %+v, analyze %+v", what, s, a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Ten documents and two bad ones, all handled: no lag (the test
	// writes the input without transactions, so no markers either), the
	// bad ones counted as dead letters.
	produce("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "bad-1", "bad-2")
	s, a := eventually("the first documents handled and dead-lettered", func(s, _ stats.StageStats) bool {
		return s.DeadLetters == 2 && s.Lag == 0 && s.State == "Stable"
	})
	if s.Members != 1 || s.InFlight != 0 {
		t.Errorf("split %+v, want 1 member and nothing in flight", s)
	}
	if a != (stats.StageStats{Stage: "analyze"}) {
		t.Errorf("analyze never ran but shows %+v", a)
	}

	// Throughput: records committed since the previous sample.
	produce("b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10")
	eventually("a throughput", func(s, _ stats.StageStats) bool { return s.PerSecond > 0 })
	// Once everything is committed and a sample interval has passed
	// without more, the rate falls back to zero.
	eventually("the rate to fall to zero at rest", func(s, _ stats.StageStats) bool { return s.PerSecond == 0 && s.Lag == 0 })

	// A record being handled is in flight and holds up the group's
	// commit, so it shows as lag.
	produce("slow")
	eventually("the slow record in flight", func(s, _ stats.StageStats) bool { return s.InFlight == 1 && s.Lag >= 1 })
	close(release)
	s, _ = eventually("the slow record done", func(s, _ stats.StageStats) bool { return s.InFlight == 0 && s.Lag == 0 })
	if s.DeadLetters != 2 {
		t.Errorf("dead letters %d, want still 2", s.DeadLetters)
	}
}
