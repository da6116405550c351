package analyze

import (
	"context"
	"strings"
	"testing"
	"time"

	"prismflow/schemas/events"
	"prismflow/stages/internal/corpus"
)

func analyzeCorpus(t *testing.T, items []corpus.Item, now time.Time) map[string][]events.FeedbackItem {
	t.Helper()
	a := &Analyzer{Provider: NewRules(func() time.Time { return now })}
	out := map[string][]events.FeedbackItem{}
	for _, it := range items {
		res, err := a.Handle(context.Background(), events.SectionsSplit{Document: it.In.Document, Language: "it", Sections: it.In.Sections})
		if err != nil {
			t.Fatalf("%s: %v", it.ID, err)
		}
		out[it.ID] = res.Feedback
	}
	return out
}

// The development requests are well formed and were sent in October and
// November 2026: judged on a day of that period, the rules must not
// raise a single high-severity alarm on them.
func TestCorpusPrecision(t *testing.T) {
	items := corpus.Load(t)
	var n int
	for id, fb := range analyzeCorpus(t, items, time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)) {
		for _, f := range fb {
			n++
			t.Logf("%s section %d: %s/%s %q", id, f.SectionIndex, f.Type, f.Severity, f.Quote)
			if f.Severity == events.SeverityHigh {
				t.Errorf("%s: high-severity %s on a well-formed request: %s", id, f.Type, f.Message)
			}
		}
	}
	t.Logf("%d items over %d requests", n, len(items))
}

// Judged a year later, every requested start date is in the past: the
// rules must see the decorrenza of every request that states one.
func TestCorpusStartDatesRecall(t *testing.T) {
	items := corpus.Load(t)
	feedback := analyzeCorpus(t, items, time.Date(2027, 12, 1, 9, 0, 0, 0, time.UTC))
	var want, found int
	for _, it := range items {
		iso, ok := it.Fields["decorrenza"]
		if !ok {
			continue
		}
		want++
		hit := false
		for _, f := range feedback[it.ID] {
			if f.Type == TypeDateInPast && f.Severity == events.SeverityHigh && strings.Contains(f.Message, "decorrenza") {
				hit = true
			}
		}
		if hit {
			found++
		} else {
			t.Logf("%s: decorrenza %s not flagged", it.ID, iso)
		}
	}
	t.Logf("start dates flagged: %d/%d", found, want)
	if found < want*9/10 {
		t.Fatalf("only %d of %d past start dates flagged", found, want)
	}
}
