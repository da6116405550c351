package chat

import (
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkRetrievalLargeDocument answers over every corpus document of
// testdata taken three times as one document (about 140 sections, the
// text of a 40-page policy): the passages and the index are built for
// each question, so this is the whole cost of a retrieval answer.
func BenchmarkRetrievalLargeDocument(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("testdata", "[0-9][0-9][0-9][0-9]-*.json"))
	var secs []Section
	size := 0
	for range 3 {
		for _, f := range files {
			for _, s := range loadSections(b, strings.TrimSuffix(filepath.Base(f), ".json")) {
				s.Index = int32(len(secs))
				secs = append(secs, s)
				size += len(s.Text)
			}
		}
	}
	r := newTestRetrieval(b)
	q := Question{Text: "Qual è il massimale RCA richiesto?", Sections: secs}
	for b.Loop() {
		if _, err := r.Answer(b.Context(), q, func(string) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(secs)), "sections")
	b.ReportMetric(float64(size)/1024, "KiB")
}
