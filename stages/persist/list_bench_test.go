package persist_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline/testenv"
	"prismflow/stages/persist"
	"prismflow/stages/persist/persisttest"
)

// BenchPostgresDSNEnv names a database the listing benchmark keeps its
// 100,000 documents in between runs (seeded on first use; the role needs
// no more than table rights once migrated). Unset, the benchmark seeds a
// fresh test database every run, which costs about a minute more.
const BenchPostgresDSNEnv = "PRISMFLOW_BENCH_POSTGRES_DSN"

// benchTenant is the marker tenant: a database that has its 100,000
// documents is seeded already.
const (
	benchTenant = "bench-100k"
	benchDocs   = 100_000
	otherTenant = "bench-other" // another tenant's documents interleave in every index
	otherDocs   = 20_000
)

// BenchmarkListDocuments100k measures the listing the inbox and
// GET /v1/documents make, at 100,000 documents of one tenant: each
// sub-benchmark reports its p50 and p95 latency in milliseconds (goal:
// p95 < 100 ms). Run with
//
//	go test ./stages/persist/ -run '^$' -bench ListDocuments100k -benchtime 200x
func BenchmarkListDocuments100k(b *testing.B) {
	dsn := os.Getenv(BenchPostgresDSNEnv)
	if dsn == "" {
		dsn = testenv.Postgres(b)
	}
	ctx := context.Background()
	store, err := persist.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	start := time.Now()
	persisttest.Seed(b, store, benchTenant, benchDocs)
	persisttest.Seed(b, store, otherTenant, otherDocs)
	b.Logf("seeded (or found) %d+%d documents in %v", benchDocs, otherDocs, time.Since(start).Round(time.Millisecond))

	// A cursor 90% down the tenant's documents: the page an offset-based
	// listing would be slowest at.
	q := persist.ListQuery{Tenant: benchTenant, Limit: 1000}
	for range benchDocs * 9 / 10 / q.Limit {
		_, next, err := store.ListDocuments(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if next == "" {
			b.Fatal("fewer documents than seeded")
		}
		q.Cursor = next
	}
	deep := q.Cursor
	// A field value only one document has (a VAT number).
	var rare persisttest.Document
	for i := 4242; len(rare.Fields) == 0; i++ {
		rare = persisttest.Nth(benchTenant, i)
	}
	month := persisttest.Epoch.Add(-persisttest.Span / 3)

	for _, c := range []struct {
		name string
		q    persist.ListQuery
	}{
		{"first-page", persist.ListQuery{Tenant: benchTenant}},
		{"first-page-all-tenants", persist.ListQuery{}},
		{"deep-page", persist.ListQuery{Tenant: benchTenant, Cursor: deep}},
		{"status", persist.ListQuery{Tenant: benchTenant, Status: persist.StatusFailed}},
		{"category", persist.ListQuery{Tenant: benchTenant, Category: "Rischi Tecnologici"}},
		{"status-category", persist.ListQuery{Tenant: benchTenant, Status: persist.StatusDone, Category: "Rischi Tecnologici"}},
		{"date-range", persist.ListQuery{Tenant: benchTenant, Since: month.Add(-7 * 24 * time.Hour), Until: month}},
		{"search-common", persist.ListQuery{Tenant: benchTenant, Query: "rossi"}},
		{"search-rare-field", persist.ListQuery{Tenant: benchTenant, Query: rare.Fields[0][1]}},
		{"search-none", persist.ListQuery{Tenant: benchTenant, Query: "nessun-documento-dice-questo"}},
		// Too short for trigrams, matching nothing: the worst case, every
		// row of the tenant checked.
		{"search-short-none", persist.ListQuery{Tenant: benchTenant, Query: "qj"}},
		// Common overall, absent under the filter (only done documents
		// have fields): no order walk ends early.
		{"search-absent-in-filter", persist.ListQuery{Tenant: benchTenant, Query: "fotovoltaico", Status: persist.StatusFailed}},
		{"search-status-category", persist.ListQuery{Tenant: benchTenant, Query: "trasporti", Status: persist.StatusDone, Category: "Flotta Auto"}},
		{"search-date-range", persist.ListQuery{Tenant: benchTenant, Query: "preventivo", Since: month.Add(-7 * 24 * time.Hour), Until: month}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if page, _, err := store.ListDocuments(ctx, c.q); err != nil {
				b.Fatal(err)
			} else if len(page) == 0 && !strings.Contains(c.name, "none") && !strings.Contains(c.name, "absent") {
				b.Fatalf("%s: empty page", c.name)
			}
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t := time.Now()
				if _, _, err := store.ListDocuments(ctx, c.q); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(ms(quantile(took, 0.50)), "p50-ms")
			b.ReportMetric(ms(quantile(took, 0.95)), "p95-ms")
		})
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
