package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"prismflow/connectors/blob"
	"prismflow/connectors/httpapi"
	"prismflow/stages/ingest"
	"prismflow/stages/persist/persisttest"
)

// BenchmarkInbox100k measures GET / (the inbox page, rendered, over
// HTTP, signed in) with 100,000 documents of the tenant and 20,000 of
// another: each sub-benchmark reports p50 and p95 in milliseconds (goal:
// p95 < 100 ms). Run with
//
//	go test ./connectors/console/ -run '^$' -bench Inbox100k -benchtime 200x
func BenchmarkInbox100k(b *testing.B) {
	store := persisttest.Store100k(b)
	ctx := context.Background()

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
	token, _, err := sessions.create(ctx, persisttest.BenchTenant, persisttest.BenchTenant+"/bench", "")
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

	deep := persisttest.DeepCursor(b, store)
	month := persisttest.Epoch.Add(-persisttest.Span / 3)
	day := func(t time.Time) string { return t.In(time.Local).Format(dateLayout) }

	for _, bc := range []struct{ name, query string }{
		{"first-page", ""},
		{"deep-page", "cursor=" + url.QueryEscape(deep)},
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
			persisttest.ReportLatency(b, func() {
				if code, _ := get("/?" + bc.query); code != http.StatusOK {
					b.Fatalf("GET /?%s: %d", bc.query, code)
				}
			})
		})
	}
}
