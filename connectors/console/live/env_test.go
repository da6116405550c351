package live

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
	"prismflow/schemas/events"
)

// wait is how long a test waits for something that should happen: long,
// because CI machines are small and busy.
const wait = 90 * time.Second

// env is a Kafka broker with the pipeline's topics, a schema registry and
// a producer of real encoded events.
type env struct {
	t     *testing.T
	cl    *kgo.Client
	codec *schemas.Codec
}

func newEnv(t *testing.T) *env {
	t.Helper()
	brokers := testenv.Kafka(t)
	srcl, err := sr.NewClient(sr.URLs(testenv.Registry(t, brokers)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), 3, topology.Topics...); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, cl: cl, codec: schemas.NewCodec(srcl)}
}

// produce encodes ev and writes it to topic keyed by doc, as a stage
// would (with the stage header).
func (e *env) produce(topic, doc string, ev events.Event, stage string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	v, err := e.codec.Encode(ctx, topic, ev)
	if err != nil {
		e.t.Fatal(err)
	}
	e.produceRaw(topic, doc, v, stage)
}

func (e *env) produceRaw(topic, doc string, value []byte, stage string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rec := &kgo.Record{Topic: topic, Key: []byte(doc), Value: value,
		Headers: []kgo.RecordHeader{{Key: pipeline.HeaderStage, Value: []byte(stage)}}}
	if err := e.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// start runs h until the test ends and waits until it is positioned.
func (e *env) start(h *Hub) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-h.Ready():
	case err := <-done:
		e.t.Fatalf("Run returned before it was ready: %v", err)
	case <-time.After(wait):
		e.t.Fatal("hub not ready")
	}
}

func (e *env) hub(opts ...Option) *Hub {
	return NewHub(e.cl, e.codec, nil, slog.New(slog.DiscardHandler), opts...)
}

// next returns the next update on ch, failing the test after wait.
func next(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return u
	case <-time.After(wait):
		t.Fatal("no update")
	}
	return Update{}
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func meta(stage string, run int32) events.Meta {
	return events.Meta{Stage: stage, StageVersion: "test", ProducedAt: time.Now().UTC().Truncate(time.Millisecond), Run: run}
}

func document(id, tenant string) events.Document {
	return events.Document{ID: id, Tenant: tenant, Filename: id + ".pdf", ContentType: "application/pdf", Blob: "sha256/00/" + id, Source: "upload"}
}

func (h *Hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
