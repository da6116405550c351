package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"prismflow/pipeline/testenv"
)

// BenchmarkEndToEnd sends the real corpus and the insurance-dev requests
// (e-mails, whose attachments become documents, scans included) through
// the whole pipeline and reports documents/s and pages/s until all are
// finished, the upload-to-persisted latency percentiles (from the upload
// request to the document's last update), and the peak RSS of the processes.
// "embedded" is `prismflow run` alone; "separate-processes" runs the
// stages as three processes against an outside broker, registry and
// database. Run with: go test -run '^$' -bench EndToEnd -benchtime 1x ./cmd/prismflow
func BenchmarkEndToEnd(b *testing.B) {
	for _, mode := range []string{"embedded", "separate-processes"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				benchEndToEnd(b, mode)
			}
		})
	}
}

func benchFiles(b *testing.B) []string {
	shared := sharedDir(b)
	var files []string
	for _, f := range realCorpus(b) {
		files = append(files, f.Path)
	}
	emls, err := filepath.Glob(filepath.Join(shared, "corpus/insurance-dev/*/message.eml"))
	if err != nil || len(emls) == 0 {
		b.Fatalf("insurance-dev e-mails: %v", err)
	}
	return append(files, emls...)
}

func benchEndToEnd(b *testing.B, mode string) {
	b.StopTimer()
	files := benchFiles(b)
	var procs []*instance
	var front *instance
	switch mode {
	case "embedded":
		front = startPrismflow(b, "")
		procs = []*instance{front}
	default:
		dsn := testenv.Postgres(b)
		brokers := testenv.Kafka(b)
		reg := testenv.Registry(b, brokers)
		blobs := "PRISMFLOW_BLOB_URL=file://" + b.TempDir()
		front = startPrismflowWith(b, dsn, brokers[0], reg, blobs, "PRISMFLOW_STAGES=persist")
		procs = []*instance{front,
			startPrismflowWith(b, dsn, brokers[0], reg, blobs, "PRISMFLOW_STAGES=ingest,extract", "PRISMFLOW_HTTP_ADDR="),
			startPrismflowWith(b, dsn, brokers[0], reg, blobs, "PRISMFLOW_STAGES=split,analyze,classify,render", "PRISMFLOW_HTTP_ADDR="),
		}
	}
	b.StartTimer()

	start := time.Now()
	sent := map[string]time.Time{}
	for _, f := range files {
		t0 := time.Now()
		sent[front.upload(f)] = t0
	}
	// Attachments of the e-mails are documents too: wait for every
	// document the tenant has, until none is still processing.
	var docs []listedDoc
	deadline := time.Now().Add(15 * time.Minute)
	for {
		docs = listAll(b, front)
		busy := 0
		for _, d := range docs {
			if d.Status == "processing" {
				busy++
			}
		}
		if busy == 0 && len(docs) >= len(sent) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d documents still processing after 15 minutes", busy, len(docs))
		}
		time.Sleep(250 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	var lat []float64
	pages, failed := 0, 0
	for _, d := range docs {
		pages += d.PageCount
		if d.Status == "failed" {
			failed++
			b.Logf("failed: %s %s: %s", d.ID, d.Filename, d.Error)
		}
		// updated_at of a done document is when its last event (the
		// rendered outputs) was produced, just before persist stored it.
		if t0, ok := sent[d.ID]; ok && d.Status == "done" {
			lat = append(lat, d.UpdatedAt.Sub(t0).Seconds())
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	var rss int64
	for _, p := range procs {
		if p.cmd != nil {
			rss += peakRSS(b, p.cmd.Process.Pid)
		}
	}
	b.ReportMetric(float64(len(docs))/elapsed.Seconds(), "docs/s")
	b.ReportMetric(float64(pages)/elapsed.Seconds(), "pages/s")
	b.ReportMetric(pct(0.50), "p50_s")
	b.ReportMetric(pct(0.95), "p95_s")
	b.ReportMetric(pct(0.99), "p99_s")
	b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MB")
	b.Logf("%s: %d documents (%d uploaded, %d failed by design: encrypted, unreadable), %d pages in %v",
		mode, len(docs), len(sent), failed, pages, elapsed.Round(time.Millisecond))
}

// listAll pages through GET /v1/documents.
func listAll(tb testing.TB, p *instance) []listedDoc {
	var all []listedDoc
	cursor := ""
	for {
		var page struct {
			Documents  []listedDoc `json:"documents"`
			NextCursor string      `json:"next_cursor"`
		}
		if err := json.Unmarshal(p.get("/v1/documents?limit=1000&cursor="+cursor), &page); err != nil {
			tb.Fatal(err)
		}
		all = append(all, page.Documents...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}
