package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	dsn := testenv.Postgres(t)
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func meta(stage string, run int32, at time.Duration) events.Meta {
	return events.Meta{Stage: stage, StageVersion: "v1." + stage, ProducedAt: t0.Add(at), Run: run, TraceParent: "00-abc-def-01"}
}

// step is one event delivered to its handler.
type step struct {
	name  string
	apply func(context.Context, *Persister) error
}

// pipelineEvents returns every event one run of a document produces, in
// pipeline order.
func pipelineEvents(id, tenant string, run int32) []step {
	doc := events.Document{
		ID: id, Tenant: tenant, Filename: "polizza " + id + ".pdf", ContentType: "application/pdf",
		SizeBytes: 48213, SHA256: strings.Repeat("ab", 32), Blob: "sha256/ab/" + strings.Repeat("ab", 32),
		Source: "imap", Sender: "broker@example.it", Subject: "Rinnovo polizza", ParentID: "mail-" + id,
	}
	base := time.Duration(run) * time.Hour
	sections := []events.Section{
		{Index: 0, Title: "Contraente", Text: "Mario Rossi, via Roma 1", PageStart: 1, PageEnd: 1},
		{Index: 1, Title: "Garanzie", Text: "Incendio e furto\x00 massimale 100.000 EUR", PageStart: 1, PageEnd: 2},
	}
	feedback := []events.FeedbackItem{
		{ID: "f1", SectionIndex: 1, Type: "missing", Severity: events.SeverityHigh, Message: "franchigia assente", Suggestion: "indicare la franchigia", Quote: "massimale"},
		{ID: "f2", SectionIndex: 0, Type: "format", Severity: events.SeverityLow, Message: "CAP mancante", Quote: "via Roma 1"},
	}
	return []step{
		{"received", func(ctx context.Context, p *Persister) error {
			return p.Received(ctx, events.DocumentReceived{Meta: meta("ingest", run, base), Document: doc, ReceivedAt: t0.Add(base - time.Second)})
		}},
		{"extracted", func(ctx context.Context, p *Persister) error {
			return p.Extracted(ctx, events.TextExtracted{Meta: meta("extract", run, base+time.Minute), Document: doc, PageCount: 2, Language: "it",
				Pages: []events.Page{
					{Number: 1, Text: "Contraente: Mario Rossi", Method: events.MethodDigital, Confidence: 1},
					{Number: 2, Text: "Garanzie: incendio \xff furto", Method: events.MethodOCR, Confidence: 0.82, NeedsOCR: false},
				}})
		}},
		{"split", func(ctx context.Context, p *Persister) error {
			return p.Split(ctx, events.SectionsSplit{Meta: meta("split", run, base+2*time.Minute), Document: doc, PageCount: 2, Language: "it", Sections: sections})
		}},
		{"analyzed", func(ctx context.Context, p *Persister) error {
			return p.Analyzed(ctx, events.SectionsAnalyzed{Meta: meta("analyze", run, base+3*time.Minute), Document: doc, PageCount: 2, Language: "it",
				Sections: sections, Provider: "rules", Feedback: feedback})
		}},
		{"classified", func(ctx context.Context, p *Persister) error {
			return p.Classified(ctx, events.DocumentClassified{Meta: meta("classify", run, base+4*time.Minute), Document: doc, PageCount: 2,
				Category: "property", Confidence: 0.91, NeedsReview: true, Provider: "rules",
				Fields: []events.Field{
					{Name: "policy_holder", Value: "Mario Rossi", Page: 1, SectionIndex: 0, Start: 0, End: 11},
					{Name: "limit", Value: "100.000 EUR", Page: 2, SectionIndex: 1, Start: 30, End: 41},
					{Name: "policy_holder", Value: "Anna Bianchi", Page: 2, SectionIndex: 1, Start: -1, End: -1},
				},
				Feedback: append(slices.Clone(feedback[:1]), events.FeedbackItem{ID: "c1", SectionIndex: -1, Type: "review", Severity: events.SeverityMedium, Message: "categoria incerta"}),
			})
		}},
		{"rendered", func(ctx context.Context, p *Persister) error {
			return p.Rendered(ctx, events.FormRendered{Meta: meta("render", run, base+5*time.Minute), Document: doc, Category: "property",
				Outputs: []events.Output{
					{Name: "form.pdf", Blob: "outputs/" + id + "/form.pdf", ContentType: "application/pdf", SizeBytes: 1234, SHA256: "cd"},
					{Name: "reply.eml", Blob: "outputs/" + id + "/reply.eml", ContentType: "message/rfc822", SizeBytes: 567, SHA256: "ef"},
				}})
		}},
	}
}

func run(t *testing.T, p *Persister, steps ...step) {
	t.Helper()
	for _, s := range steps {
		if err := s.apply(context.Background(), p); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
}

func TestFullSequence(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	p := &Persister{Store: s, Version: "test"}
	run(t, p, pipelineEvents("doc-1", "acme", 1)...)

	v, err := s.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != StatusDone || v.Error != "" || v.Run != 1 {
		t.Errorf("status %q error %q run %d, want done, no error, run 1", v.Status, v.Error, v.Run)
	}
	if v.Filename != "polizza doc-1.pdf" || v.Tenant != "acme" || v.SizeBytes != 48213 || v.Sender != "broker@example.it" ||
		v.Subject != "Rinnovo polizza" || v.ParentID != "mail-doc-1" || v.Source != "imap" || v.ContentType != "application/pdf" {
		t.Errorf("identity fields wrong: %+v", v)
	}
	if !v.ReceivedAt.Equal(t0.Add(time.Hour - time.Second)) {
		t.Errorf("received_at %v", v.ReceivedAt)
	}
	if !v.UpdatedAt.Equal(t0.Add(time.Hour + 5*time.Minute)) {
		t.Errorf("updated_at %v, want the last event's time", v.UpdatedAt)
	}
	if v.DoneAt == nil || !v.DoneAt.Equal(t0.Add(time.Hour+5*time.Minute)) {
		t.Errorf("done_at %v", v.DoneAt)
	}
	if v.PageCount != 2 || v.Language != "it" || v.Category != "property" || v.Confidence != 0.91 || !v.NeedsReview {
		t.Errorf("per-run facts: pages %d lang %q category %q conf %v review %v", v.PageCount, v.Language, v.Category, v.Confidence, v.NeedsReview)
	}
	for _, st := range []string{"ingest", "extract", "split", "analyze", "classify", "render", "persist"} {
		if v.Stages[st].Status != StatusDone {
			t.Errorf("stage %s = %+v, want done", st, v.Stages[st])
		}
	}
	if got := v.Stages["extract"]; !got.At.Equal(t0.Add(time.Hour+time.Minute)) || got.Version != "v1.extract" {
		t.Errorf("extract stage = %+v", got)
	}
	if len(v.Pages) != 2 || v.Pages[0].Number != 1 || v.Pages[1].Method != "ocr" || v.Pages[1].Confidence != 0.82 {
		t.Errorf("pages = %+v", v.Pages)
	}
	if v.Pages[1].Text != "Garanzie: incendio \uFFFD furto" {
		t.Errorf("invalid UTF-8 not replaced: %q", v.Pages[1].Text)
	}
	if len(v.Sections) != 2 || v.Sections[1].Title != "Garanzie" || v.Sections[1].PageEnd != 2 {
		t.Fatalf("sections = %+v", v.Sections)
	}
	if strings.ContainsRune(v.Sections[1].Text, 0) {
		t.Errorf("NUL byte stored")
	}
	// f1 came from analyze and again from classify: shown once.
	if fb := v.Sections[1].Feedback; len(fb) != 1 || fb[0].ID != "f1" || fb[0].Severity != "high" || fb[0].Quote != "massimale" || fb[0].Source != "analyze" {
		t.Errorf("section 1 feedback = %+v", fb)
	}
	if fb := v.Sections[0].Feedback; len(fb) != 1 || fb[0].ID != "f2" {
		t.Errorf("section 0 feedback = %+v", fb)
	}
	if len(v.Feedback) != 1 || v.Feedback[0].ID != "c1" {
		t.Errorf("document feedback = %+v", v.Feedback)
	}
	if f := v.Fields["policy_holder"]; f.Value != "Mario Rossi" || f.Page != 1 || f.End != 11 {
		t.Errorf("field policy_holder = %+v (first occurrence expected)", f)
	}
	if f := v.Fields["limit"]; f.Value != "100.000 EUR" || f.SectionIndex != 1 || f.Start != 30 {
		t.Errorf("field limit = %+v", f)
	}
	if len(v.FieldList) != 3 || v.FieldList[2].Value != "Anna Bianchi" {
		t.Errorf("field list = %+v", v.FieldList)
	}
	if len(v.Outputs) != 2 || v.Outputs[0].Name != "form.pdf" || v.Outputs[1].ContentType != "message/rfc822" || v.Outputs[0].Blob != "outputs/doc-1/form.pdf" {
		t.Errorf("outputs = %+v", v.Outputs)
	}

	// The JSON is what the API returns: snake_case, lists never null.
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"size_bytes":48213`, `"page_count":2`, `"needs_review":true`, `"page_start":1`, `"section_index":1`, `"stages":{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
}

func TestEmptyListsAreNotNull(t *testing.T) {
	s, _ := openStore(t)
	p := &Persister{Store: s}
	run(t, p, pipelineEvents("doc-1", "acme", 1)[0])
	v, err := s.Document(context.Background(), "", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if strings.Contains(string(b), "null") {
		t.Errorf("JSON has null: %s", b)
	}
	if v.Status != StatusProcessing {
		t.Errorf("status %q after received only", v.Status)
	}
}

// rowCounts counts the rows of every table persist writes.
func rowCounts(t *testing.T, dsn string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	counts := map[string]int{}
	for _, tb := range []string{"documents", "stage_runs", "pages", "sections", "feedback_items", "fields", "outputs", "dead_letters", "classifications"} {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[tb] = n
	}
	return counts
}

// comparable strips what legitimately differs between databases: the
// persist stage's own time is the wall clock of its first store.
func comparable(v DocumentView) DocumentView {
	v.Stages = maps.Clone(v.Stages)
	if st, ok := v.Stages["persist"]; ok {
		st.At = time.Time{}
		v.Stages["persist"] = st
	}
	return v
}

func TestReplayShuffledConverges(t *testing.T) {
	ctx := context.Background()
	deadLetter := step{"dead letter", func(ctx context.Context, p *Persister) error {
		return p.DeadLettered(ctx, events.DeadLetter{Meta: meta("analyze", 1, time.Hour+150*time.Second), DocumentID: "doc-2", Tenant: "acme",
			Topic: "sections-split", Partition: 2, Offset: 17, Error: "provider timeout", Attempts: 5})
	}}
	all := append(append(pipelineEvents("doc-1", "acme", 1), pipelineEvents("doc-2", "acme", 1)...), deadLetter)

	// Reference: every event once, in pipeline order.
	ref, refDSN := openStore(t)
	run(t, &Persister{Store: ref}, all...)
	wantCounts := rowCounts(t, refDSN)
	want := map[string]DocumentView{}
	for _, id := range []string{"doc-1", "doc-2"} {
		v, err := ref.Document(ctx, "", id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = comparable(v)
	}
	if want["doc-2"].Status != StatusDone || want["doc-2"].Error != "provider timeout" {
		t.Fatalf("reference doc-2: status %q error %q", want["doc-2"].Status, want["doc-2"].Error)
	}

	// Replaying onto the same database changes nothing.
	run(t, &Persister{Store: ref}, all...)
	if got := rowCounts(t, refDSN); !maps.Equal(got, wantCounts) {
		t.Fatalf("row counts after replay = %v, want %v", got, wantCounts)
	}
	for id, w := range want {
		v, _ := ref.Document(ctx, "", id)
		if !reflect.DeepEqual(comparable(v), w) {
			t.Errorf("%s changed after replay:\n got %+v\nwant %+v", id, comparable(v), w)
		}
	}

	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			s, dsn := openStore(t)
			p := &Persister{Store: s}
			twice := append(slices.Clone(all), all...)
			rand.New(rand.NewPCG(seed, 99)).Shuffle(len(twice), func(i, j int) { twice[i], twice[j] = twice[j], twice[i] })
			// Deliver concurrently as well, as persist's partitions do.
			var wg sync.WaitGroup
			errs := make(chan error, len(twice))
			for i := range 3 {
				wg.Go(func() {
					for j := i; j < len(twice); j += 3 {
						if err := twice[j].apply(ctx, p); err != nil {
							errs <- fmt.Errorf("%s: %w", twice[j].name, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := rowCounts(t, dsn); !maps.Equal(got, wantCounts) {
				t.Errorf("row counts = %v, want %v", got, wantCounts)
			}
			for id, w := range want {
				v, err := s.Document(ctx, "", id)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(comparable(v), w) {
					t.Errorf("%s differs:\n got %+v\nwant %+v", id, comparable(v), w)
				}
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	p := &Persister{Store: s}
	steps := pipelineEvents("doc-1", "acme", 1)
	run(t, p, steps[:2]...)
	dl := events.DeadLetter{Meta: meta("split", 1, time.Hour+2*time.Minute), DocumentID: "doc-1", Tenant: "acme",
		Topic: "text-extracted", Partition: 0, Offset: 41, Error: "split: no text", Permanent: true, Attempts: 1}
	if err := p.DeadLettered(ctx, dl); err != nil {
		t.Fatal(err)
	}
	v, err := s.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != StatusFailed || v.Error != "split: no text" {
		t.Fatalf("status %q error %q, want failed with the dead letter's error", v.Status, v.Error)
	}
	if st := v.Stages["split"]; st.Status != StatusFailed {
		t.Errorf("split stage = %+v, want failed", st)
	}
	// A late processing event of the same run does not undo the failure.
	run(t, p, steps[0], steps[1])
	if v, _ := s.Document(ctx, "acme", "doc-1"); v.Status != StatusFailed {
		t.Errorf("status %q after a late event, want failed", v.Status)
	}
	// A newer run starts over.
	next := pipelineEvents("doc-1", "acme", 2)
	run(t, p, next[0])
	v, _ = s.Document(ctx, "acme", "doc-1")
	if v.Status != StatusProcessing || v.Run != 2 || v.Error != "" || v.PageCount != 0 || len(v.Pages) != 0 {
		t.Errorf("after run 2 started: status %q run %d error %q pages %d/%d", v.Status, v.Run, v.Error, v.PageCount, len(v.Pages))
	}
	if !v.ReceivedAt.Equal(t0.Add(time.Hour - time.Second)) {
		t.Errorf("received_at moved to %v, want the first receipt", v.ReceivedAt)
	}
	// Late events of the old run add nothing to what is shown.
	if err := p.DeadLettered(ctx, dl); err != nil {
		t.Fatal(err)
	}
	run(t, p, steps[2:]...)
	v, _ = s.Document(ctx, "acme", "doc-1")
	if v.Status != StatusProcessing || v.Run != 2 || len(v.Sections) != 0 || v.Category != "" {
		t.Errorf("old run leaked into run 2: status %q run %d sections %d category %q", v.Status, v.Run, len(v.Sections), v.Category)
	}
	run(t, p, next[1:]...)
	if v, _ := s.Document(ctx, "acme", "doc-1"); v.Status != StatusDone || v.Run != 2 || len(v.Pages) != 2 {
		t.Errorf("run 2 finished: status %q run %d pages %d", v.Status, v.Run, len(v.Pages))
	}
}

func TestDeadLetterBeforeAnythingElse(t *testing.T) {
	ctx := context.Background()
	s, dsn := openStore(t)
	p := &Persister{Store: s}
	dl := events.DeadLetter{Meta: meta("extract", 1, time.Minute), DocumentID: "doc-9", Tenant: "acme",
		Topic: "document-received", Partition: 1, Offset: 3, Error: "extract: encrypted PDF", Permanent: true, Attempts: 1}
	if err := p.DeadLettered(ctx, dl); err != nil {
		t.Fatal(err)
	}
	v, err := s.Document(ctx, "acme", "doc-9")
	if err != nil {
		t.Fatalf("placeholder document missing: %v", err)
	}
	if v.Status != StatusFailed || v.Error != "extract: encrypted PDF" {
		t.Errorf("placeholder: status %q error %q", v.Status, v.Error)
	}
	// DocumentReceived arriving later fills the placeholder in.
	run(t, p, pipelineEvents("doc-9", "acme", 1)[0])
	v, _ = s.Document(ctx, "acme", "doc-9")
	if v.Status != StatusFailed || v.Filename != "polizza doc-9.pdf" {
		t.Errorf("after received: status %q filename %q", v.Status, v.Filename)
	}
	// A dead letter naming no document is still kept.
	if err := p.DeadLettered(ctx, events.DeadLetter{Meta: meta("extract", 0, 0), Topic: "document-received", Offset: 4, Error: "undecodable"}); err != nil {
		t.Fatal(err)
	}
	if c := rowCounts(t, dsn); c["dead_letters"] != 2 || c["documents"] != 1 {
		t.Errorf("counts = %v", c)
	}
}

func TestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	p := &Persister{Store: s}
	run(t, p, pipelineEvents("a-1", "acme", 1)...)
	run(t, p, pipelineEvents("b-1", "globex", 1)[:3]...)

	if _, err := s.Document(ctx, "globex", "a-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex reading acme's document: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Document(ctx, "acme", "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing document: err = %v, want ErrNotFound", err)
	}
	if v, err := s.Document(ctx, "", "b-1"); err != nil || v.Tenant != "globex" {
		t.Errorf("any tenant: %v %v", v.Tenant, err)
	}
	tests := []struct {
		q    ListQuery
		want []string
	}{
		{ListQuery{Tenant: "acme"}, []string{"a-1"}},
		{ListQuery{Tenant: "globex"}, []string{"b-1"}},
		{ListQuery{Tenant: "globex", Status: StatusDone}, nil},
		{ListQuery{Tenant: "acme", Status: StatusDone, Category: "property"}, []string{"a-1"}},
		{ListQuery{Tenant: "acme", Category: "motor"}, nil},
		{ListQuery{Tenant: "initech"}, nil},
		{ListQuery{}, []string{"b-1", "a-1"}}, // received at the same time: id breaks the tie
		{ListQuery{ParentID: "mail-a-1"}, []string{"a-1"}},
		{ListQuery{ParentID: "mail-b-1"}, []string{"b-1"}},
		{ListQuery{Tenant: "globex", ParentID: "mail-a-1"}, nil},
		{ListQuery{ParentID: "mail-none"}, nil},
	}
	for _, tc := range tests {
		docs, next, err := s.ListDocuments(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range docs {
			ids = append(ids, d.ID)
		}
		if !slices.Equal(ids, tc.want) || next != "" {
			t.Errorf("ListDocuments(%+v) = %v next %q, want %v", tc.q, ids, next, tc.want)
		}
	}
}

func TestListPagination(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	p := &Persister{Store: s}
	const n = 250
	var want []string // acme's ids, newest first
	type doc struct {
		id string
		at time.Time
	}
	var acme []doc
	for i := range n {
		tenant := "acme"
		if i%5 == 4 {
			tenant = "globex"
		}
		// Groups of three share a receive time, so the id breaks ties.
		at := t0.Add(time.Duration(i/3) * time.Second).Add(123 * time.Microsecond)
		id := fmt.Sprintf("doc-%03d", (i*37)%n)
		e := events.DocumentReceived{Meta: meta("ingest", 1, 0), Document: events.Document{ID: id, Tenant: tenant, Filename: id}, ReceivedAt: at}
		if err := p.Received(ctx, e); err != nil {
			t.Fatal(err)
		}
		if tenant == "acme" {
			acme = append(acme, doc{id, at})
		}
	}
	slices.SortFunc(acme, func(a, b doc) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	for _, d := range acme {
		want = append(want, d.id)
	}

	for _, limit := range []int{1, 7, 50, 200, 1000} {
		var got []string
		cursor := ""
		pages := 0
		for {
			docs, next, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Limit: limit, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(docs) > limit {
				t.Fatalf("page of %d with limit %d", len(docs), limit)
			}
			for _, d := range docs {
				got = append(got, d.ID)
			}
			if next == "" {
				break
			}
			cursor = next
			if pages > n+1 {
				t.Fatal("pagination does not end")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: got %d ids %v..., want %d", limit, len(got), got[:min(5, len(got))], len(want))
		}
	}

	since := t0.Add(40 * time.Second)
	docs, _, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Since: since, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	wantSince := 0
	for _, d := range acme {
		if !d.at.Before(since) {
			wantSince++
		}
	}
	if len(docs) != wantSince {
		t.Errorf("since: %d docs, want %d", len(docs), wantSince)
	}

	for _, q := range []ListQuery{{Cursor: "not-a-cursor!"}, {Cursor: "bm9jb2xvbg"}, {Status: "sleeping"}} {
		if _, _, err := s.ListDocuments(ctx, q); !pipeline.IsPermanent(err) {
			t.Errorf("ListDocuments(%+v) err = %v, want permanent", q, err)
		}
	}
}

func TestBadDataIsPermanent(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	p := &Persister{Store: s}
	doc := events.Document{ID: "doc-1", Tenant: "acme"}
	tests := []struct {
		name string
		err  error
	}{
		{"no document id", p.Received(ctx, events.DocumentReceived{Meta: meta("ingest", 1, 0)})},
		{"duplicate page numbers", p.Extracted(ctx, events.TextExtracted{Meta: meta("extract", 1, 0), Document: doc,
			Pages: []events.Page{{Number: 1}, {Number: 1}}})},
		{"page number 0", p.Extracted(ctx, events.TextExtracted{Meta: meta("extract", 1, 0), Document: doc,
			Pages: []events.Page{{Number: 0}}})},
		{"duplicate output names", p.Rendered(ctx, events.FormRendered{Meta: meta("render", 1, 0), Document: doc,
			Outputs: []events.Output{{Name: "form.pdf"}, {Name: "form.pdf"}}})},
	}
	for _, tc := range tests {
		if !pipeline.IsPermanent(tc.err) {
			t.Errorf("%s: err = %v, want permanent", tc.name, tc.err)
		}
	}
	// Each failed transaction rolled back its document upsert as well.
	if _, err := s.Document(ctx, "", "doc-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("document after only failed events: err = %v, want ErrNotFound", err)
	}
}

func TestUnreachableDatabaseIsTransient(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p := &Persister{Store: &Store{pool: pool}}
	err = p.Received(context.Background(), events.DocumentReceived{Meta: meta("ingest", 1, 0), Document: events.Document{ID: "x"}})
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testenv.Postgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}
