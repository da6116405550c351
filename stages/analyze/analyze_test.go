package analyze

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"prismflow/schemas/events"
)

// fakeProvider returns canned items per section and can hold calls at a
// gate to observe how many run at once.
type fakeProvider struct {
	items func(sec events.Section) []events.FeedbackItem
	err   error
	gate  chan struct{}

	mu       sync.Mutex
	inflight int
	max      int
}

func (f *fakeProvider) Name() string { return "fake" }

func (f *fakeProvider) Analyze(ctx context.Context, req Request) ([]events.FeedbackItem, error) {
	f.mu.Lock()
	f.inflight++
	f.max = max(f.max, f.inflight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil && req.Section.Index == 2 {
		return nil, f.err
	}
	return f.items(req.Section), nil
}

func sections(n int) []events.Section {
	secs := make([]events.Section, n)
	for i := range secs {
		secs[i] = events.Section{Index: int32(i), Title: fmt.Sprint("S", i), Text: fmt.Sprintf("Sezione %d: decorrenza 01/01/2020, firma assente", i)}
	}
	return secs
}

func TestAnalyzerVerifiesQuotesAndKeepsOrder(t *testing.T) {
	p := &fakeProvider{items: func(sec events.Section) []events.FeedbackItem {
		return []events.FeedbackItem{
			{Type: "date_in_past", Severity: events.SeverityHigh, Quote: "01/01/2020", Message: "m"},
			{Type: "invented", Severity: events.SeverityHigh, Quote: "testo che non c'è", Message: "m"},
			{Type: "no_quote", Severity: events.SeverityLow, Message: "m"},
			{Type: "bad_severity", Severity: "critical", Quote: "firma assente", Message: "m"},
			{Type: "date_in_past", Severity: events.SeverityHigh, Quote: "01/01/2020", Message: "duplicate"},
		}
	}}
	in := events.SectionsSplit{
		Document:  events.Document{ID: "doc-1", Filename: "a.pdf"},
		PageCount: 3, Language: "it", Sections: sections(9),
	}
	a := &Analyzer{Provider: p, Concurrency: 3}
	out, err := a.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Document != in.Document || out.PageCount != 3 || out.Language != "it" || len(out.Sections) != 9 || out.Provider != "fake" {
		t.Fatalf("envelope not copied: %+v", out)
	}
	if out.Meta != (events.Meta{}) {
		t.Fatalf("Meta must be left to the runtime, got %+v", out.Meta)
	}
	if len(out.Feedback) != 18 {
		t.Fatalf("want 2 verified items per section (18), got %d: %+v", len(out.Feedback), out.Feedback)
	}
	for i, it := range out.Feedback {
		if want := int32(i / 2); it.SectionIndex != want {
			t.Errorf("item %d has section %d; want %d (section order)", i, it.SectionIndex, want)
		}
		if it.Type == "invented" || it.Type == "no_quote" {
			t.Errorf("unverifiable item kept: %+v", it)
		}
		if it.Type == "bad_severity" && it.Severity != events.SeverityMedium {
			t.Errorf("unknown severity not normalised: %+v", it)
		}
		if want := ItemID("doc-1", it.SectionIndex, it.Type, it.Quote); it.ID != want || len(it.ID) != 32 {
			t.Errorf("item ID = %q; want %q", it.ID, want)
		}
	}
	again, err := a.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range out.Feedback {
		if out.Feedback[i].ID != again.Feedback[i].ID {
			t.Fatalf("IDs differ between runs: %q vs %q", out.Feedback[i].ID, again.Feedback[i].ID)
		}
	}
}

func TestItemIDDistinguishesFields(t *testing.T) {
	ids := map[string]bool{}
	for _, c := range [][4]string{{"d", "1", "t", "q"}, {"d", "1", "t", "q2"}, {"d", "2", "t", "q"}, {"d", "1", "t2", "q"}, {"d2", "1", "t", "q"}, {"d", "1", "tq", ""}} {
		var sec int32
		fmt.Sscan(c[1], &sec)
		ids[ItemID(c[0], sec, c[2], c[3])] = true
	}
	if len(ids) != 6 {
		t.Fatalf("want 6 distinct ids, got %d", len(ids))
	}
}

func TestAnalyzerConcurrencyLimit(t *testing.T) {
	const limit = 3
	p := &fakeProvider{gate: make(chan struct{}), items: func(events.Section) []events.FeedbackItem { return nil }}
	a := &Analyzer{Provider: p, Concurrency: limit}
	done := make(chan error, 1)
	go func() {
		_, err := a.Handle(context.Background(), events.SectionsSplit{Sections: sections(10)})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := p.inflight
		p.mu.Unlock()
		if n == limit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached %d sections in flight (have %d)", limit, n)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
	close(p.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.max != limit {
		t.Fatalf("max sections in flight = %d; want %d", p.max, limit)
	}
}

func TestAnalyzerProviderError(t *testing.T) {
	boom := errors.New("provider down")
	p := &fakeProvider{err: boom, items: func(events.Section) []events.FeedbackItem { return nil }}
	_, err := (&Analyzer{Provider: p}).Handle(context.Background(), events.SectionsSplit{Sections: sections(5)})
	if !errors.Is(err, boom) {
		t.Fatalf("want provider error, got %v", err)
	}
	if _, err := (&Analyzer{}).Handle(context.Background(), events.SectionsSplit{}); err == nil {
		t.Fatal("want error without provider")
	}
}

// A realistic, well-formed request must produce no feedback at all: the
// rules are tuned for precision.
func TestRulesCleanRequest(t *testing.T) {
	text := `Buongiorno,
vi inviamo l'elenco dei nostri 6 mezzi per la quotazione della polizza flotta con decorrenza 01/01/2027.
La polizza attuale scade il 31/12/2026.
Massimale RCA richiesto: EUR 10.000.000.
Valore commerciale (EUR)
GH461XW Iveco Daily 35S16 2021 32.000,00
Trasporti Bianchi S.r.l. - Via Roma 10, 20121 Milano (MI)
P.IVA 12345678903 - Tel. 02 1234567 - info@bianchi.example
Milano, 14/10/2026
Firma del legale rappresentante: Mario Bianchi`
	a := &Analyzer{Provider: NewRules(testNow)}
	out, err := a.Handle(context.Background(), events.SectionsSplit{Document: events.Document{ID: "x"}, Language: "it", Sections: []events.Section{{Index: 0, Text: text}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Feedback) != 0 {
		t.Fatalf("want no feedback on a clean request, got %+v", out.Feedback)
	}
	if out.Provider != "rules" {
		t.Fatalf("provider = %q", out.Provider)
	}
}
