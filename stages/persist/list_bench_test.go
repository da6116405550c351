package persist_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"prismflow/stages/persist"
	"prismflow/stages/persist/persisttest"
)

// BenchmarkListDocuments100k measures the listing the inbox and
// GET /v1/documents make, at 100,000 documents of one tenant: each
// sub-benchmark reports its p50 and p95 latency in milliseconds (goal:
// p95 < 100 ms). Run with
//
//	go test ./stages/persist/ -run '^$' -bench ListDocuments100k -benchtime 200x
func BenchmarkListDocuments100k(b *testing.B) {
	store := persisttest.Store100k(b)
	ctx := context.Background()

	deep := persisttest.DeepCursor(b, store)
	// A field value only one document has (a VAT number).
	var rare persisttest.Document
	for i := 4242; len(rare.Fields) == 0; i++ {
		rare = persisttest.Nth(persisttest.BenchTenant, i)
	}
	month := persisttest.Epoch.Add(-persisttest.Span / 3)

	for _, c := range []struct {
		name string
		q    persist.ListQuery
	}{
		{"first-page", persist.ListQuery{Tenant: persisttest.BenchTenant}},
		{"first-page-all-tenants", persist.ListQuery{}},
		{"deep-page", persist.ListQuery{Tenant: persisttest.BenchTenant, Cursor: deep}},
		{"status", persist.ListQuery{Tenant: persisttest.BenchTenant, Status: persist.StatusFailed}},
		{"category", persist.ListQuery{Tenant: persisttest.BenchTenant, Category: "Rischi Tecnologici"}},
		{"status-category", persist.ListQuery{Tenant: persisttest.BenchTenant, Status: persist.StatusDone, Category: "Rischi Tecnologici"}},
		{"date-range", persist.ListQuery{Tenant: persisttest.BenchTenant, Since: month.Add(-7 * 24 * time.Hour), Until: month}},
		{"search-common", persist.ListQuery{Tenant: persisttest.BenchTenant, Query: "rossi"}},
		{"search-rare-field", persist.ListQuery{Tenant: persisttest.BenchTenant, Query: rare.Fields[0][1]}},
		{"search-none", persist.ListQuery{Tenant: persisttest.BenchTenant, Query: "nessun-documento-dice-questo"}},
		// Too short for trigrams, matching nothing: the worst case, every
		// row of the tenant checked.
		// Common overall, absent under the filter (only done documents
		// have fields): no order walk ends early.
		{"search-absent-in-filter", persist.ListQuery{Tenant: persisttest.BenchTenant, Query: "fotovoltaico", Status: persist.StatusFailed}},
		{"search-status-category", persist.ListQuery{Tenant: persisttest.BenchTenant, Query: "trasporti", Status: persist.StatusDone, Category: "Flotta Auto"}},
		{"search-date-range", persist.ListQuery{Tenant: persisttest.BenchTenant, Query: "preventivo", Since: month.Add(-7 * 24 * time.Hour), Until: month}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if page, _, err := store.ListDocuments(ctx, c.q); err != nil {
				b.Fatal(err)
			} else if len(page) == 0 && !strings.Contains(c.name, "none") && !strings.Contains(c.name, "absent") {
				b.Fatalf("%s: empty page", c.name)
			}
			persisttest.ReportLatency(b, func() {
				if _, _, err := store.ListDocuments(ctx, c.q); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
