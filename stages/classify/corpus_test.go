package classify

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"

	"prismflow/schemas/events"
	"prismflow/stages/internal/corpus"
)

func TestCorpusAccuracy(t *testing.T) {
	items := corpus.Load(t)
	c := &Classifier{}
	var correct, extra int
	type tally struct{ match, total int }
	perField := map[string]*tally{}
	for _, it := range items {
		out, err := c.Handle(context.Background(), it.In)
		if err != nil {
			t.Fatalf("%s: %v", it.ID, err)
		}
		if out.Category == it.Truth {
			correct++
		} else {
			t.Logf("%s: got %s (%.2f), want %s", it.ID, out.Category, out.Confidence, it.Truth)
		}
		got := map[string]events.Field{}
		for _, f := range out.Fields {
			got[f.Name] = f
			checkSpan(t, it.In, f)
		}
		for _, f := range out.Fields {
			if _, ok := it.Fields[f.Name]; !ok {
				extra++
				if testing.Verbose() {
					t.Logf("%s extra %s = %q", it.ID, f.Name, f.Value)
				}
			}
		}
		for name, want := range it.Fields {
			tl := perField[name]
			if tl == nil {
				tl = &tally{}
				perField[name] = tl
			}
			tl.total++
			if g, ok := got[name]; ok && g.Value == want {
				tl.match++
			} else if testing.Verbose() {
				t.Logf("%s %s: got %q, want %q", it.ID, name, got[name].Value, want)
			}
		}
	}
	acc := float64(correct) / float64(len(items))
	t.Logf("category accuracy %d/%d = %.2f", correct, len(items), acc)
	names := make([]string, 0, len(perField))
	for n := range perField {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("field %-22s exact %2d/%2d", n, perField[n].match, perField[n].total)
	}
	t.Logf("fields reported beyond the truth files: %d (truth lists only fields that apply and are stated)", extra)
	if acc < 0.8 {
		t.Fatalf("category accuracy %.2f < 0.80", acc)
	}
}

// checkSpan asserts the invariant every consumer relies on: a field's
// offsets point at text in its section that shows the value.
func checkSpan(t *testing.T, in events.SectionsAnalyzed, f events.Field) {
	t.Helper()
	if f.Start < 0 {
		return
	}
	var sec *events.Section
	for i := range in.Sections {
		if in.Sections[i].Index == f.SectionIndex {
			sec = &in.Sections[i]
		}
	}
	if sec == nil {
		t.Errorf("%s: field %s points at missing section %d", in.Document.ID, f.Name, f.SectionIndex)
		return
	}
	r := []rune(sec.Text)
	if f.Start > f.End || int(f.End) > len(r) {
		t.Errorf("%s: field %s span %d:%d out of range", in.Document.ID, f.Name, f.Start, f.End)
		return
	}
	if f.Page < sec.PageStart || (sec.PageEnd >= sec.PageStart && f.Page > sec.PageEnd) {
		t.Errorf("%s: field %s page %d outside section pages %d..%d", in.Document.ID, f.Name, f.Page, sec.PageStart, sec.PageEnd)
	}
	span := string(r[f.Start:f.End])
	norm := func(s string) string {
		return strings.ToLower(strings.Map(func(r rune) rune {
			if r == ' ' || r == '.' || r == '-' || r == '/' || r == '\t' || r == '\n' {
				return -1
			}
			return r
		}, s))
	}
	// Numbers and dates are normalised, names reordered: check what can
	// be checked cheaply.
	switch f.Name {
	case FieldEmail, FieldCodiceFiscale, FieldPartitaIVA, FieldTelefono, FieldProvincia, FieldCitta:
		if !bytes.Contains([]byte(norm(span)), []byte(norm(f.Value))) {
			t.Errorf("%s: field %s = %q but its span reads %q", in.Document.ID, f.Name, f.Value, span)
		}
	}
}
