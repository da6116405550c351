package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadSections reads testdata/<name>.json: a real corpus document cut
// into sections by the split stage.
func loadSections(t testing.TB, name string) []Section {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sections []struct {
			Index     int32  `json:"index"`
			Title     string `json:"title"`
			Text      string `json:"text"`
			PageStart int32  `json:"page_start"`
			PageEnd   int32  `json:"page_end"`
		} `json:"sections"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []Section
	for _, s := range doc.Sections {
		out = append(out, Section{Index: s.Index, Title: s.Title, Text: s.Text, PageStart: s.PageStart, PageEnd: s.PageEnd})
	}
	return out
}

// checkSpans fails unless every citation names a section of secs and
// quotes an exact span of its text.
func checkSpans(t *testing.T, secs []Section, cites []Citation) {
	t.Helper()
	for _, c := range cites {
		found := false
		for _, s := range secs {
			if s.Index == c.Section {
				found = true
				if !strings.Contains(s.Text, c.Quote) {
					t.Errorf("citation quote %q is not a span of section %d", c.Quote, c.Section)
				}
			}
		}
		if !found {
			t.Errorf("citation names section %d, which does not exist", c.Section)
		}
	}
}

// collect returns an emit that appends to *pieces.
func collect(pieces *[]string) func(string) error {
	return func(d string) error {
		*pieces = append(*pieces, d)
		return nil
	}
}

func newTestRetrieval(t testing.TB) *Retrieval {
	t.Helper()
	r, err := NewRetrieval()
	if err != nil {
		t.Fatal(err)
	}
	return r
}
