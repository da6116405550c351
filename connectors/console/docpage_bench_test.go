package console

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline/testenv"
	"prismflow/schemas/events"
	"prismflow/stages/persist/persisttest"
)

// BenchmarkDocumentPage50 measures opening the page of a 50-page
// document (goal: under 1 s): "html" is GET /documents/{id} with 50
// pages of text, 50 sections and their feedback; "first-image" is the
// first page image from a cold cache, the one image a reviewer sees
// before scrolling (the other 49 load lazily). Run with
//
//	go test ./connectors/console/ -run '^$' -bench DocumentPage50 -benchtime 50x
func BenchmarkDocumentPage50(b *testing.B) {
	e := newEnv(b, false)
	ctx := context.Background()
	const n = 50
	pdf := testenv.ManyPagesPDF(n)
	key := "sha256/bench-50-pages"
	if err := e.blobs.Put(ctx, key, bytes.NewReader(pdf)); err != nil {
		b.Fatal(err)
	}
	doc := events.Document{ID: "bench-50", Tenant: "default", Filename: "polizza-50-pagine.pdf", ContentType: "application/pdf",
		SizeBytes: int64(len(pdf)), Blob: key, Source: "upload"}
	at := time.Now().UTC()
	meta := func(stage string) events.Meta { return events.Meta{Stage: stage, Run: 1, ProducedAt: at} }
	var pages []events.Page
	var sections []events.Section
	var feedback []events.FeedbackItem
	for i := range n {
		text := strings.Repeat(fmt.Sprintf("Articolo %d. Il contraente dichiara che il veicolo targa AB%03dCD è assicurato con massimale 1.000.000 dal 01/01/2020. ", i+1, i), 12)
		pages = append(pages, events.Page{Number: int32(i + 1), Text: text, Method: "digital", Confidence: 1})
		sections = append(sections, events.Section{Index: int32(i), Title: fmt.Sprintf("Articolo %d", i+1), Text: text, PageStart: int32(i + 1), PageEnd: int32(i + 1)})
		feedback = append(feedback, events.FeedbackItem{ID: fmt.Sprintf("fb-%d", i), SectionIndex: int32(i), Type: "amount_without_currency",
			Severity: events.SeverityMedium, Message: "Importo senza valuta", Quote: "1.000.000"})
	}
	steps := []func() error{
		func() error { return e.p.Received(ctx, events.DocumentReceived{Meta: meta("ingest"), Document: doc}) },
		func() error {
			return e.p.Extracted(ctx, events.TextExtracted{Meta: meta("extract"), Document: doc, PageCount: n, Language: "it", Pages: pages})
		},
		func() error {
			return e.p.Split(ctx, events.SectionsSplit{Meta: meta("split"), Document: doc, Sections: sections})
		},
		func() error {
			return e.p.Analyzed(ctx, events.SectionsAnalyzed{Meta: meta("analyze"), Document: doc, Sections: sections, Provider: "rules", Feedback: feedback})
		},
		func() error {
			return e.p.Classified(ctx, events.DocumentClassified{Meta: meta("classify"), Document: doc, PageCount: n, Category: "RC Auto",
				Confidence: 0.9, Provider: "rules", Fields: []events.Field{span("targa", sections[0], "AB000CD")}})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	br := e.browser(b)

	b.Run("html", func(b *testing.B) {
		if r := br.get("/documents/" + doc.ID); r.StatusCode != http.StatusOK || len(find(r.doc, `[data-testid=page]`)) != n {
			b.Fatalf("document page: %d, %d pages shown", r.StatusCode, len(find(r.doc, `[data-testid=page]`)))
		}
		persisttest.ReportLatency(b, func() {
			if r := br.get("/documents/" + doc.ID); r.StatusCode != http.StatusOK {
				b.Fatalf("document page: %d", r.StatusCode)
			}
		})
	})
	b.Run("first-image", func(b *testing.B) {
		width := 0
		persisttest.ReportLatency(b, func() {
			width += 7 // a new width each time: a cold cache entry
			if r := br.get(fmt.Sprintf("/documents/%s/pages/1.png?w=%d", doc.ID, 800+width%800)); r.StatusCode != http.StatusOK {
				b.Fatalf("page image: %d %s", r.StatusCode, r.body)
			}
		})
	})
}
