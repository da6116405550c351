package schemas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/pipeline/testenv"
	"prismflow/schemas"
	"prismflow/schemas/events"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newCodec returns a codec on a fresh embedded registry and a raw client
// to the same registry.
func newCodec(t testing.TB) (*schemas.Codec, *sr.Client) {
	t.Helper()
	url := testenv.Registry(t, testenv.Kafka(t))
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewCodec(cl), cl
}

var (
	produced = time.Date(2026, 11, 23, 9, 30, 15, 123_000_000, time.UTC)
	meta     = events.Meta{Stage: "extract", StageVersion: "1.4.0", ProducedAt: produced,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Run: 2}
	doc = events.Document{ID: "doc-7f3a", Tenant: "broker-milano", Filename: "Polizza RC Auto 2026.pdf",
		ContentType: "application/pdf", SizeBytes: 482113, SHA256: strings.Repeat("ab", 32),
		Blob: "sha256/abab", Source: "imap", Sender: "mario.rossi@example.it",
		Subject: "Rinnovo polizza – preventivo", ParentID: "mail-19"}
	sections = []events.Section{
		{Index: 0, Title: "Premessa", Text: "Il contraente dichiara…", PageStart: 1, PageEnd: 1},
		{Index: 1, Title: "Garanzie", TextRef: "text/doc-7f3a/1", PageStart: 2, PageEnd: 4},
	}
	feedback = []events.FeedbackItem{{ID: "fb-1", SectionIndex: 1, Type: "missing_value", Severity: events.SeverityHigh,
		Message: "Massimale non indicato", Suggestion: "Indicare il massimale", Quote: "massimale: ____"}}
)

func allEvents() []events.Event {
	return []events.Event{
		&events.DocumentReceived{Meta: meta, Document: doc, ReceivedAt: produced.Add(-time.Minute)},
		&events.TextExtracted{Meta: meta, Document: doc, PageCount: 2, Language: "it", Pages: []events.Page{
			{Number: 1, Text: "Pagina uno\nàèìòù", Method: events.MethodDigital, Confidence: 1},
			{Number: 2, TextRef: "text/p2", Method: events.MethodOCR, Confidence: 0.82, NeedsOCR: true},
		}},
		&events.SectionsSplit{Meta: meta, Document: doc, PageCount: 4, Language: "it", Sections: sections},
		&events.SectionsAnalyzed{Meta: meta, Document: doc, PageCount: 4, Language: "it", Sections: sections,
			Provider: "rules", Feedback: feedback},
		&events.DocumentClassified{Meta: meta, Document: doc, PageCount: 4, Category: "rc_auto", Confidence: 0.93,
			NeedsReview: true, Provider: "rules", Feedback: feedback, Fields: []events.Field{
				{Name: "targa", Value: "AB123CD", Page: 1, SectionIndex: 0, Start: 10, End: 17},
				{Name: "massimale", Value: "6070000", Page: 2, SectionIndex: 1, Start: -1, End: -1},
			}},
		&events.FormRendered{Meta: meta, Document: doc, Category: "rc_auto", Outputs: []events.Output{
			{Name: "form.pdf", Blob: "sha256/cd", ContentType: "application/pdf", SizeBytes: 20480, SHA256: "cd"},
			{Name: "reply.eml", Blob: "sha256/ef", ContentType: "message/rfc822", SizeBytes: 2048, SHA256: "ef"},
		}},
		&events.DeadLetter{Meta: meta, DocumentID: "doc-7f3a", Tenant: "broker-milano", Topic: "prismflow.text", Partition: 3,
			Offset: 1 << 40, Key: []byte("doc-7f3a"), Value: []byte{0, 0, 0, 0, 1, 0xff}, Headers: map[string]string{
				"traceparent": meta.TraceParent, "attempt": "3"}, Error: "extract: corrupt xref", Permanent: true, Attempts: 3},
	}
}

func TestNamesCoverEvents(t *testing.T) {
	var want []string
	for _, ev := range allEvents() {
		want = append(want, ev.SchemaName())
		src, err := schemas.Source(ev.SchemaName())
		if err != nil || !strings.Contains(src, `"type": "record"`) {
			t.Errorf("Source(%s): %v", ev.SchemaName(), err)
		}
	}
	slices.Sort(want)
	if got := schemas.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if _, err := schemas.Source("nope"); err == nil {
		t.Fatal("Source(nope) succeeded")
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	for _, ev := range allEvents() {
		t.Run(ev.SchemaName(), func(t *testing.T) {
			topic := "prismflow." + ev.SchemaName()
			b, err := codec.Encode(ctx, topic, ev)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if b[0] != 0 {
				t.Fatalf("magic byte %d", b[0])
			}
			into := reflect.New(reflect.TypeOf(ev).Elem()).Interface().(events.Event)
			if err := codec.Decode(ctx, b, into); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(into, ev) {
				t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", into, ev)
			}
			// The subject holds the embedded schema, under TopicNameStrategy.
			ss, err := cl.SchemaByVersion(ctx, topic+"-value", -1)
			src, _ := schemas.Source(ev.SchemaName())
			if err != nil || ss.Schema.Schema != src {
				t.Fatalf("registered schema: %v", err)
			}
		})
	}
}

// Zero values stay usable: the zero time comes back zero and an empty enum
// is written as the enum's default.
func TestZeroValues(t *testing.T) {
	ctx := ctxT(t)
	codec, _ := newCodec(t)
	in := &events.TextExtracted{Pages: []events.Page{{Number: 1}}}
	b, err := codec.Encode(ctx, "t", in)
	if err != nil {
		t.Fatal(err)
	}
	var out events.TextExtracted
	if err := codec.Decode(ctx, b, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Meta.ProducedAt.IsZero() || len(out.Pages) != 1 || out.Pages[0].Method != events.MethodNone || out.Pages[0].Number != 1 {
		t.Fatalf("zero event decoded as %+v", out)
	}
}

// registerOld registers an older (or other) version of a schema under
// subject and encodes native with it in the wire format.
func registerOld(t *testing.T, cl *sr.Client, subject, schema string, native map[string]any) []byte {
	t.Helper()
	ctx := ctxT(t)
	id, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		t.Fatalf("register old schema: %v", err)
	}
	c, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatalf("old schema: %v", err)
	}
	var h sr.ConfluentHeader
	b, _ := h.AppendEncode(nil, id, nil)
	b, err = c.BinaryFromNative(b, native)
	if err != nil {
		t.Fatalf("encode with old schema: %v", err)
	}
	return b
}

// editSchema returns the embedded schema name changed by edit, which
// works on the decoded JSON.
func editSchema(t *testing.T, name string, edit func(root map[string]any)) string {
	t.Helper()
	src, err := schemas.Source(name)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal([]byte(src), &root); err != nil {
		t.Fatal(err)
	}
	edit(root)
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// record returns the record schema reached from root through the named
// fields, entering array items; edits to it change root.
func record(root map[string]any, path ...string) map[string]any {
	rec := root
	for _, name := range path {
		for _, f := range rec["fields"].([]any) {
			f := f.(map[string]any)
			if f["name"] != name {
				continue
			}
			typ := f["type"].(map[string]any)
			if typ["type"] == "array" {
				typ = typ["items"].(map[string]any)
			}
			rec = typ
		}
	}
	return rec
}

func dropField(rec map[string]any, name string) {
	rec["fields"] = slices.DeleteFunc(rec["fields"].([]any), func(f any) bool { return f.(map[string]any)["name"] == name })
}

func addField(rec map[string]any, f map[string]any) {
	rec["fields"] = append(rec["fields"].([]any), f)
}

func TestEvolutionOldWriterGetsDefaults(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)

	// document_received as it was before Meta.run, Meta.traceparent and
	// Document.source/sender/subject/parent_id existed.
	old := editSchema(t, "document_received", func(root map[string]any) {
		dropField(record(root, "meta"), "run")
		dropField(record(root, "meta"), "traceparent")
		for _, f := range []string{"source", "sender", "subject", "parent_id"} {
			dropField(record(root, "document"), f)
		}
	})
	b := registerOld(t, cl, "received-value", old, map[string]any{
		"meta": map[string]any{"stage": "ingest", "stage_version": "0.9", "produced_at": produced},
		"document": map[string]any{"id": "d1", "tenant": "t1", "filename": "a.pdf", "content_type": "application/pdf",
			"size_bytes": int64(10), "sha256": "00", "blob": "sha256/00"},
		"received_at": produced,
	})
	var got events.DocumentReceived
	if err := codec.Decode(ctx, b, &got); err != nil {
		t.Fatalf("decode old record: %v", err)
	}
	want := events.DocumentReceived{
		Meta: events.Meta{Stage: "ingest", StageVersion: "0.9", ProducedAt: produced, Run: 1},
		Document: events.Document{ID: "d1", Tenant: "t1", Filename: "a.pdf", ContentType: "application/pdf",
			SizeBytes: 10, SHA256: "00", Blob: "sha256/00", Source: "upload"},
		ReceivedAt: produced,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("old record decoded as\n%+v\nwant\n%+v", got, want)
	}

	// text_extracted before pages had text_ref and needs_ocr: the defaults
	// must fill in inside every array item.
	oldText := editSchema(t, "text_extracted", func(root map[string]any) {
		dropField(record(root, "pages"), "text_ref")
		dropField(record(root, "pages"), "needs_ocr")
	})
	page := func(n int32) map[string]any {
		return map[string]any{"number": n, "text": "t", "method": "ocr", "confidence": 0.5}
	}
	b = registerOld(t, cl, "text-value", oldText, map[string]any{
		"meta":       map[string]any{"stage": "extract", "stage_version": "0.9", "produced_at": produced, "traceparent": "", "run": int32(1)},
		"document":   map[string]any{"id": "d1", "tenant": "t1", "filename": "a.pdf", "content_type": "application/pdf", "size_bytes": int64(10), "sha256": "00", "blob": "b"},
		"page_count": int32(2), "language": "it", "pages": []any{page(1), page(2)},
	})
	var text events.TextExtracted
	if err := codec.Decode(ctx, b, &text); err != nil {
		t.Fatalf("decode old text record: %v", err)
	}
	wantPage := events.Page{Number: 2, Text: "t", Method: events.MethodOCR, Confidence: 0.5}
	if len(text.Pages) != 2 || text.Pages[1] != wantPage {
		t.Fatalf("old pages decoded as %+v", text.Pages)
	}
}

// Defaults that are not zero values, inside array items: document_classified
// before fields carried their position.
func TestEvolutionDefaultsInArrayItems(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	old := editSchema(t, "document_classified", func(root map[string]any) {
		for _, f := range []string{"section_index", "start", "end"} {
			dropField(record(root, "fields"), f)
		}
	})
	b := registerOld(t, cl, "classified-value", old, map[string]any{
		"meta":       map[string]any{"stage": "classify", "stage_version": "1", "produced_at": produced, "traceparent": "", "run": int32(1)},
		"document":   map[string]any{"id": "d1", "tenant": "t1", "filename": "a.pdf", "content_type": "application/pdf", "size_bytes": int64(10), "sha256": "00", "blob": "b", "source": "upload", "sender": "", "subject": "", "parent_id": ""},
		"page_count": int32(1), "category": "rc_auto", "confidence": 0.5, "needs_review": false, "provider": "rules",
		"fields":   []any{map[string]any{"name": "targa", "value": "AB123CD", "page": int32(1)}},
		"feedback": []any{},
	})
	var got events.DocumentClassified
	if err := codec.Decode(ctx, b, &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := []events.Field{{Name: "targa", Value: "AB123CD", Page: 1, SectionIndex: -1, Start: -1, End: -1}}
	if !reflect.DeepEqual(got.Fields, want) {
		t.Fatalf("fields decoded as %+v, want %+v", got.Fields, want)
	}
}

func TestEvolutionNewerWriter(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	// A newer writer: an extra top-level field, an extra nested field, an
	// enum symbol this reader does not know, and size_bytes still an int
	// in one place (promoted to long).
	newer := editSchema(t, "sections_analyzed", func(root map[string]any) {
		addField(root, map[string]any{"name": "model", "type": "string", "default": ""})
		fb := record(root, "feedback")
		addField(fb, map[string]any{"name": "score", "type": "double", "default": 0})
		for _, f := range fb["fields"].([]any) {
			if f := f.(map[string]any); f["name"] == "severity" {
				enum := f["type"].(map[string]any)
				enum["symbols"] = append(enum["symbols"].([]any), "critical")
			}
		}
	})
	newer = strings.Replace(newer, `{"name":"size_bytes","type":"long"}`, `{"name":"size_bytes","type":"int"}`, 1)
	item := func(sev string) map[string]any {
		return map[string]any{"id": "f", "section_index": int32(0), "type": "x", "severity": sev,
			"message": "m", "suggestion": "", "quote": "", "score": 0.7}
	}
	b := registerOld(t, cl, "analyzed-value", newer, map[string]any{
		"meta":       map[string]any{"stage": "analyze", "stage_version": "2.0", "produced_at": produced, "traceparent": "tp", "run": int32(3)},
		"document":   map[string]any{"id": "d1", "tenant": "t1", "filename": "a.pdf", "content_type": "application/pdf", "size_bytes": int32(99), "sha256": "00", "blob": "b", "source": "imap", "sender": "", "subject": "", "parent_id": ""},
		"page_count": int32(1), "language": "it", "sections": []any{}, "provider": "llm", "model": "m-1",
		"feedback": []any{item("high"), item("critical")},
	})
	var got events.SectionsAnalyzed
	if err := codec.Decode(ctx, b, &got); err != nil {
		t.Fatalf("decode newer record: %v", err)
	}
	if got.Document.SizeBytes != 99 || got.Provider != "llm" || got.Meta.Run != 3 || len(got.Feedback) != 2 {
		t.Fatalf("newer record decoded as %+v", got)
	}
	// "critical" is unknown here and falls back to the enum default.
	if got.Feedback[0].Severity != events.SeverityHigh || got.Feedback[1].Severity != events.SeverityLow {
		t.Fatalf("severities %q %q", got.Feedback[0].Severity, got.Feedback[1].Severity)
	}
}

func TestBadRecords(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	good, err := codec.Encode(ctx, "r", allEvents()[0])
	if err != nil {
		t.Fatal(err)
	}
	// A writer that lacks a field the reader needs and has no default for.
	incompatible := editSchema(t, "document_received", func(root map[string]any) { dropField(root, "received_at") })
	noReceivedAt := registerOld(t, cl, "other-value", incompatible, map[string]any{
		"meta":     map[string]any{"stage": "s", "stage_version": "v", "produced_at": produced, "traceparent": "", "run": int32(1)},
		"document": map[string]any{"id": "d", "tenant": "t", "filename": "f", "content_type": "c", "size_bytes": int64(1), "sha256": "s", "blob": "b"},
	})
	tests := map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("not avro at all"),
		"bad magic":      append([]byte{1}, good[1:]...),
		"unknown id":     append([]byte{0, 0, 0, 0x27, 0x0f}, good[5:]...),
		"truncated":      good[:len(good)-4],
		"trailing bytes": append(slices.Clone(good), 1, 2, 3),
		"incompatible":   noReceivedAt,
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			var ev events.DocumentReceived
			err := codec.Decode(ctx, b, &ev)
			if !errors.Is(err, schemas.ErrBadRecord) {
				t.Fatalf("want ErrBadRecord, got %v", err)
			}
		})
	}
	// An invalid enum value cannot be encoded.
	bad := &events.TextExtracted{Pages: []events.Page{{Method: "telepathy"}}}
	if _, err := codec.Encode(ctx, "t", bad); !errors.Is(err, schemas.ErrBadRecord) {
		t.Fatalf("encode invalid enum: want ErrBadRecord, got %v", err)
	}
}

func TestRegistryDownIsTransient(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close() // nothing listens there any more
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	codec := schemas.NewCodec(cl)
	ctx := ctxT(t)
	if _, err := codec.Encode(ctx, "t", allEvents()[0]); err == nil || errors.Is(err, schemas.ErrBadRecord) {
		t.Fatalf("encode without registry: want transient error, got %v", err)
	}
	var ev events.DocumentReceived
	err = codec.Decode(ctx, []byte{0, 0, 0, 0, 1, 2}, &ev)
	if err == nil || errors.Is(err, schemas.ErrBadRecord) {
		t.Fatalf("decode without registry: want transient error, got %v", err)
	}
}

func TestRegisterAll(t *testing.T) {
	ctx := ctxT(t)
	codec, cl := newCodec(t)
	topics := map[string]events.Event{}
	var want []string
	for _, ev := range allEvents() {
		topics["prismflow."+ev.SchemaName()] = ev
		want = append(want, "prismflow."+ev.SchemaName()+"-value")
	}
	if err := codec.RegisterAll(ctx, topics); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	got, err := cl.Subjects(ctx)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("subjects %v %v, want %v", got, err, want)
	}
}

func BenchmarkCodec(b *testing.B) {
	ctx := context.Background()
	codec, _ := newCodec(b)
	for _, ev := range []events.Event{allEvents()[0], allEvents()[4]} {
		rec, err := codec.Encode(ctx, "bench."+ev.SchemaName(), ev)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("Encode/"+ev.SchemaName(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Encode(ctx, "bench."+ev.SchemaName(), ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Decode/"+ev.SchemaName(), func(b *testing.B) {
			b.ReportAllocs()
			into := reflect.New(reflect.TypeOf(ev).Elem()).Interface().(events.Event)
			for b.Loop() {
				if err := codec.Decode(ctx, rec, into); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestRewriteChangesOnlyWhatItEdits(t *testing.T) {
	codec, _ := newCodec(t)
	ctx := ctxT(t)
	in := allEvents()[1].(*events.TextExtracted)
	in.Meta.Run = 1
	b, err := codec.Encode(ctx, "rewrite-topic", in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := codec.Rewrite(ctx, b, func(rec map[string]any) error {
		rec["meta"].(map[string]any)["run"] = int32(2)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[:5], b[:5]) {
		t.Errorf("rewrite changed the schema id: % x -> % x", b[:5], out[:5])
	}
	var got events.TextExtracted
	if err := codec.Decode(ctx, out, &got); err != nil {
		t.Fatal(err)
	}
	want := *in
	want.Meta.Run = 2
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rewritten event = %+v\nwant %+v", got, want)
	}
	if _, err := codec.Rewrite(ctx, []byte("not avro"), func(map[string]any) error { return nil }); !errors.Is(err, schemas.ErrBadRecord) {
		t.Errorf("garbage: err = %v, want ErrBadRecord", err)
	}
}
