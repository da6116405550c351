package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
	"prismflow/stages/classify"
	"prismflow/stages/persist"
)

// devCorpus is shared/corpus/insurance-dev beside the repository; the
// tests fail without it rather than skip, so CI cannot pass blind.
func devCorpus(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "corpus", "insurance-dev"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "0001", "truth.json")); err != nil {
		t.Fatalf("insurance-dev corpus missing (%v): shared/ must sit beside the repository", err)
	}
	return dir
}

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := rootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// train on part of the dev set plus a jsonl file, load the model through
// the configuration, and eval the whole dev set with it.
func TestTrainThenEval(t *testing.T) {
	corpus := devCorpus(t)
	data := t.TempDir()
	for _, id := range []string{"0001", "0002", "0007", "0011", "0013", "0017", "0019", "0021", "0023"} {
		copyDir(t, filepath.Join(corpus, id), filepath.Join(data, id))
	}
	jsonl := `{"category":"Altro","text":"Vi allego la quietanza di pagamento del premio della polizza infortuni."}` + "\n" +
		`{"category":"Flotta Auto","text":"Aggiungete il nuovo furgone targa GM123AB alla polizza flotta."}` + "\n"
	if err := os.WriteFile(filepath.Join(data, "mine.jsonl"), []byte(jsonl), 0o644); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "model.bin")
	out, err := runRoot(t, "train", "--data", data, "--out", model)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	// 9 items give at least 9 e-mail documents, plus attachments, plus 2 lines.
	if !strings.Contains(out, "wrote "+model) {
		t.Fatalf("train output: %s", out)
	}
	f, err := os.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	m, err := classify.LoadModel(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Categories()) != 5 {
		t.Fatalf("model categories %v", m.Categories())
	}

	t.Setenv("PRISMFLOW_CLASSIFY_MODEL", model)
	out, err = runRoot(t, "eval", "--json", corpus)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	var rep map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("eval --json printed %q: %v", out, err)
	}
	keys := make([]string, 0, len(rep))
	for k := range rep {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "accuracy,documents,field_exact_match,per_category" {
		t.Fatalf("eval --json keys %v", keys)
	}
	var r evalReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// 25 e-mails and every attachment with text.
	if r.Documents < 40 || r.Accuracy < 0.9 || len(r.PerCategory) < 5 {
		t.Fatalf("eval: %d documents, accuracy %.3f, %d categories", r.Documents, r.Accuracy, len(r.PerCategory))
	}
	if _, ok := r.FieldExactMatch["overall"]; !ok || r.FieldExactMatch["targhe"] == 0 {
		t.Fatalf("field_exact_match %v", r.FieldExactMatch)
	}
	t.Logf("eval with a model trained on 9 items: %d documents, accuracy %.3f, fields %.3f", r.Documents, r.Accuracy, r.FieldExactMatch["overall"])

	// The make eval gate: an unreachable bar fails the command.
	if _, err := runRoot(t, "eval", "--min-accuracy", "1.01", filepath.Join(data)); err == nil {
		t.Fatal("eval --min-accuracy 1.01 succeeded")
	}
}

func TestTrainErrors(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no data flag", []string{"train"}, "--data"},
		{"empty folder", []string{"train", "--data", empty, "--out", filepath.Join(empty, "m.bin")}, "no labelled documents"},
		{"eval of an empty folder", []string{"eval", empty}, "no item folders"},
	}
	for _, tt := range tests {
		out, err := runRoot(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v (output %q); want one containing %q", tt.name, err, out, tt.want)
		}
	}
	bad := filepath.Join(empty, "bad.bin")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := classify.Open("", bad, 0); err == nil {
		t.Error("classify.Open accepted a file that is not a model")
	}
}

// The scorer's arithmetic on a hand-made tally: precision is over what
// was predicted as the category, recall over what truly is; fields are
// scored once per item with the first document's value winning.
func TestScorer(t *testing.T) {
	doc := func(id, cat string, fields ...events.Field) events.DocumentClassified {
		return events.DocumentClassified{Document: events.Document{ID: id}, Category: cat, Fields: fields}
	}
	var s scorer
	s.add(labelledItem{ID: "1", Category: "A", Fields: map[string]string{"email": "a@x.it", "telefono": "02123"}}, []events.DocumentClassified{
		doc("1", "A", events.Field{Name: "email", Value: "a@x.it"}),
		doc("1/att", "B", events.Field{Name: "email", Value: "wrong@x.it"}, events.Field{Name: "telefono", Value: "02123"}),
	})
	s.add(labelledItem{ID: "2", Category: "B", Fields: map[string]string{"email": "b@x.it"}}, []events.DocumentClassified{doc("2", "B")})
	r := s.report()
	if r.Documents != 3 || math.Abs(r.Accuracy-2.0/3) > 1e-9 {
		t.Fatalf("documents %d accuracy %v", r.Documents, r.Accuracy)
	}
	want := map[string]categoryScore{"A": {Precision: 1, Recall: 0.5, Support: 2}, "B": {Precision: 0.5, Recall: 1, Support: 1}}
	for c, w := range want {
		if got := r.PerCategory[c]; math.Abs(got.Precision-w.Precision) > 1e-9 || math.Abs(got.Recall-w.Recall) > 1e-9 || got.Support != w.Support {
			t.Errorf("%s: %+v; want %+v", c, got, w)
		}
	}
	if r.FieldExactMatch["email"] != 0.5 || r.FieldExactMatch["telefono"] != 1 || math.Abs(r.FieldExactMatch["overall"]-2.0/3) > 1e-9 {
		t.Errorf("fields %v", r.FieldExactMatch)
	}
}

// corrected stores a classified document through the persist stage's
// own handlers, as the pipeline would, and returns what classify read.
func corrected(t *testing.T, p *persist.Persister, id, subject, text, category string) events.SectionsAnalyzed {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	doc := events.Document{ID: id, Tenant: "acme", Filename: id + ".pdf", Subject: subject, Source: "upload"}
	an := events.SectionsAnalyzed{Meta: events.Meta{Stage: "analyze", ProducedAt: at, Run: 1}, Document: doc, PageCount: 1,
		Language: "it", Provider: "rules", Sections: []events.Section{
			{Index: 0, Title: "Oggetto", Text: text, PageStart: 1, PageEnd: 1},
			{Index: 1, Title: "Note", Text: "Cordiali saluti", PageStart: 1, PageEnd: 1},
		}}
	if err := p.Analyzed(ctx, an); err != nil {
		t.Fatal(err)
	}
	if category != "" {
		if err := p.Classified(ctx, events.DocumentClassified{Meta: events.Meta{Stage: "classify", ProducedAt: at, Run: 1},
			Document: doc, PageCount: 1, Category: category, Confidence: 0.5, Provider: "rules",
			Fields: []events.Field{{Name: "partita_iva", Value: "01234567890"}}}); err != nil {
			t.Fatal(err)
		}
	}
	return an
}

// Reviewers' corrections are training data: the reviewer's category is
// the label, the text is exactly what classify reads, and a model trained
// with --corrections learns them.
func TestTrainOnCorrections(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	store, err := persist.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t.Setenv("PRISMFLOW_POSTGRES_DSN", dsn)
	out := filepath.Join(t.TempDir(), "model.bin")

	// Nothing corrected yet and no --data: nothing to train on.
	if msg, err := runRoot(t, "train", "--corrections", "--out", out); err == nil || !strings.Contains(err.Error(), "no corrected documents") {
		t.Fatalf("train on an empty database: %v\n%s", err, msg)
	}

	p := &persist.Persister{Store: store}
	// The pipeline filed a made-up kind of plant under "Altro"; reviewers
	// say it is a technological risk.
	plant := "Impianto zetatron quasar con turbina xylofonica e gruppo zetatron di riserva"
	var analyzed []events.SectionsAnalyzed
	for i := range 4 {
		an := corrected(t, p, fmt.Sprintf("plant-%d", i), "Copertura zetatron", plant, "Altro")
		analyzed = append(analyzed, an)
		if _, err := store.Correct(ctx, "acme", an.Document.ID, persist.CorrectionView{Field: "category", Value: "Rischi Tecnologici", Actor: "anna"}); err != nil {
			t.Fatal(err)
		}
	}
	// A field corrected, the category let stand: labelled with the
	// pipeline's category.
	fleet := corrected(t, p, "fleet", "Flotta", "Elenco veicoli della flotta aziendale", "Flotta Auto")
	if _, err := store.Correct(ctx, "acme", "fleet", persist.CorrectionView{Field: "partita_iva", Value: "09876543210"}); err != nil {
		t.Fatal(err)
	}
	// Never classified, no category given: no label, left out.
	corrected(t, p, "unlabelled", "Bozza", "Testo qualsiasi", "")
	if _, err := store.Correct(ctx, "acme", "unlabelled", persist.CorrectionView{Field: "partita_iva", Value: "1"}); err != nil {
		t.Fatal(err)
	}
	// Not corrected at all: not training data.
	corrected(t, p, "untouched", "Altro", "Richiesta generica", "Altro")

	ex, err := correctionExamples(ctx, store, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := []classify.Example{{Category: "Flotta Auto", Text: classify.DocumentText(fleet), Group: "correction:fleet"}}
	for _, an := range analyzed {
		want = append(want, classify.Example{Category: "Rischi Tecnologici", Text: classify.DocumentText(an), Group: "correction:" + an.Document.ID})
	}
	if !reflect.DeepEqual(ex, want) {
		t.Fatalf("examples\n got %+v\nwant %+v", ex, want)
	}
	if other, err := correctionExamples(ctx, store, "globex"); err != nil || len(other) != 0 {
		t.Fatalf("another tenant's examples: %v, %+v", err, other)
	}

	msg, err := runRoot(t, "train", "--corrections", "--tenant", "acme", "--out", out)
	if err != nil {
		t.Fatalf("train --corrections: %v\n%s", err, msg)
	}
	if !strings.Contains(msg, "5 corrected by reviewers") || !strings.Contains(msg, "wrote "+out) {
		t.Fatalf("train output: %s", msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := classify.LoadModel(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, conf, _ := m.Predict(classify.DocumentText(analyzed[0])); got != "Rischi Tecnologici" {
		t.Errorf("the model says %q (%.2f) for the corrected documents' text; the reviewers said Rischi Tecnologici", got, conf)
	}
}
