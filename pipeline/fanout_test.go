package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

// children makes in.PageCount%4 child documents of in, with ids derived
// from the parent's id and the parent's sequence number, as a real
// fan-out derives them from its input.
func children(_ context.Context, in events.TextExtracted) ([]events.DocumentReceived, error) {
	n := int(in.PageCount % 4)
	out := make([]events.DocumentReceived, 0, n)
	for i := range n {
		out = append(out, events.DocumentReceived{Document: events.Document{
			ID:       fmt.Sprintf("%s/%d/%d", in.Document.ID, in.PageCount, i),
			Tenant:   in.Document.Tenant,
			ParentID: in.Document.ID,
		}})
	}
	return out, nil
}

func wantChildren(n int) map[string]bool {
	keys := []string{"p1", "p2", "p3", "p4", "p5"}
	want := map[string]bool{}
	for i := range n {
		for c := range i % 4 {
			want[fmt.Sprintf("%s/%d/%d", keys[i%len(keys)], i, c)] = true
		}
	}
	return want
}

func parentRecords(t *testing.T, n int) []*kgo.Record {
	keys := []string{"p1", "p2", "p3", "p4", "p5"}
	var recs []*kgo.Record
	for i := range n {
		key := keys[i%len(keys)]
		recs = append(recs, eventRecord(t, "in", key, events.TextExtracted{
			Meta: events.Meta{Run: 2}, Document: events.Document{ID: key, Tenant: "t1"}, PageCount: int32(i),
		}))
	}
	return recs
}

// TestTransformManyFansOut: inputs with zero, one and three outputs; every
// output appears once, keyed by its own document id and stamped like a
// Transform output, and every input offset commits, including those that
// produced nothing.
func TestTransformManyFansOut(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 3, "in", "out", "dead-letter")
	const n = 40 // i%4 children: 0, 1, 2 and 3 in turn
	produce(t, brokers, parentRecords(t, n)...)
	want := wantChildren(n)

	rt := pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil)
	stop := runStages(t, rt, pipeline.Stage{
		Name: "fan", Version: "v2", Output: "out", Concurrency: 3,
		Routes: []pipeline.Route{pipeline.TransformMany("in", children)},
	})
	got := consumeN(t, brokers, "out", len(want), kgo.ReadCommitted())

	// Every input is committed: the group's offsets reach the end of
	// "in", records with no output included.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), "in")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fan group to commit every input", func() bool {
		committed, err := adm.FetchOffsets(context.Background(), "prismflow-fan")
		if err != nil || committed.Error() != nil {
			return false
		}
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup("in", o.Partition); !ok || c.At < o.Offset {
				behind = true
			}
		})
		return !behind
	})
	stop()

	seen := map[string]bool{}
	for _, r := range got {
		ev := decode[events.DocumentReceived](t, r)
		id := ev.Document.ID
		if !want[id] || seen[id] {
			t.Errorf("unexpected or repeated output %q", id)
		}
		seen[id] = true
		if string(r.Key) != id {
			t.Errorf("output %s keyed %q, want its own id", id, r.Key)
		}
		if ev.Meta.Stage != "fan" || ev.Meta.StageVersion != "v2" || ev.Meta.Run != 2 || ev.Meta.ProducedAt.IsZero() {
			t.Errorf("output %s: meta %+v", id, ev.Meta)
		}
		if tp := header(r, "traceparent"); tp == "" || tp != ev.Meta.TraceParent {
			t.Errorf("output %s: traceparent header %q, meta %q", id, tp, ev.Meta.TraceParent)
		}
	}
}

func TestTransformManyOutputWithoutIDIsPermanent(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "in", "out", "dead-letter")
	produce(t, brokers, eventRecord(t, "in", "p1", events.TextExtracted{Document: events.Document{ID: "p1"}}))
	var calls atomic.Int32
	rt := pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil)
	stop := runStages(t, rt, pipeline.Stage{
		Name: "fan", Output: "out",
		Routes: []pipeline.Route{pipeline.TransformMany("in", func(context.Context, events.TextExtracted) ([]events.DocumentReceived, error) {
			calls.Add(1)
			return []events.DocumentReceived{{}}, nil
		})},
	})
	dead := consumeN(t, brokers, "dead-letter", 1, kgo.ReadCommitted())
	stop()
	dl := decode[events.DeadLetter](t, dead[0])
	if !dl.Permanent || dl.DocumentID != "p1" || !strings.Contains(dl.Error, "without a document id") {
		t.Errorf("dead letter = permanent %v, document %q, error %q", dl.Permanent, dl.DocumentID, dl.Error)
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("handler called %d times, want once (permanent errors are not retried)", c)
	}
}

const fanOutChildEnv = "PRISMFLOW_FANOUT_CHILD_BROKERS"

// TestHelperCrashingFanOut is the process TestTransformManyExactlyOnceAcrossCrash
// kills; run on its own it does nothing.
func TestHelperCrashingFanOut(t *testing.T) {
	brokers := os.Getenv(fanOutChildEnv)
	if brokers == "" {
		t.Skip("helper process for TestTransformManyExactlyOnceAcrossCrash")
	}
	rt := pipeline.New(crashChildConfig(brokers), jsonCodec{}, nil, nil, nil)
	err := rt.Run(context.Background(), fanOutStage(func() {}))
	t.Fatalf("child stage returned %v; it should have been killed", err)
}

func fanOutStage(onHandle func()) pipeline.Stage {
	return pipeline.Stage{
		Name: "fanny", Output: "out", Concurrency: 3,
		Routes: []pipeline.Route{pipeline.TransformMany("in", func(ctx context.Context, in events.TextExtracted) ([]events.DocumentReceived, error) {
			onHandle()
			return children(ctx, in)
		})},
	}
}

// TestTransformManyExactlyOnceAcrossCrash kills a fan-out stage process at
// its third commit, with outputs of several records in the open
// transaction; a new process must make every child visible exactly once.
func TestTransformManyExactlyOnceAcrossCrash(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in", "out", "dead-letter"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	const n = 100
	produce(t, brokers, parentRecords(t, n)...)
	want := wantChildren(n)

	killAtThirdCommit(t, c, "TestHelperCrashingFanOut", fanOutChildEnv+"="+strings.Join(brokers, ","), "prismflow-fanny-child-")

	var handled atomic.Int32
	rt := pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil)
	stop := runStages(t, rt, fanOutStage(func() { handled.Add(1) }))
	got := consumeN(t, brokers, "out", len(want), kgo.ReadCommitted())
	stop()

	seen := map[string]bool{}
	for _, r := range got {
		id := decode[events.DocumentReceived](t, r).Document.ID
		if !want[id] || seen[id] {
			t.Errorf("unexpected or repeated child %q", id)
		}
		seen[id] = true
	}
	if h := handled.Load(); h == 0 || h >= n {
		t.Errorf("restarted stage handled %d records: want some but not all of %d", h, n)
	}
}
