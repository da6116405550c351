package persisttest

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"prismflow/pipeline/testenv"
	"prismflow/stages/persist"
)

// BenchPostgresDSNEnv names a database that keeps the 100,000 documents
// of the benchmarks between runs (seeded on first use; the role needs no
// more than table rights once migrated). Unset, each run seeds a fresh
// test database, which costs about a minute more.
const BenchPostgresDSNEnv = "PRISMFLOW_BENCH_POSTGRES_DSN"

// The tenants of Store100k: a database that has BenchDocs documents of
// BenchTenant is seeded already.
const (
	BenchTenant = "bench-100k"
	BenchDocs   = 100_000
	OtherTenant = "bench-other" // another tenant's documents interleave in every index
	OtherDocs   = 20_000
)

// Store100k opens the benchmark database (BenchPostgresDSNEnv, or a fresh
// test database) with BenchDocs documents of BenchTenant and OtherDocs of
// OtherTenant, seeding what is missing. Every benchmark that uses it
// shares one seeding. The store is closed when b ends.
func Store100k(b *testing.B) *persist.Store {
	b.Helper()
	dsn := os.Getenv(BenchPostgresDSNEnv)
	if dsn == "" {
		dsn = testenv.Postgres(b)
	}
	store, err := persist.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	start := time.Now()
	Seed(b, store, BenchTenant, BenchDocs)
	Seed(b, store, OtherTenant, OtherDocs)
	b.Logf("seeded (or found) %d+%d documents in %v", BenchDocs, OtherDocs, time.Since(start).Round(time.Millisecond))
	return store
}

// DeepCursor returns the keyset cursor of the page after 90% of
// BenchTenant's documents in store (see Store100k): the page an
// offset-based listing would be slowest at.
func DeepCursor(b *testing.B, store *persist.Store) string {
	b.Helper()
	q := persist.ListQuery{Tenant: BenchTenant, Limit: 1000}
	for range BenchDocs * 9 / 10 / q.Limit {
		_, next, err := store.ListDocuments(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		if next == "" {
			b.Fatal("fewer documents than seeded")
		}
		q.Cursor = next
	}
	return q.Cursor
}

// ReportLatency runs op for every iteration of b and reports the p50 and
// p95 of its latency in milliseconds (metrics p50-ms and p95-ms), which
// say more about a page's responsiveness than the mean does. op fails b
// itself on error.
func ReportLatency(b *testing.B, op func()) {
	b.Helper()
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		op()
		took = append(took, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(ms(quantile(took, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(took, 0.95)), "p95-ms")
}

// quantile returns the q-quantile (0..1) of sorted by the nearest rank
// below.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
