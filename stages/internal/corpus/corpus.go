// Package corpus loads the labelled insurance-dev development set
// (shared/corpus/insurance-dev, beside the repository) as the events the
// stages receive, for the stages' tests. Each item becomes one document:
// section 0 is the e-mail's text body, then one section per attachment
// with text. Scanned PDFs have no text layer: their digital twin stands
// in for what the extract stage's OCR yields.
package corpus

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"

	"prismflow/schemas/events"
)

// Item is one labelled request.
type Item struct {
	ID     string
	In     events.SectionsAnalyzed // Feedback empty
	Truth  string                  // category
	Fields map[string]string       // truth fields, numbers and lists as the classifier writes them
}

// Dir is the corpus folder: shared/ sits beside the repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "shared", "corpus", "insurance-dev")
}

// Load reads every item; it fails the test when the corpus or pdftotext
// is missing rather than skipping, so CI cannot pass without them.
func Load(t testing.TB) []Item {
	t.Helper()
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils")
	}
	dirs, err := filepath.Glob(filepath.Join(Dir(), "[0-9][0-9][0-9][0-9]"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no corpus items under %s (err %v): shared/ must sit beside the repository", Dir(), err)
	}
	var items []Item
	for _, dir := range dirs {
		items = append(items, loadItem(t, dir))
	}
	return items
}

func loadItem(t testing.TB, dir string) Item {
	t.Helper()
	var truth struct {
		Category string         `json:"category"`
		Fields   map[string]any `json:"fields"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &truth); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "message.eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mr, err := mail.CreateReader(f)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	subject, _ := mr.Header.Subject()
	from, _ := mr.Header.AddressList("From")
	doc := events.Document{ID: filepath.Base(dir), Filename: "message.eml", Subject: subject}
	if len(from) > 0 {
		doc.Sender = from[0].String()
	}
	var body, html string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok {
			ct, _, _ := h.ContentType()
			b, _ := io.ReadAll(p.Body)
			switch {
			case ct == "text/plain" && body == "":
				body = string(b)
			case ct == "text/html" && html == "":
				html = string(b)
			}
		}
	}
	if body == "" {
		body = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(html, " ")
	}
	secs := []events.Section{{Index: 0, Title: subject, Text: body}}
	atts, _ := filepath.Glob(filepath.Join(dir, "attachment-*"))
	sort.Strings(atts)
	page := int32(1)
	for _, a := range atts {
		var text string
		switch {
		case strings.HasSuffix(a, ".scanned.pdf"):
			continue
		case strings.HasSuffix(a, ".pdf"):
			out, err := exec.Command("pdftotext", "-enc", "UTF-8", a, "-").Output()
			if err != nil {
				t.Fatalf("pdftotext %s: %v", a, err)
			}
			text = strings.TrimRight(string(out), "\f\n")
		case strings.HasSuffix(a, ".txt"):
			b, err := os.ReadFile(a)
			if err != nil {
				t.Fatal(err)
			}
			text = string(b)
		default:
			continue
		}
		pages := int32(strings.Count(text, "\f")) + 1
		secs = append(secs, events.Section{Index: int32(len(secs)), Title: filepath.Base(a), Text: text, PageStart: page, PageEnd: page + pages - 1})
		page += pages
	}
	fields := map[string]string{}
	for k, v := range truth.Fields {
		switch v := v.(type) {
		case string:
			fields[k] = v
		case float64:
			fields[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case []any:
			var parts []string
			for _, p := range v {
				parts = append(parts, fmt.Sprint(p))
			}
			fields[k] = strings.Join(parts, ",")
		}
	}
	return Item{
		ID:     doc.ID,
		In:     events.SectionsAnalyzed{Document: doc, PageCount: page - 1, Language: "it", Sections: secs},
		Truth:  truth.Category,
		Fields: fields,
	}
}
