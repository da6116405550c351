package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"prismflow/pipeline/testenv"
)

// otlpSink is an OTLP/HTTP trace collector that keeps span names by
// trace id.
type otlpSink struct {
	mu     sync.Mutex
	traces map[string][]string
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				id := hex.EncodeToString(sp.TraceId)
				s.traces[id] = append(s.traces[id], sp.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// TestUploadToPersistIsOneTrace exports to an OTLP/HTTP endpoint and
// checks that the upload's HTTP span and every stage's span of the
// document, persist included, share one trace id.
func TestUploadToPersistIsOneTrace(t *testing.T) {
	shared := sharedDir(t)
	sink := &otlpSink{traces: map[string][]string{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	p := startPrismflowWith(t, testenv.Postgres(t), "", "", "PRISMFLOW_OTEL_ENDPOINT="+srv.URL)
	id := p.upload(filepath.Join(shared, "corpus/real/004-pdflatex-4-pages/pdflatex-4-pages.pdf"))
	if d := p.waitFinished(2*time.Minute, id)[id]; d.Status != "done" {
		t.Fatalf("status %q (%s), want done", d.Status, d.Error)
	}
	p.stop() // flushes the spans still buffered

	sink.mu.Lock()
	defer sink.mu.Unlock()
	var found bool
	for trace, names := range sink.traces {
		has := map[string]bool{}
		for _, n := range names {
			has[n] = true
		}
		if !has["HTTP POST"] {
			continue
		}
		found = true
		for _, st := range stageOrder {
			if !has[st+" process"] {
				t.Errorf("trace %s of the upload has no %q span; spans: %v", trace, st+" process", names)
			}
		}
	}
	if !found {
		t.Fatalf("no trace with the upload's HTTP POST span; traces: %v", sink.traces)
	}
}
