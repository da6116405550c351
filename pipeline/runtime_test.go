package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"prismflow/connectors/blob"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

// passThrough copies the document and the sequence number (PageCount).
func passThrough(_ context.Context, in events.TextExtracted) (events.SectionsSplit, error) {
	return events.SectionsSplit{Document: in.Document, PageCount: in.PageCount, Language: in.Language}, nil
}

func TestTransformEveryOutputOnceInKeyOrder(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 3, "in", "out", "dead-letter")

	const n = 300
	keys := []string{"doc-a", "doc-b", "doc-c", "doc-d", "doc-e", "doc-f", "doc-g"}
	const inTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var recs []*kgo.Record
	for i := range n {
		key := keys[i%len(keys)]
		ev := events.TextExtracted{
			Meta:      events.Meta{Run: int32(1 + i%2)},
			Document:  events.Document{ID: key, Tenant: "t1"},
			PageCount: int32(i),
		}
		var hs []kgo.RecordHeader
		if i%3 == 0 {
			hs = append(hs, kgo.RecordHeader{Key: "traceparent", Value: []byte(inTrace)})
		}
		recs = append(recs, eventRecord(t, "in", key, ev, hs...))
	}
	produce(t, brokers, recs...)

	reg := prometheus.NewRegistry()
	rt := pipeline.New(testConfig(brokers), jsonCodec{}, blob.NewMemory(), nil, reg)
	stop := runStages(t, rt, pipeline.Stage{
		Name: "pass", Version: "v9", Output: "out", Concurrency: 4,
		Routes: []pipeline.Route{pipeline.Transform("in", passThrough)},
	})
	out := consumeN(t, brokers, "out", n, kgo.ReadCommitted())
	// franz-go's own client metrics are exported too, per stage.
	if counter(t, reg, "prismflow_connects_total", "0", "pass") == 0 {
		t.Error("no kprom client metrics (prismflow_connects_total{node_id=0,stage=pass}) while the stage runs")
	}
	stop()

	seen := make(map[int32]bool)
	last := make(map[string]int32)
	for _, r := range out {
		ev := decode[events.SectionsSplit](t, r)
		if seen[ev.PageCount] {
			t.Fatalf("output %d seen twice", ev.PageCount)
		}
		seen[ev.PageCount] = true
		key := string(r.Key)
		if key != ev.Document.ID {
			t.Errorf("output key %q, document %q", key, ev.Document.ID)
		}
		if prev, ok := last[key]; ok && ev.PageCount <= prev {
			t.Errorf("key %s: %d after %d", key, ev.PageCount, prev)
		}
		last[key] = ev.PageCount
		i := int(ev.PageCount)
		if ev.Meta.Stage != "pass" || ev.Meta.StageVersion != "v9" || ev.Meta.ProducedAt.IsZero() {
			t.Errorf("output %d: meta %+v", i, ev.Meta)
		}
		if want := int32(1 + i%2); ev.Meta.Run != want {
			t.Errorf("output %d: run %d, want %d", i, ev.Meta.Run, want)
		}
		tp := header(r, "traceparent")
		if tp != ev.Meta.TraceParent {
			t.Errorf("output %d: header traceparent %q, meta %q", i, tp, ev.Meta.TraceParent)
		}
		if i%3 == 0 && tp != inTrace {
			t.Errorf("output %d: traceparent %q, want input's %q", i, tp, inTrace)
		}
		if i%3 != 0 && (tp == inTrace || len(tp) != 55) {
			t.Errorf("output %d: want a new trace, got %q", i, tp)
		}
		if s := header(r, pipeline.HeaderStage); s != "pass" {
			t.Errorf("output %d: stage header %q", i, s)
		}
	}
	if got := counter(t, reg, "prismflow_stage_events_produced_total", "pass", "out"); got != n {
		t.Errorf("produced_total = %v, want %d", got, n)
	}
	if got := counter(t, reg, "prismflow_stage_events_consumed_total", "pass", "in"); got != n {
		t.Errorf("consumed_total = %v, want %d", got, n)
	}
}

// counter is the value of counter name{labels...} in reg, 0 if absent.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, lp := range m.GetLabel() {
				vals = append(vals, lp.GetValue())
			}
			if strings.Join(vals, ",") == strings.Join(labels, ",") {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestErrorsDeadLetterOrRetry(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "in", "out", "dead-letter")

	var mu sync.Mutex
	calls := map[string]int{}
	handler := func(_ context.Context, in events.TextExtracted) (events.SectionsSplit, error) {
		mu.Lock()
		calls[in.Document.ID]++
		n := calls[in.Document.ID]
		mu.Unlock()
		switch in.Document.Source {
		case "permanent":
			return events.SectionsSplit{}, pipeline.Permanent(errors.New("unsupported file"))
		case "flaky":
			if n < 3 {
				return events.SectionsSplit{}, fmt.Errorf("flaky try %d", n)
			}
		case "broken":
			return events.SectionsSplit{}, errors.New("store down")
		case "outage":
			// The database is down for 12 tries, far beyond Attempts;
			// once back, one ordinary transient failure.
			switch {
			case n <= 12:
				return events.SectionsSplit{}, pipeline.Unavailable(errors.New("connection refused"))
			case n == 13:
				return events.SectionsSplit{}, errors.New("deadlock detected")
			}
		case "panic":
			var m map[string]int
			m["boom"]++ // a nil-map write: a handler bug
		}
		return events.SectionsSplit{Document: in.Document}, nil
	}

	doc := func(id, source string) events.TextExtracted {
		return events.TextExtracted{Document: events.Document{ID: id, Tenant: "acme", Source: source}}
	}
	recs := []*kgo.Record{
		eventRecord(t, "in", "d-perm", doc("d-perm", "permanent"), kgo.RecordHeader{Key: "x-origin", Value: []byte("test")}),
		eventRecord(t, "in", "d-ok1", doc("d-ok1", "")),
		eventRecord(t, "in", "d-flaky", doc("d-flaky", "flaky")),
		eventRecord(t, "in", "d-broken", doc("d-broken", "broken"), kgo.RecordHeader{Key: pipeline.HeaderAttempts, Value: []byte("2")}),
		eventRecord(t, "in", "d-panic", doc("d-panic", "panic")),
		{Topic: "in", Key: []byte("d-bad"), Value: []byte("not an event")},
		eventRecord(t, "in", "d-ok2", doc("d-ok2", "")),
		eventRecord(t, "in", "d-outage", doc("d-outage", "outage")),
	}
	produce(t, brokers, recs...)

	reg := prometheus.NewRegistry()
	rt := pipeline.New(testConfig(brokers), jsonCodec{}, blob.NewMemory(), nil, reg)
	stop := runStages(t, rt, pipeline.Stage{
		Name: "errs", Output: "out", Concurrency: 3,
		Routes: []pipeline.Route{pipeline.Transform("in", handler)},
	})
	out := consumeN(t, brokers, "out", 4, kgo.ReadCommitted())
	dls := consumeN(t, brokers, "dead-letter", 4, kgo.ReadCommitted())
	stop()

	var outIDs []string
	for _, r := range out {
		outIDs = append(outIDs, string(r.Key))
	}
	if got := strings.Join(outIDs, ","); got != "d-ok1,d-flaky,d-ok2,d-outage" {
		t.Errorf("outputs %s, want d-ok1,d-flaky,d-ok2,d-outage", got)
	}

	offsets := map[string]int64{}
	for i, r := range recs {
		offsets[string(r.Key)] = int64(i)
	}
	want := map[string]struct {
		permanent bool
		attempts  int32
		errHas    string
	}{
		"d-perm":   {true, 1, "unsupported file"},
		"d-broken": {false, 2 + 3, "store down"},
		"d-panic":  {true, 1, "panic"},
		"d-bad":    {true, 1, "bad record"},
	}
	for _, r := range dls {
		dl := decode[events.DeadLetter](t, r)
		w, ok := want[dl.DocumentID]
		if !ok {
			t.Errorf("unexpected dead letter %+v", dl)
			continue
		}
		delete(want, dl.DocumentID)
		src := recs[offsets[dl.DocumentID]]
		if string(r.Key) != dl.DocumentID {
			t.Errorf("%s: dead letter key %q", dl.DocumentID, r.Key)
		}
		if dl.Permanent != w.permanent || dl.Attempts != w.attempts || !strings.Contains(dl.Error, w.errHas) {
			t.Errorf("%s: permanent=%v attempts=%d error=%q; want %v %d ~%q", dl.DocumentID, dl.Permanent, dl.Attempts, dl.Error, w.permanent, w.attempts, w.errHas)
		}
		if string(dl.Value) != string(src.Value) || string(dl.Key) != string(src.Key) {
			t.Errorf("%s: dead letter does not keep the original bytes", dl.DocumentID)
		}
		if dl.Topic != "in" || dl.Partition != 0 || dl.Offset != offsets[dl.DocumentID] {
			t.Errorf("%s: source %s/%d@%d, want in/0@%d", dl.DocumentID, dl.Topic, dl.Partition, dl.Offset, offsets[dl.DocumentID])
		}
		if dl.DocumentID != "d-bad" && dl.Tenant != "acme" {
			t.Errorf("%s: tenant %q", dl.DocumentID, dl.Tenant)
		}
		if dl.Meta.Stage != "errs" || dl.Meta.TraceParent == "" || dl.Meta.Run != 1 {
			t.Errorf("%s: meta %+v", dl.DocumentID, dl.Meta)
		}
		for _, h := range src.Headers {
			if dl.Headers[h.Key] != string(h.Value) {
				t.Errorf("%s: header %s = %q, want %q", dl.DocumentID, h.Key, dl.Headers[h.Key], h.Value)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("missing dead letters: %v", want)
	}
	mu.Lock()
	if calls["d-flaky"] != 3 || calls["d-broken"] != 3 || calls["d-perm"] != 1 || calls["d-outage"] != 14 {
		t.Errorf("handler calls %v: want flaky 3, broken 3, perm 1, outage 14", calls)
	}
	mu.Unlock()
	for name, want := range map[string]float64{
		"prismflow_stage_dead_letters_total": 4,
		"prismflow_stage_retries_total":      17, // flaky 2 + broken 2 + outage 13
	} {
		if got := counter(t, reg, name, "errs"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestClaimCheckMovesLargeTextsToBlobs(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 2, "raw", "claimed", "dead-letter")

	// 400 KiB of text over three pages, past the 256 KiB default.
	var sb strings.Builder
	for i := 0; sb.Len() < 400<<10; i++ {
		fmt.Fprintf(&sb, "Riga %d: il contraente dichiara che il rischio è invariato. ", i)
	}
	big := sb.String()
	pages := []events.Page{
		{Number: 1, Text: big[:100<<10]},
		{Number: 2, Text: ""},
		{Number: 3, Text: big[100<<10:]},
	}
	in := events.TextExtracted{Document: events.Document{ID: "big-doc"}, PageCount: 3, Pages: pages}
	produce(t, brokers, eventRecord(t, "raw", "big-doc", in))

	store := blob.NewMemory()
	got := make(chan events.TextExtracted, 1)
	rt := pipeline.New(testConfig(brokers), jsonCodec{}, store, nil, nil)
	stop := runStages(t, rt,
		pipeline.Stage{Name: "copy", Output: "claimed",
			Routes: []pipeline.Route{pipeline.Transform("raw", func(_ context.Context, e events.TextExtracted) (events.TextExtracted, error) {
				return e, nil
			})}},
		pipeline.Stage{Name: "read",
			Routes: []pipeline.Route{pipeline.Sink("claimed", func(_ context.Context, e events.TextExtracted) error {
				got <- e
				return nil
			})}},
	)
	recs := consumeN(t, brokers, "claimed", 1, kgo.ReadCommitted())
	var e events.TextExtracted
	waitFor(t, "the sink to see the event", func() bool {
		select {
		case e = <-got:
			return true
		default:
			return false
		}
	})
	stop()

	if size := len(recs[0].Value); size > 4<<10 {
		t.Errorf("claim-checked record is %d bytes", size)
	}
	onWire := decode[events.TextExtracted](t, recs[0])
	for i, p := range onWire.Pages {
		if p.Text != "" || (pages[i].Text != "") != (p.TextRef != "") {
			t.Errorf("wire page %d: text %d bytes, ref %q", p.Number, len(p.Text), p.TextRef)
		}
		if p.TextRef != "" && !strings.HasPrefix(p.TextRef, "claims/big-doc/") {
			t.Errorf("wire page %d: ref %q", p.Number, p.TextRef)
		}
	}
	if n := len(store.Keys()); n != 2 {
		t.Errorf("blob store has %d keys, want 2", n)
	}
	for i, p := range e.Pages {
		if p.Text != pages[i].Text || p.TextRef != "" {
			t.Errorf("page %d arrived with %d bytes (want %d), ref %q", p.Number, len(p.Text), len(pages[i].Text), p.TextRef)
		}
	}
}

func TestSinkResumesFromCommittedOffsets(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 2, "done", "dead-letter")

	batch := func(from, to int) []*kgo.Record {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			id := fmt.Sprintf("doc-%02d", i)
			recs = append(recs, eventRecord(t, "done", id, events.DocumentReceived{Document: events.Document{ID: id}}))
		}
		return recs
	}
	var mu sync.Mutex
	handled := map[string]int{}
	var total atomic.Int64
	sink := pipeline.Sink("done", func(_ context.Context, e events.DocumentReceived) error {
		mu.Lock()
		handled[e.Document.ID]++
		mu.Unlock()
		total.Add(1)
		return nil
	})
	stage := pipeline.Stage{Name: "persist", Routes: []pipeline.Route{sink}, Concurrency: 2}

	produce(t, brokers, batch(0, 20)...)
	stop := runStages(t, pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil), stage)
	waitFor(t, "20 records handled", func() bool { return total.Load() >= 20 })
	stop()

	produce(t, brokers, batch(20, 30)...)
	stop = runStages(t, pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil), stage)
	waitFor(t, "30 records handled", func() bool { return total.Load() >= 30 })
	stop()

	mu.Lock()
	defer mu.Unlock()
	for i := range 30 {
		id := fmt.Sprintf("doc-%02d", i)
		if handled[id] != 1 {
			t.Errorf("%s handled %d times, want 1", id, handled[id])
		}
	}
	if total.Load() != 30 {
		t.Errorf("handled %d records, want 30", total.Load())
	}
}

func TestRunRejectsBadStages(t *testing.T) {
	rt := pipeline.New(pipeline.Config{Brokers: []string{"127.0.0.1:1"}, DeadLetterTopic: "dl"}, jsonCodec{}, nil, nil, nil)
	sink := pipeline.Sink("a", func(context.Context, events.DocumentReceived) error { return nil })
	tr := pipeline.Transform("b", passThrough)
	for name, st := range map[string]pipeline.Stage{
		"no name":          {Routes: []pipeline.Route{sink}},
		"no routes":        {Name: "x"},
		"sink with output": {Name: "x", Output: "o", Routes: []pipeline.Route{sink}},
		"no output":        {Name: "x", Routes: []pipeline.Route{tr}},
		"mixed":            {Name: "x", Output: "o", Routes: []pipeline.Route{sink, tr}},
		"zero route":       {Name: "x", Output: "o", Routes: []pipeline.Route{{Topic: "a"}}},
	} {
		if err := rt.Run(context.Background(), st); err == nil {
			t.Errorf("%s: Run accepted %+v", name, st)
		}
	}
}

// A sink that reads the dead-letter topic must not dead-letter what it
// cannot handle back into the same topic (it would loop).
func TestDeadLettersAreNotDeadLetteredAgain(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "dead-letter")
	produce(t, brokers,
		eventRecord(t, "dead-letter", "d1", events.DeadLetter{DocumentID: "d1"}),
		eventRecord(t, "dead-letter", "d2", events.DeadLetter{DocumentID: "d2"}),
	)
	var calls atomic.Int32
	stop := runStages(t, pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil), pipeline.Stage{
		Name: "persist",
		Routes: []pipeline.Route{pipeline.Sink("dead-letter", func(_ context.Context, dl events.DeadLetter) error {
			calls.Add(1)
			if dl.DocumentID == "d1" {
				return pipeline.Permanent(errors.New("cannot store"))
			}
			return nil
		})},
	})
	waitFor(t, "both dead letters handled", func() bool { return calls.Load() >= 2 })
	stop()
	consumeN(t, brokers, "dead-letter", 2, kgo.ReadCommitted()) // exactly the two we wrote
}

func TestSinkDeadLettersAndGoesOn(t *testing.T) {
	brokers := testenv.Kafka(t)
	ensureTopics(t, brokers, 1, "done", "dead-letter")
	var recs []*kgo.Record
	for _, id := range []string{"ok-1", "bad", "ok-2"} {
		recs = append(recs, eventRecord(t, "done", id, events.DocumentReceived{Document: events.Document{ID: id, Tenant: "acme"}}))
	}
	produce(t, brokers, recs...)
	var stored atomic.Int32
	stop := runStages(t, pipeline.New(testConfig(brokers), jsonCodec{}, nil, nil, nil), pipeline.Stage{
		Name: "persist",
		Routes: []pipeline.Route{pipeline.Sink("done", func(_ context.Context, e events.DocumentReceived) error {
			if e.Document.ID == "bad" {
				return pipeline.Permanent(errors.New("violates a constraint"))
			}
			stored.Add(1)
			return nil
		})},
	})
	dls := consumeN(t, brokers, "dead-letter", 1, kgo.ReadCommitted())
	waitFor(t, "two records stored", func() bool { return stored.Load() == 2 })
	stop()
	dl := decode[events.DeadLetter](t, dls[0])
	if dl.DocumentID != "bad" || dl.Tenant != "acme" || !dl.Permanent || dl.Offset != 1 || dl.Meta.Stage != "persist" {
		t.Errorf("dead letter %+v", dl)
	}
}
