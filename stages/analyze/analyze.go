package analyze

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"prismflow/schemas/events"
)

// DefaultConcurrency is how many sections are analyzed at once when
// Analyzer.Concurrency is zero.
const DefaultConcurrency = 4

// Request is what a provider gets for one section.
type Request struct {
	Document events.Document
	Language string // "it", "en", or "" when unknown (treated as Italian)
	Section  events.Section
	// Sections is the whole document, for checks that need context
	// beyond one section (is a P.IVA given anywhere?). Read only.
	Sections []events.Section
}

// Provider writes feedback for one section. The built-in "rules" provider
// is deterministic and offline; LLM providers implement the same
// interface. Providers need not set ID or SectionIndex: the Analyzer does.
type Provider interface {
	Name() string
	Analyze(ctx context.Context, req Request) ([]events.FeedbackItem, error)
}

// Analyzer runs a Provider over every section of a document.
type Analyzer struct {
	Provider    Provider
	Concurrency int // sections analyzed at once; default DefaultConcurrency
}

// Handle analyzes every section of in and returns the sections with their
// feedback. A provider error fails the whole document (and is retried by
// the runtime unless the provider marked it permanent), because partial
// feedback would look like a clean section to a reviewer.
func (a *Analyzer) Handle(ctx context.Context, in events.SectionsSplit) (events.SectionsAnalyzed, error) {
	if a.Provider == nil {
		return events.SectionsAnalyzed{}, errors.New("analyze: no provider configured")
	}
	limit := a.Concurrency
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	perSection := make([][]events.FeedbackItem, len(in.Sections))
	reports := make([]Report, len(in.Sections)) // from a Reporter only
	reporter, _ := a.Provider.(Reporter)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i, sec := range in.Sections {
		g.Go(func() error {
			req := Request{
				Document: in.Document,
				Language: in.Language,
				Section:  sec,
				Sections: in.Sections,
			}
			var items []events.FeedbackItem
			var err error
			if reporter != nil {
				reports[i], err = reporter.AnalyzeReport(gctx, req)
				items = reports[i].Items
			} else {
				items, err = a.Provider.Analyze(gctx, req)
			}
			if err != nil {
				return fmt.Errorf("analyze section %d with %s: %w", sec.Index, a.Provider.Name(), err)
			}
			perSection[i] = verify(in.Document.ID, sec, items)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return events.SectionsAnalyzed{}, err
	}
	out := events.SectionsAnalyzed{
		Document:  in.Document,
		PageCount: in.PageCount,
		Language:  in.Language,
		Sections:  in.Sections,
		Provider:  a.Provider.Name(),
		Feedback:  []events.FeedbackItem{},
	}
	if reporter != nil {
		out.Provider, out.LLM = summarize(a.Provider.Name(), reports)
	}
	for _, items := range perSection {
		out.Feedback = append(out.Feedback, items...)
	}
	return out, nil
}

// summarize names who wrote a document's feedback, every distinct
// provider in section order ("openai/gpt-4o-mini, rules (fallback from
// openai/gpt-4o-mini)") so a reviewer sees which feedback is the model's,
// and sums what the model used.
func summarize(name string, reports []Report) (string, *events.LLMUsage) {
	var names []string
	var u events.LLMUsage
	for _, r := range reports {
		if r.Provider != "" && !slices.Contains(names, r.Provider) {
			names = append(names, r.Provider)
		}
		switch {
		case r.Fallback:
			u.FallbackSections++
		case r.Cached:
			u.Sections++
			u.CachedSections++
		default:
			u.Sections++
		}
		u.InputTokens += r.InputTokens
		u.OutputTokens += r.OutputTokens
		u.CostUSD += r.CostUSD
		u.LatencyMS += r.Latency.Milliseconds()
	}
	if len(names) == 0 {
		return name, &u
	}
	return strings.Join(names, ", "), &u
}

// verify keeps the items whose quote is really in the section text, sets
// their section index and stable ID, and drops duplicates (two rules, or
// an LLM repeating itself, about the same span and type).
func verify(docID string, sec events.Section, items []events.FeedbackItem) []events.FeedbackItem {
	out := make([]events.FeedbackItem, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if it.Quote == "" || !strings.Contains(sec.Text, it.Quote) {
			continue
		}
		switch it.Severity {
		case events.SeverityLow, events.SeverityMedium, events.SeverityHigh:
		default:
			it.Severity = events.SeverityMedium
		}
		it.SectionIndex = sec.Index
		it.ID = ItemID(docID, sec.Index, it.Type, it.Quote)
		if seen[it.ID] {
			continue
		}
		seen[it.ID] = true
		out = append(out, it)
	}
	return out
}

// ItemID is the stable identity of a feedback item: the hex of the first
// 16 bytes of sha256 over its document, section, type and quote. Fields
// are length-prefixed so that no two different tuples hash the same text.
func ItemID(docID string, section int32, typ, quote string) string {
	h := sha256.New()
	for _, s := range []string{docID, fmt.Sprint(section), typ, quote} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
