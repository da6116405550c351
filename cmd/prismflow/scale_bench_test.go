package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
)

// scaleCopies is how many times each scanned attachment of the
// insurance-dev corpus is uploaded: enough documents that all six
// partitions get work and the run lasts long enough to measure.
const scaleCopies = 3

// BenchmarkExtractScaling measures the extract stage run by one and then
// by two processes on a 6-partition topic under an OCR load (the scanned
// attachments of the insurance-dev corpus, each uploaded scaleCopies
// times), with the same input, in one run, and reports pages/s for each
// and their ratio. Each configuration gets a fresh broker, registry and
// database, and starts measuring once every extract process holds its
// partitions, so that joining the group is not counted.
//
// Each process OCRs as many pages at once as the machine has cores
// (extract.ocr_workers 0), so two processes on one machine share the
// same cores and the ratio is expected near 1: the second process pays
// off when it runs on a node of its own, as the deployment's extract
// replicas do. Run with: make bench-scale
func BenchmarkExtractScaling(b *testing.B) {
	scans, err := filepath.Glob(filepath.Join(sharedDir(b), "corpus/insurance-dev/*/attachment-*.scanned.pdf"))
	if err != nil || len(scans) == 0 {
		b.Fatalf("no scanned attachments in the insurance-dev corpus: %v", err)
	}
	var files []string
	for range scaleCopies {
		files = append(files, scans...)
	}
	for range b.N {
		rate := map[int]float64{}
		for _, procs := range []int{1, 2} {
			pages, elapsed := extractRun(b, procs, files)
			rate[procs] = float64(pages) / elapsed.Seconds()
			b.Logf("extract with %d process(es): %d documents, %d pages in %v: %.3f pages/s",
				procs, len(files), pages, elapsed.Round(time.Millisecond), rate[procs])
		}
		b.ReportMetric(rate[1], "pages/s_1proc")
		b.ReportMetric(rate[2], "pages/s_2proc")
		b.ReportMetric(rate[2]/rate[1], "ratio_2/1")
		b.Logf("extract scaling 2 processes / 1 process: %.2f. Each process OCRs %d pages at once (one per core of this %d-core machine), "+
			"so two processes on one machine compete for the same cores and a ratio near 1 is expected here; "+
			"on separate nodes each replica brings its own cores.", rate[2]/rate[1], runtime.NumCPU(), runtime.NumCPU())
	}
}

// extractRun starts a pipeline whose extract stage runs in procs
// processes, uploads files, and returns the pages extracted and the time
// from the first upload until persist has recorded every document's
// extraction.
func extractRun(b *testing.B, procs int, files []string) (pages int, elapsed time.Duration) {
	b.Helper()
	b.StopTimer()
	dsn := testenv.Postgres(b)
	brokers := testenv.Kafka(b)
	registryURL := testenv.Registry(b, brokers)
	blobs := "PRISMFLOW_BLOB_URL=file://" + b.TempDir()
	const partitions = "PRISMFLOW_KAFKA_PARTITIONS=6"
	// The API and persist only: nothing downstream of extract competes
	// for the cores.
	front := startPrismflowWith(b, dsn, brokers[0], registryURL, blobs, partitions, "PRISMFLOW_STAGES=persist")
	for i := range procs {
		startPrismflowWith(b, dsn, brokers[0], registryURL, blobs, partitions, "PRISMFLOW_HTTP_ADDR=",
			"PRISMFLOW_STAGES=extract", fmt.Sprintf("PRISMFLOW_RUNTIME_INSTANCE_ID=extract-%d", i))
	}
	waitAssigned(b, brokers[0], "prismflow-extract", procs)

	b.StartTimer()
	start := time.Now()
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = front.upload(f)
	}
	deadline := time.Now().Add(20 * time.Minute)
	extracted := map[string]int{}
	for len(extracted) < len(ids) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d documents extracted after 20 minutes", len(extracted), len(ids))
		}
		for _, id := range ids {
			if _, ok := extracted[id]; ok {
				continue
			}
			d, ok := front.document(id)
			if !ok {
				continue
			}
			if d.Status == "failed" {
				b.Fatalf("document %s (%s) failed: %s", id, d.Filename, d.Error)
			}
			if d.Stages["extract"].Status == "done" {
				extracted[id] = d.PageCount
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	elapsed = time.Since(start)
	b.StopTimer()
	for _, n := range extracted {
		pages += n
	}
	return pages, elapsed
}

// waitAssigned polls until the consumer group has procs members and each
// holds some partitions of the extract stage's input topic.
func waitAssigned(b *testing.B, broker, group string, procs int) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		groups, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			if g, ok := groups[group]; ok && g.Err == nil && g.State == "Stable" && len(g.Members) == procs {
				holding := 0
				for _, m := range g.Members {
					if c, ok := m.Assigned.AsConsumer(); ok {
						for _, tp := range c.Topics {
							if tp.Topic == topology.DocumentReceived && len(tp.Partitions) > 0 {
								holding++
							}
						}
					}
				}
				if holding == procs {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("group %s did not settle with %d members holding partitions within 2 minutes (last: %v)", group, procs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
