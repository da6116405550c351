package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// errBadRecord plays schemas.ErrBadRecord for jsonCodec.
var errBadRecord = errors.New("bad record")

// jsonCodec is a stand-in for the Avro codec: a magic byte and JSON. Bytes
// without the magic byte can never decode, like Confluent framing.
type jsonCodec struct{}

func (jsonCodec) Encode(_ context.Context, _ string, ev events.Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return append([]byte{'J'}, b...), nil
}

func (jsonCodec) Decode(_ context.Context, b []byte, into events.Event) error {
	if len(b) == 0 || b[0] != 'J' {
		return fmt.Errorf("no magic byte: %w", errBadRecord)
	}
	if err := json.Unmarshal(b[1:], into); err != nil {
		return fmt.Errorf("%w: %v", errBadRecord, err)
	}
	return nil
}

// testConfig is a runtime config for tests: fast retries, small batches.
func testConfig(brokers []string) pipeline.Config {
	return pipeline.Config{
		Brokers:         brokers,
		DeadLetterTopic: "dead-letter",
		BadRecord:       errBadRecord,
		Retry:           pipeline.Retry{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond},
		BatchSize:       16,
	}
}

func ensureTopics(t *testing.T, brokers []string, partitions int32, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), partitions, topics...); err != nil {
		t.Fatal(err)
	}
	// Twice: existing topics are not an error.
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), partitions, topics...); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
}

// produce writes recs synchronously with an idempotent producer.
func produce(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func eventRecord(t *testing.T, topic, key string, ev events.Event, headers ...kgo.RecordHeader) *kgo.Record {
	t.Helper()
	v, err := jsonCodec{}.Encode(context.Background(), topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: v, Headers: headers}
}

// consumeN reads topic from the start with the given isolation until it
// has n records or the deadline passes, then checks that no more arrive
// for a short while (to catch duplicates).
func consumeN(t *testing.T, brokers []string, topic string, n int, iso kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		got = append(got, fs.Records()...)
	}
	if len(got) < n {
		t.Fatalf("topic %s: got %d records, want %d", topic, len(got), n)
	}
	// Anything beyond n is a duplicate or a stray; give it a chance to show.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	got = append(got, cl.PollFetches(ctx).Records()...)
	if len(got) != n {
		t.Fatalf("topic %s: got %d records, want exactly %d", topic, len(got), n)
	}
	return got
}

func decode[T any, PT interface {
	*T
	events.Event
}](t *testing.T, r *kgo.Record) T {
	t.Helper()
	var v T
	if err := (jsonCodec{}).Decode(context.Background(), r.Value, PT(&v)); err != nil {
		t.Fatalf("decode %s@%d: %v", r.Topic, r.Offset, err)
	}
	return v
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// runStages runs rt in the background and returns a stop function that
// cancels it and checks Run returned nil.
func runStages(t *testing.T, rt *pipeline.Runtime, stages ...pipeline.Stage) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, stages...) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
