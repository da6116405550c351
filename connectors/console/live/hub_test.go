package live

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
	"prismflow/schemas/events"
	"prismflow/stages/persist"
)

// TestHubFollowsThePipeline sends one document through every topic as
// the stages would, and a dead letter, and checks what each subscriber
// sees: the producing stage, processing until the persisted row is done,
// failed for the dead letter, only its tenant's documents, and nothing
// from before the hub started.
func TestHubFollowsThePipeline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	store, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	p := &persist.Persister{Store: store, Version: "test"}
	var lookups atomic.Int64
	lookup := func(ctx context.Context, tenant, id string) (string, error) {
		lookups.Add(1)
		v, err := store.Document(ctx, tenant, id)
		return v.Status, err
	}

	// Before the hub starts: must never be seen. Same key and topic as a
	// later event, so it sits earlier on the same partition.
	e.produce(topology.DocumentReceived, "d1", &events.DocumentReceived{Meta: meta("before-start", 1), Document: document("d1", "acme")}, "ingest")

	h := e.hub(WithStatusLookup(lookup))
	all, stopAll := h.Subscribe("")
	defer stopAll()
	acme, stopAcme := h.Subscribe("acme")
	defer stopAcme()
	other, stopOther := h.Subscribe("other")
	defer stopOther()
	e.start(h)

	received := events.DocumentReceived{Meta: meta("ingest", 1), Document: document("d1", "acme"), ReceivedAt: time.Now().UTC().Truncate(time.Millisecond)}
	rendered := events.FormRendered{Meta: meta("render", 1), Document: document("d1", "acme"), Category: "Flotta Auto"}
	e.produce(topology.DocumentReceived, "d1", &received, "ingest")
	e.produce(topology.TextExtracted, "d1", &events.TextExtracted{Meta: meta("extract", 1), Document: document("d1", "acme"), PageCount: 1}, "extract")
	e.produce(topology.SectionsSplit, "d1", &events.SectionsSplit{Meta: meta("split", 1), Document: document("d1", "acme")}, "split")
	e.produce(topology.SectionsAnalyzed, "d1", &events.SectionsAnalyzed{Meta: meta("analyze", 1), Document: document("d1", "acme")}, "analyze")
	e.produce(topology.DocumentClassified, "d1", &events.DocumentClassified{Meta: meta("classify", 1), Document: document("d1", "acme")}, "classify")
	e.produce(topology.FormRendered, "d1", &rendered, "render")
	e.produce(topology.DeadLetter, "d2", &events.DeadLetter{Meta: meta("split", 1), DocumentID: "d2", Tenant: "acme",
		Topic: topology.TextExtracted, Error: "split: no text", Permanent: true, Attempts: 1}, "split")
	e.produce(topology.DocumentReceived, "d3", &events.DocumentReceived{Meta: meta("ingest", 1), Document: document("d3", "other")}, "ingest")

	// Topics are read in parallel, so only each topic's order is fixed.
	want := []Update{
		{Document: "d1", Tenant: "acme", Stage: "ingest", Status: StatusProcessing, Run: 1},
		{Document: "d1", Tenant: "acme", Stage: "extract", Status: StatusProcessing, Run: 1},
		{Document: "d1", Tenant: "acme", Stage: "split", Status: StatusProcessing, Run: 1},
		{Document: "d1", Tenant: "acme", Stage: "analyze", Status: StatusProcessing, Run: 1},
		{Document: "d1", Tenant: "acme", Stage: "classify", Status: StatusProcessing, Run: 1},
		{Document: "d1", Tenant: "acme", Stage: "render", Status: StatusProcessing, Run: 1},
		{Document: "d2", Tenant: "acme", Stage: "split", Status: StatusFailed, Run: 1, Error: "split: no text"},
	}
	var gotAcme []Update
	for range want {
		u := next(t, acme)
		if u.At.IsZero() {
			t.Errorf("update %+v has no time", u)
		}
		u.At = time.Time{}
		gotAcme = append(gotAcme, u)
	}
	for _, w := range want {
		if !slices.Contains(gotAcme, w) {
			t.Errorf("acme subscriber missed %+v; got %+v", w, gotAcme)
		}
	}
	if u := next(t, other); u.Document != "d3" || u.Tenant != "other" || u.Stage != "ingest" {
		t.Errorf("other tenant's subscriber got %+v, want d3 only", u)
	}

	// The row is not written yet: the hub keeps asking and must not say
	// done.
	eventually(t, "status lookups", func() bool { return lookups.Load() >= 3 })
	select {
	case u := <-acme:
		t.Fatalf("update before the row was written: %+v", u)
	default:
	}
	if err := p.Received(ctx, received); err != nil {
		t.Fatal(err)
	}
	if err := p.Rendered(ctx, rendered); err != nil {
		t.Fatal(err)
	}
	done := next(t, acme)
	if done.Document != "d1" || done.Status != StatusDone || done.Stage != "persist" || done.Run != 1 {
		t.Errorf("after the row was written got %+v, want d1 done by persist", done)
	}

	// The all-tenant subscriber saw both tenants and the done, and never
	// the record from before the start.
	seen := map[string]bool{}
	for range len(want) + 2 {
		u := next(t, all)
		if u.Stage == "before-start" {
			t.Errorf("hub delivered a record from before it started: %+v", u)
		}
		seen[u.Document+"/"+u.Status] = true
	}
	for _, k := range []string{"d1/processing", "d1/done", "d2/failed", "d3/processing"} {
		if !seen[k] {
			t.Errorf("all-tenant subscriber missed %s (saw %v)", k, seen)
		}
	}
	select {
	case u := <-other:
		t.Errorf("other tenant's subscriber got %+v", u)
	default:
	}
}

// TestHubWithoutLookup sends the final event as done at once, and skips
// records that do not decode without stopping.
func TestHubWithoutLookup(t *testing.T) {
	e := newEnv(t)
	h := e.hub()
	ch, stop := h.Subscribe("")
	defer stop()
	e.start(h)
	e.produceRaw(topology.FormRendered, "d1", []byte("%PDF-1.7 not an event"), "render")
	e.produce(topology.FormRendered, "d1", &events.FormRendered{Meta: meta("render", 2), Document: document("d1", "acme")}, "render")
	u := next(t, ch)
	if u.Document != "d1" || u.Status != StatusDone || u.Stage != "render" || u.Run != 2 {
		t.Errorf("got %+v, want d1 run 2 done by render", u)
	}
}

// TestSlowSubscriber: a subscriber that never reads loses updates past
// its buffer and holds up nobody.
func TestSlowSubscriber(t *testing.T) {
	e := newEnv(t)
	const buffer, sent = 2, 12
	h := e.hub(WithBuffer(buffer))
	slow := h.subscribe("")
	fast, stop := h.Subscribe("")
	defer stop()
	e.start(h)
	for i := range sent {
		e.produce(topology.SectionsSplit, "d1", &events.SectionsSplit{Meta: meta("split", int32(i+1)), Document: document("d1", "acme")}, "split")
		if u := next(t, fast); u.Run != int32(i+1) {
			t.Fatalf("fast subscriber got run %d, want %d", u.Run, i+1)
		}
	}
	if len(slow.ch) != buffer || slow.dropped.Load() != sent-buffer {
		t.Errorf("slow subscriber holds %d and dropped %d, want %d and %d", len(slow.ch), slow.dropped.Load(), buffer, sent-buffer)
	}
	if u := <-slow.ch; u.Run != 1 {
		t.Errorf("slow subscriber's first update is run %d, want the oldest (1)", u.Run)
	}
}

// TestRunStops: cancelling Run ends it, closes the subscriptions, and
// later subscriptions start closed.
func TestRunStops(t *testing.T) {
	e := newEnv(t)
	h := e.hub()
	ch, stop := h.Subscribe("")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	select {
	case <-h.Ready():
	case <-time.After(wait):
		t.Fatal("hub not ready")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after cancel")
	}
	if _, ok := <-ch; ok {
		t.Error("subscription still open after Run returned")
	}
	stop() // idempotent with the hub's own close
	late, stopLate := h.Subscribe("acme")
	defer stopLate()
	if _, ok := <-late; ok {
		t.Error("subscription after Run returned is open")
	}
}

// TestHubFollowsNewTopics: a topic created after the hub started is
// followed from its first record.
func TestHubFollowsNewTopics(t *testing.T) {
	e := newEnv(t)
	const late = "prismflow.late.v1"
	h := NewHub(e.cl, e.codec, append([]string{late}, topology.Topics...), nil)
	h.rescan = 50 * time.Millisecond
	ch, stop := h.Subscribe("")
	defer stop()
	e.start(h)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(e.cl), 2, late); err != nil {
		t.Fatal(err)
	}
	// Written before the hub looks again: read from the partition's start.
	e.produce(late, "d9", &events.SectionsSplit{Meta: meta("split", 1), Document: document("d9", "acme")}, "split")
	if u := next(t, ch); u.Document != "d9" || u.Stage != "split" {
		t.Errorf("got %+v, want d9 from the new topic", u)
	}
}
