package persist

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
)

// storeDoc writes a document the way the pipeline does: received, then
// classified with fields (nil fields: not classified yet).
func storeDoc(t *testing.T, p *Persister, d events.Document, run int32, at time.Time, category string, fields []events.Field) {
	t.Helper()
	ctx := context.Background()
	m := events.Meta{Stage: "ingest", ProducedAt: at, Run: run}
	if err := p.Received(ctx, events.DocumentReceived{Meta: m, Document: d, ReceivedAt: at}); err != nil {
		t.Fatalf("received %s: %v", d.ID, err)
	}
	if fields == nil {
		return
	}
	m.Stage, m.ProducedAt = "classify", at.Add(time.Minute)
	if err := p.Classified(ctx, events.DocumentClassified{Meta: m, Document: d, PageCount: 1, Category: category,
		Confidence: 0.8, Provider: "rules", Fields: fields}); err != nil {
		t.Fatalf("classified %s: %v", d.ID, err)
	}
}

func TestCorrect(t *testing.T) {
	s, _ := openStore(t)
	p := &Persister{Store: s}
	run(t, p, pipelineEvents("doc-1", "acme", 1)...)
	run(t, p, pipelineEvents("doc-other", "globex", 1)...)
	ctx := context.Background()

	for _, c := range []struct {
		name    string
		tenant  string
		doc     string
		in      CorrectionView
		want    CorrectionView // Actor, At not compared
		wantErr func(error) bool
	}{
		{name: "category keeps the pipeline's", tenant: "acme", doc: "doc-1",
			in:   CorrectionView{Field: "category", Value: "liability", Original: "ignored", Run: 9, Actor: "anna"},
			want: CorrectionView{Field: "category", Original: "property", Value: "liability", Run: 1, Actor: "anna"}},
		{name: "field keeps its first occurrence", tenant: "acme", doc: "doc-1",
			in:   CorrectionView{Field: "policy_holder", Value: "Mario Rossi S.r.l.", Actor: "anna"},
			want: CorrectionView{Field: "policy_holder", Original: "Mario Rossi", Value: "Mario Rossi S.r.l.", Run: 1, Actor: "anna"}},
		{name: "field the pipeline missed", tenant: "", doc: "doc-1",
			in:   CorrectionView{Field: "vat_number", Value: "01234567890", Actor: "luca"},
			want: CorrectionView{Field: "vat_number", Original: "", Value: "01234567890", Run: 1, Actor: "luca"}},
		{name: "field cleared", tenant: "acme", doc: "doc-1",
			in:   CorrectionView{Field: "limit", Value: "", Actor: "luca"},
			want: CorrectionView{Field: "limit", Original: "100.000 EUR", Value: "", Run: 1, Actor: "luca"}},
		{name: "other tenant", tenant: "acme", doc: "doc-other", in: CorrectionView{Field: "category", Value: "x"},
			wantErr: func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{name: "unknown document", tenant: "", doc: "nope", in: CorrectionView{Field: "category", Value: "x"},
			wantErr: func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{name: "empty field", tenant: "acme", doc: "doc-1", in: CorrectionView{Value: "x"}, wantErr: pipeline.IsPermanent},
		{name: "field name with markup", tenant: "acme", doc: "doc-1", in: CorrectionView{Field: "<b>x</b>", Value: "x"},
			wantErr: pipeline.IsPermanent},
		{name: "empty category", tenant: "acme", doc: "doc-1", in: CorrectionView{Field: "category", Value: ""},
			wantErr: pipeline.IsPermanent},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Correct(ctx, c.tenant, c.doc, c.in)
			if c.wantErr != nil {
				if err == nil || !c.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.At.IsZero() {
				t.Error("no correction time")
			}
			got.At = time.Time{}
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}

	// A second category correction replaces the first in the view, and
	// moves to the end (oldest first by the newest correction).
	if _, err := s.Correct(ctx, "acme", "doc-1", CorrectionView{Field: "category", Value: "fleet", Actor: "marco"}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, c := range v.Corrections {
		fields = append(fields, c.Field+"="+c.Value)
	}
	if want := []string{"policy_holder=Mario Rossi S.r.l.", "vat_number=01234567890", "limit=", "category=fleet"}; !slices.Equal(fields, want) {
		t.Errorf("corrections %v, want %v", fields, want)
	}
	if v.Corrections[3].Original != "property" || v.Corrections[3].Actor != "marco" {
		t.Errorf("category correction %+v", v.Corrections[3])
	}
	if v.Category != "property" {
		t.Errorf("document category %q: a correction must not rewrite the pipeline's answer", v.Category)
	}

	// A replay keeps the corrections, and a correction on the new run
	// records that run and its value.
	run(t, p, pipelineEvents("doc-1", "acme", 2)...)
	v, err = s.Document(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Corrections) != 4 || v.Corrections[0].Run != 1 {
		t.Fatalf("corrections after replay: %+v", v.Corrections)
	}
	c, err := s.Correct(ctx, "acme", "doc-1", CorrectionView{Field: "category", Value: "property"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Run != 2 || c.Original != "property" {
		t.Errorf("correction on run 2: %+v", c)
	}
	// Every view of a run shows the document's corrections.
	if old, err := s.DocumentRun(ctx, "acme", "doc-1", 1); err != nil || len(old.Corrections) != 4 {
		t.Errorf("run 1 view: %v, %+v", err, old.Corrections)
	}
	other, err := s.Document(ctx, "", "doc-other")
	if err != nil || other.Corrections == nil || len(other.Corrections) != 0 {
		t.Errorf("uncorrected document: %v, %#v", err, other.Corrections)
	}
}

func TestChat(t *testing.T) {
	s, _ := openStore(t)
	p := &Persister{Store: s}
	run(t, p, pipelineEvents("doc-1", "acme", 1)...)
	run(t, p, pipelineEvents("doc-2", "acme", 1)...)
	run(t, p, pipelineEvents("doc-other", "globex", 1)...)
	ctx := context.Background()

	if h, err := s.ChatHistory(ctx, "acme", "doc-1"); err != nil || h == nil || len(h) != 0 {
		t.Fatalf("empty history: %v, %#v", err, h)
	}
	q, err := s.AddChatMessage(ctx, "acme", "doc-1", ChatMessage{Role: RoleQuestion, Text: "Qual è il massimale?", Actor: "anna"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.AddChatMessage(ctx, "", "doc-1", ChatMessage{Role: RoleAnswer, Text: "Il massimale è 100.000 EUR.",
		Citations: []ChatCitation{{Section: 1, Quote: "massimale 100.000 EUR"}}, Grounding: "retrieval", Provider: "rules"})
	if err != nil {
		t.Fatal(err)
	}
	if q.ID == 0 || a.ID <= q.ID || q.At.IsZero() || a.At.Before(q.At) {
		t.Fatalf("ids/times: %+v %+v", q, a)
	}
	if _, err := s.AddChatMessage(ctx, "acme", "doc-2", ChatMessage{Role: RoleQuestion, Text: "Altro documento"}); err != nil {
		t.Fatal(err)
	}
	h, err := s.ChatHistory(ctx, "acme", "doc-1")
	if err != nil {
		t.Fatal(err)
	}
	q.Citations = []ChatCitation{} // stored as an empty list
	if want := []ChatMessage{q, a}; !reflect.DeepEqual(normTimes(h), normTimes(want)) {
		t.Errorf("history\n got %+v\nwant %+v", h, want)
	}

	for _, c := range []struct {
		name    string
		tenant  string
		doc     string
		m       ChatMessage
		wantErr func(error) bool
	}{
		{"other tenant", "acme", "doc-other", ChatMessage{Role: RoleQuestion, Text: "?"}, func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{"unknown document", "", "nope", ChatMessage{Role: RoleQuestion, Text: "?"}, func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{"unknown role", "acme", "doc-1", ChatMessage{Role: "system", Text: "?"}, pipeline.IsPermanent},
		{"empty text", "acme", "doc-1", ChatMessage{Role: RoleQuestion, Text: "\x00"}, pipeline.IsPermanent},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.AddChatMessage(ctx, c.tenant, c.doc, c.m); err == nil || !c.wantErr(err) {
				t.Errorf("err = %v", err)
			}
		})
	}
	if _, err := s.ChatHistory(ctx, "acme", "doc-other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("other tenant's history: %v", err)
	}
}

// normTimes makes times comparable with == after a database round trip.
func normTimes(ms []ChatMessage) []ChatMessage {
	out := slices.Clone(ms)
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out
}

func TestSummary(t *testing.T) {
	s, _ := openStore(t)
	p := &Persister{Store: s}
	run(t, p, pipelineEvents("doc-1", "acme", 1)...)
	ctx := context.Background()
	list, _, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme"})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %d", err, len(list))
	}
	for _, tenant := range []string{"acme", ""} {
		got, err := s.Summary(ctx, tenant, "doc-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, list[0]) {
			t.Errorf("tenant %q: summary %+v\nlisting %+v", tenant, got, list[0])
		}
	}
	for _, c := range []struct{ tenant, id string }{{"globex", "doc-1"}, {"", "nope"}} {
		if _, err := s.Summary(ctx, c.tenant, c.id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestListSearchAndDates(t *testing.T) {
	s, _ := openStore(t)
	p := &Persister{Store: s}
	ctx := context.Background()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	doc := func(id, tenant, filename, sender, subject string) events.Document {
		return events.Document{ID: id, Tenant: tenant, Filename: filename, Sender: sender, Subject: subject, Source: "upload"}
	}
	storeDoc(t, p, doc("fleet", "acme", "Libro_Matricola.xlsx", "mario@rossi-trasporti.it", "Rinnovo flotta"), 1, day,
		"Flotta Auto", []events.Field{{Name: "targa", Value: "GM123AB"}, {Name: "partita_iva", Value: "01234567890"}})
	storeDoc(t, p, doc("house", "acme", "visura.pdf", "anna@verdi.it", "Fabbricato via Po"), 1, day.Add(24*time.Hour),
		"Fabbricato", []events.Field{{Name: "superficie_mq", Value: "1200"}})
	storeDoc(t, p, doc("pending", "acme", "scansione_100%_a.pdf", "", "Sconto 50_percento"), 1, day.Add(48*time.Hour), "", nil)
	storeDoc(t, p, doc("theirs", "globex", "Libro_Matricola.xlsx", "mario@rossi-trasporti.it", "Rinnovo flotta"), 1, day,
		"Flotta Auto", []events.Field{{Name: "targa", Value: "GM123AB"}})
	if _, err := s.Correct(ctx, "acme", "house", CorrectionView{Field: "superficie_mq", Value: "1350"}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		q    ListQuery
		want []string
	}{
		{"filename, any case", ListQuery{Tenant: "acme", Query: "libro_matricola"}, []string{"fleet"}},
		{"sender", ListQuery{Tenant: "acme", Query: "ROSSI-TRASP"}, []string{"fleet"}},
		{"subject", ListQuery{Tenant: "acme", Query: "via po"}, []string{"house"}},
		{"field value", ListQuery{Tenant: "acme", Query: "gm123ab"}, []string{"fleet"}},
		{"pipeline's value stays searchable", ListQuery{Tenant: "acme", Query: "1200"}, []string{"house"}},
		{"corrected value", ListQuery{Tenant: "acme", Query: "1350"}, []string{"house"}},
		{"percent is literal", ListQuery{Tenant: "acme", Query: "100%_"}, []string{"pending"}},
		{"underscore is literal", ListQuery{Tenant: "acme", Query: "0_p"}, []string{"pending"}},
		{"underscore does not match any character", ListQuery{Tenant: "acme", Query: "ro_si"}, nil},
		{"surrounding blanks ignored", ListQuery{Tenant: "acme", Query: "  visura  "}, []string{"house"}},
		{"all tenants (same time: id descending)", ListQuery{Query: "gm123ab"}, []string{"theirs", "fleet"}},
		{"other tenant's documents stay hidden", ListQuery{Tenant: "globex", Query: "visura"}, nil},
		{"no match", ListQuery{Tenant: "acme", Query: "nessuno"}, nil},
		{"search and category", ListQuery{Tenant: "acme", Query: "via", Category: "Fabbricato"}, []string{"house"}},
		{"search and status", ListQuery{Tenant: "acme", Query: ".pdf", Status: StatusProcessing}, []string{"pending", "house"}},
		{"until is exclusive", ListQuery{Tenant: "acme", Until: day.Add(24 * time.Hour)}, []string{"fleet"}},
		{"since..until", ListQuery{Tenant: "acme", Since: day.Add(time.Hour), Until: day.Add(72 * time.Hour)}, []string{"pending", "house"}},
		{"search within dates", ListQuery{Tenant: "acme", Query: ".it", Since: day, Until: day.Add(25 * time.Hour)}, []string{"house", "fleet"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			page, _, err := s.ListDocuments(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range page {
				got = append(got, d.ID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}

	// Search pages by cursor like any listing.
	first, next, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Query: ".pdf", Limit: 1})
	if err != nil || len(first) != 1 || first[0].ID != "pending" || next == "" {
		t.Fatalf("first page: %v %+v %q", err, first, next)
	}
	rest, next, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Query: ".pdf", Limit: 1, Cursor: next})
	if err != nil || len(rest) != 1 || rest[0].ID != "house" || next != "" {
		t.Fatalf("second page: %v %+v %q", err, rest, next)
	}

	// Shorter terms would scan every document: refused as bad input.
	if _, _, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Query: " po "}); !pipeline.IsPermanent(err) {
		t.Errorf("a two-character search: %v, want a permanent error", err)
	}

	// A replay hides nothing while its classify has not run yet: the
	// newest run that has fields is searched.
	storeDoc(t, p, doc("fleet", "acme", "", "", ""), 2, day.Add(96*time.Hour), "", nil)
	if page, _, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Query: "GM123AB"}); err != nil || len(page) != 1 {
		t.Errorf("search during replay: %v, %+v", err, page)
	}
	storeDoc(t, p, doc("fleet", "acme", "", "", ""), 2, day.Add(96*time.Hour), "Flotta Auto", []events.Field{{Name: "targa", Value: "FX987ZZ"}})
	for q, want := range map[string]int{"GM123AB": 0, "fx987": 1, "libro": 1} {
		if page, _, err := s.ListDocuments(ctx, ListQuery{Tenant: "acme", Query: q}); err != nil || len(page) != want {
			t.Errorf("search %q after the replay classified: %v, %d documents, want %d", q, err, len(page), want)
		}
	}
}

func TestTextSearchIndexed(t *testing.T) {
	s, _ := openStore(t)
	ok, err := s.TextSearchIndexed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// pg_trgm is part of every PostgreSQL package this project installs
	// (ops/install-deps.sh); without it the search works unindexed.
	if !ok {
		t.Error("no trigram index: is PostgreSQL's contrib (pg_trgm) installed?")
	}
}

func TestLabelledCorrections(t *testing.T) {
	s, _ := openStore(t)
	p := &Persister{Store: s}
	run(t, p, pipelineEvents("doc-1", "acme", 1)...)
	run(t, p, pipelineEvents("doc-2", "acme", 1)...)
	run(t, p, pipelineEvents("doc-3", "globex", 1)...)
	ctx := context.Background()
	for _, c := range []struct {
		doc string
		c   CorrectionView
	}{
		{"doc-1", CorrectionView{Field: "category", Value: "liability"}},
		{"doc-1", CorrectionView{Field: "category", Value: "fleet"}},
		{"doc-1", CorrectionView{Field: "limit", Value: ""}},
		{"doc-1", CorrectionView{Field: "vat_number", Value: "01234567890"}},
		{"doc-3", CorrectionView{Field: "policy_holder", Value: "Globex S.p.A."}},
	} {
		if _, err := s.Correct(ctx, "", c.doc, c.c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LabelledCorrections(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	text := "Rinnovo polizza\n\nContraente\nMario Rossi, via Roma 1\n\nGaranzie\nIncendio e furto massimale 100.000 EUR"
	want := []LabelledDocument{{ID: "doc-1", Tenant: "acme", Text: text, Category: "fleet",
		Fields: map[string]string{"policy_holder": "Mario Rossi", "vat_number": "01234567890"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("acme:\n got %+v\nwant %+v", got, want)
	}
	all, err := s.LabelledCorrections(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[1].ID != "doc-3" || all[1].Category != "property" || all[1].Fields["policy_holder"] != "Globex S.p.A." {
		t.Errorf("all tenants: %+v", all)
	}
}

// On a server without pg_trgm (no contrib, or a role that may not create
// extensions) the schema still migrates, search works unindexed, and
// TextSearchIndexed says so.
func TestSearchWithoutTrigramExtension(t *testing.T) {
	super := testenv.Postgres(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	// A trusted extension needs CREATE on the database; this role has
	// CREATE on the schema only, as an application role often does.
	role, password := "prismflow_nocontrib_"+strconv.FormatInt(time.Now().UnixNano(), 36), strconv.FormatUint(rand.Uint64(), 36)
	for _, sql := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD '` + password + `'`,
		`GRANT USAGE, CREATE ON SCHEMA public TO ` + role,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		// Roles outlive databases: drop what it owns, then the role.
		for _, sql := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := admin.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	var dsn string
	if u, err := url.Parse(super); err == nil && strings.HasPrefix(super, "postgres") {
		u.User = url.UserPassword(role, password)
		dsn = u.String()
	} else {
		dsn = super + " user=" + role + " password=" + password
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("migrating without pg_trgm: %v", err)
	}
	defer s.Close()
	if ok, err := s.TextSearchIndexed(ctx); err != nil || ok {
		t.Fatalf("TextSearchIndexed = %v, %v; want false", ok, err)
	}
	p := &Persister{Store: s}
	storeDoc(t, p, events.Document{ID: "a", Tenant: "acme", Filename: "Libro_Matricola.xlsx"}, 1, time.Now(), "Flotta Auto",
		[]events.Field{{Name: "targa", Value: "GM123AB"}})
	for q, want := range map[string]int{"matricola": 1, "gm123": 1, "nessuno": 0} {
		if page, _, err := s.ListDocuments(ctx, ListQuery{Query: q}); err != nil || len(page) != want {
			t.Errorf("search %q: %v, %d documents, want %d", q, err, len(page), want)
		}
	}
}
