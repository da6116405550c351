package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"prismflow/connectors/blob"
	"prismflow/connectors/httpapi"
	"prismflow/pipeline/testenv"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
	"prismflow/stages/persist/persisttest"
)

// benchPostgresDSNEnv names a database that keeps the benchmark's
// 100,000 documents between runs (the persist listing benchmark's
// variable and tenants, so both share one seeding). Unset, a fresh test
// database is seeded every run.
const benchPostgresDSNEnv = "PRISMFLOW_BENCH_POSTGRES_DSN"

const (
	benchTenant = "bench-100k"
	benchDocs   = 100_000
	otherTenant = "bench-other"
	otherDocs   = 20_000
)

// BenchmarkInbox100k measures GET / (the inbox page, rendered, over
// HTTP, signed in) with 100,000 documents of the tenant and 20,000 of
// another: each sub-benchmark reports p50 and p95 in milliseconds (goal:
// p95 < 100 ms). Run with
//
//	go test ./connectors/console/ -run '^$' -bench Inbox100k -benchtime 200x
func BenchmarkInbox100k(b *testing.B) {
	dsn := os.Getenv(benchPostgresDSNEnv)
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

	log := slog.New(slog.DiscardHandler)
	blobs := blob.NewMemory()
	api := &httpapi.Server{Ingest: &ingest.Ingester{Blobs: blobs}, Store: store, Blobs: blobs, Log: log}
	c := &Server{Store: store, API: api, Keys: httpapi.NewKeyStore(store.Pool()), AuthRequired: true,
		Categories: slices.Compact(slices.Sorted(slices.Values(persisttest.Categories))), Log: log}
	h, err := c.Handler()
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	sessions := &sessions{pool: store.Pool(), ttl: time.Hour}
	token, _, err := sessions.create(ctx, benchTenant, benchTenant+"/bench", "")
	if err != nil {
		b.Fatal(err)
	}
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	// The page after 90% of the tenant's documents, reached by keyset.
	q := persist.ListQuery{Tenant: benchTenant, Limit: 1000}
	for range benchDocs * 9 / 10 / q.Limit {
		_, next, err := store.ListDocuments(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		q.Cursor = next
	}
	month := persisttest.Epoch.Add(-persisttest.Span / 3)
	day := func(t time.Time) string { return t.In(time.Local).Format(dateLayout) }

	for _, bc := range []struct{ name, query string }{
		{"first-page", ""},
		{"deep-page", "cursor=" + url.QueryEscape(q.Cursor)},
		{"status", "status=failed"},
		{"status-category", "status=done&category=" + url.QueryEscape(persisttest.Categories[0])},
		{"date-range", "since=" + day(month.Add(-7*24*time.Hour)) + "&until=" + day(month)},
		{"search", "q=trasporti"},
		{"search-none", "q=nessun-documento-dice-questo"},
		{"search-status-date", "q=preventivo&status=done&since=" + day(month.Add(-7*24*time.Hour)) + "&until=" + day(month)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if code, body := get("/?" + bc.query); code != http.StatusOK {
				b.Fatalf("GET /?%s: %d\n%s", bc.query, code, body)
			}
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t := time.Now()
				if code, _ := get("/?" + bc.query); code != http.StatusOK {
					b.Fatalf("GET /?%s: %d", bc.query, code)
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
