package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"prismflow/stages/internal/pdfconf"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pdfcpu/pdfcpu/pkg/api"
)

// Page geometry of the form, in PDF points (A4 portrait, origin lower left).
const (
	pageTop     = 800.0
	pageBottom  = 60.0
	marginLeft  = 40.0
	lineHeight  = 14.0
	labelWidth  = 150.0
	wrapColumns = 95 // characters per line of 10 pt Helvetica across the page
)

// The pdfcpu JSON description, declared as types so that the layout code
// is checked by the compiler; see pdfcpu's testdata/json/create.
type (
	pdfDoc struct {
		Paper   string             `json:"paper"`
		Origin  string             `json:"origin"`
		Fonts   map[string]pdfFont `json:"fonts"`
		Pages   map[string]pdfPage `json:"pages"`
		Margin  map[string]float64 `json:"margin"`
		Footer  *pdfFooter         `json:"footer,omitempty"`
		Guides  bool               `json:"guides"`
		Debug   bool               `json:"debug"`
		Content bool               `json:"contentBox"`
	}
	pdfFont struct {
		Name string `json:"name"`
		Size int    `json:"size"`
		Col  string `json:"col,omitempty"`
	}
	pdfFooter struct {
		Font   pdfFont `json:"font"`
		Center string  `json:"center"`
		Height int     `json:"height"`
	}
	pdfPage struct {
		Content pdfContent `json:"content"`
	}
	pdfContent struct {
		Text []pdfText `json:"text,omitempty"`
		Box  []pdfBox  `json:"box,omitempty"`
	}
	pdfText struct {
		Value string     `json:"value"`
		Pos   [2]float64 `json:"pos"`
		Font  pdfFont    `json:"font"`
	}
	pdfBox struct {
		Pos     [2]float64     `json:"pos"`
		Width   float64        `json:"width"`
		Height  float64        `json:"height"`
		FillCol string         `json:"fillCol,omitempty"`
		Border  map[string]any `json:"border,omitempty"`
	}
)

var (
	fontTitle = pdfFont{Name: "Helvetica-Bold", Size: 16}
	fontHead  = pdfFont{Name: "Helvetica-Bold", Size: 12}
	fontBody  = pdfFont{Name: "Helvetica", Size: 10}
	fontBold  = pdfFont{Name: "Helvetica-Bold", Size: 10}
	fontRed   = pdfFont{Name: "Helvetica-Bold", Size: 11, Col: "#C00000"}
)

// layout places lines top to bottom and starts a new page when one is
// full, so any number of fields and feedback items fits.
type layout struct {
	pages []pdfContent
	y     float64
}

func (l *layout) need(h float64) *pdfContent {
	if len(l.pages) == 0 || l.y-h < pageBottom {
		l.pages = append(l.pages, pdfContent{})
		l.y = pageTop
	}
	return &l.pages[len(l.pages)-1]
}

func (l *layout) text(s string, f pdfFont, indent float64) {
	for _, line := range wrap(s, wrapColumns-int(indent/5)) {
		c := l.need(lineHeight)
		c.Text = append(c.Text, pdfText{Value: escapePercent(line), Pos: [2]float64{marginLeft + indent, l.y}, Font: f})
		l.y -= lineHeight
	}
}

func (l *layout) gap(h float64) { l.y -= h }

// row writes "Label: value" in two columns, the value wrapped.
func (l *layout) row(lbl, value string) {
	for i, line := range wrap(value, wrapColumns-int(labelWidth/5)) {
		c := l.need(lineHeight)
		if i == 0 {
			c.Text = append(c.Text, pdfText{Value: escapePercent(lbl), Pos: [2]float64{marginLeft, l.y}, Font: fontBold})
		}
		c.Text = append(c.Text, pdfText{Value: escapePercent(line), Pos: [2]float64{marginLeft + labelWidth, l.y}, Font: fontBody})
		l.y -= lineHeight
	}
}

// buildForm fills the category's template, appends the summary pages and
// flattens the result: one PDF a broker can forward as it is.
func buildForm(t formTemplate, v view) ([]byte, error) {
	filled, err := fill(t, v)
	if err != nil {
		return nil, err
	}
	summary, err := buildSummary(t, v)
	if err != nil {
		return nil, err
	}
	var merged bytes.Buffer
	if err := api.MergeRaw([]io.ReadSeeker{bytes.NewReader(filled), bytes.NewReader(summary)}, &merged, false, pdfconf.New()); err != nil {
		return nil, fmt.Errorf("append summary to %s: %w", t.file, err)
	}
	out, err := flatten(merged.Bytes())
	if err != nil {
		return nil, fmt.Errorf("flatten %s: %w", t.file, err)
	}
	return out, nil
}

// buildSummary writes the pages after the form: the document, its
// classification, every extracted field (also those the form has no
// place for), what the form still lacks, and the feedback by severity.
func buildSummary(t formTemplate, v view) ([]byte, error) {
	var l layout
	l.text("Navigli Broker - Scheda riepilogativa della richiesta", fontTitle, 0)
	l.gap(8)
	l.text("Documento: "+orDash(v.Document.Filename), fontBody, 0)
	l.text("ID: "+v.Document.ID, fontBody, 0)
	if v.Document.Sender != "" {
		l.text("Mittente: "+v.Document.Sender, fontBody, 0)
	}
	if v.Document.Subject != "" {
		l.text("Oggetto: "+v.Document.Subject, fontBody, 0)
	}
	l.gap(6)
	cat := fmt.Sprintf("Categoria: %s (confidenza %s%%)", orDash(v.Category), strconv.FormatFloat(v.Confidence*100, 'f', 0, 64))
	l.text(cat, fontHead, 0)
	if v.NeedsReview {
		l.text("DA VERIFICARE: la classificazione ha bassa confidenza", fontRed, 0)
	}
	l.gap(10)
	l.text("Dati estratti", fontHead, 0)
	l.gap(4)
	if len(v.Fields) == 0 {
		l.text("Nessun dato estratto.", fontBody, 0)
	}
	have := map[string]bool{}
	for _, f := range v.Fields {
		have[f.Name] = true
		l.row(f.Label, formValue(f.Name, f.Value))
	}
	var lacking []string
	for name := range t.fields {
		if !have[name] {
			lacking = append(lacking, label(name))
		}
	}
	if len(lacking) > 0 {
		sort.Strings(lacking) // map order would make every rendering differ
		l.gap(6)
		l.text("Dati del modulo da richiedere al cliente: "+strings.Join(lacking, ", "), fontBody, 0)
	}
	l.gap(10)
	l.text("Osservazioni", fontHead, 0)
	l.gap(4)
	if len(v.BySeverity) == 0 {
		l.text("Nessuna osservazione.", fontBody, 0)
	}
	for _, g := range v.BySeverity {
		l.text(fmt.Sprintf("%s (%d)", g.Title, len(g.Items)), fontBold, 0)
		for _, it := range g.Items {
			l.text("- "+it.Message, fontBody, 10)
			if it.Suggestion != "" {
				l.text("Suggerimento: "+it.Suggestion, fontBody, 20)
			}
			if it.Quote != "" {
				l.text(fmt.Sprintf("Testo: \"%s\"", oneLine(it.Quote)), fontBody, 20)
			}
		}
		l.gap(4)
	}
	l.gap(6)
	l.text("Generato il "+v.Generated.Format("02/01/2006 15:04"), pdfFont{Name: "Helvetica", Size: 8, Col: "#666666"}, 0)

	doc := pdfDoc{
		Paper: "A4P", Origin: "LowerLeft", Margin: map[string]float64{"width": 0},
		Fonts: map[string]pdfFont{}, Pages: map[string]pdfPage{},
		Footer: &pdfFooter{Font: pdfFont{Name: "Helvetica", Size: 8}, Center: "Riepilogo - pagina %p di %P", Height: 30},
	}
	for i, c := range l.pages {
		doc.Pages[strconv.Itoa(i+1)] = pdfPage{Content: c}
	}
	desc, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode summary description: %w", err)
	}
	var out bytes.Buffer
	if err := api.Create(nil, bytes.NewReader(desc), &out, pdfconf.New()); err != nil {
		return nil, fmt.Errorf("create summary PDF: %w", err)
	}
	return out.Bytes(), nil
}

// escapePercent protects text from pdfcpu's placeholders (%p page, %P
// pages, %t time, %v version): "%%" prints a "%", but pdfcpu still reads
// a placeholder letter right after it, so a space is put between a "%"
// and such a letter ("50%pp" prints "50% pp"), the least visible change.
func escapePercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString("%%")
		if i+1 < len(s) && strings.IndexByte("pPtv%", s[i+1]) >= 0 {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// wrap cuts s into lines of at most n runes at spaces (a longer word is
// cut hard).
func wrap(s string, n int) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			for utf8.RuneCountInString(w) > n {
				r := []rune(w)
				if line != "" {
					lines = append(lines, line)
					line = ""
				}
				lines = append(lines, string(r[:n]))
				w = string(r[n:])
			}
			switch {
			case line == "":
				line = w
			case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= n:
				line += " " + w
			default:
				lines = append(lines, line)
				line = w
			}
		}
		lines = append(lines, line)
	}
	return lines
}
