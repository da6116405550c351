package formats

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"prismflow/pipeline"
)

// pageBreak separates pages inside the text a reader builds. A form feed
// cannot appear in XML 1.0 character data, so it never comes from the
// document itself.
const pageBreak = "\f"

// splitPages cuts text at page breaks and drops blank pages: a break
// before the first paragraph or after the last one is an artefact of how
// the page was styled, not a page with content. At least one page is
// returned.
func splitPages(text string) []string {
	var pages []string
	for p := range strings.SplitSeq(text, pageBreak) {
		if strings.TrimSpace(p) != "" {
			pages = append(pages, p)
		}
	}
	if len(pages) == 0 {
		return []string{""}
	}
	return pages
}

// xmlReader streams the tokens of one XML part and turns its errors
// into permanent errors that name the part.
type xmlReader struct {
	part string
	d    *xml.Decoder
}

func newXMLReader(part string, data []byte) *xmlReader {
	d := xml.NewDecoder(bytes.NewReader(data))
	// Strict mode (the default) refuses undeclared entities: encoding/xml
	// never expands DTD entities, so a "billion laughs" part fails here
	// instead of growing.
	d.Strict = true
	return &xmlReader{part: part, d: d}
}

// next returns the next token, or io.EOF at the end of the part.
func (x *xmlReader) next() (xml.Token, error) {
	tok, err := x.d.Token()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("malformed XML in %s: %w", x.part, err))
	}
	return tok, nil
}

func (x *xmlReader) skip() error {
	if err := x.d.Skip(); err != nil {
		return pipeline.Permanent(fmt.Errorf("malformed XML in %s: %w", x.part, err))
	}
	return nil
}

func attr(se xml.StartElement, local string) (string, bool) {
	for _, a := range se.Attr {
		if a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// onOff reads an OOXML boolean property such as <w:pageBreakBefore/>,
// which is on when w:val is absent.
func onOff(se xml.StartElement) bool {
	v, ok := attr(se, "val")
	if !ok {
		return true
	}
	switch v {
	case "0", "false", "off":
		return false
	}
	return true
}

// tableWriter writes table rows as lines of tab-separated cells on top of
// a textBuilder. A paragraph end inside a cell becomes a space, so a
// cell's paragraphs stay on the row's line.
type tableWriter struct {
	t     *textBuilder
	cells []int // per open table, the cells begun in the current row
	space bool  // a paragraph ended inside a cell: a space is due before more text
}

func (w *tableWriter) inCell() bool { return len(w.cells) > 0 }

func (w *tableWriter) text(s string) {
	if s == "" {
		return
	}
	if w.space {
		w.t.WriteString(" ")
		w.space = false
	}
	w.t.WriteString(s)
}

func (w *tableWriter) paragraphEnd() {
	if w.inCell() {
		w.space = true
		return
	}
	w.t.WriteString("\n")
}

func (w *tableWriter) tableStart() { w.cells = append(w.cells, 0) }

func (w *tableWriter) tableEnd() {
	if len(w.cells) > 0 {
		w.cells = w.cells[:len(w.cells)-1]
	}
	w.space = false
}

func (w *tableWriter) rowStart() {
	if n := len(w.cells); n > 0 {
		w.cells[n-1] = 0
	}
	w.space = false
}

func (w *tableWriter) rowEnd() {
	w.space = false
	w.t.WriteString("\n")
}

func (w *tableWriter) cellStart() {
	n := len(w.cells)
	if n == 0 {
		return
	}
	// The tab is written even for an empty cell, so columns stay aligned.
	if w.cells[n-1] > 0 {
		w.t.WriteString("\t")
	}
	w.cells[n-1]++
	w.space = false
}

// readDOCX reads word/document.xml: paragraphs (w:p) of runs whose text
// is in w:t, tabs, line breaks, and explicit page breaks (w:br
// w:type="page", w:pageBreakBefore). Deleted revisions (w:delText), field
// instructions and the Fallback copy of mc:AlternateContent (a duplicate
// of the text box in mc:Choice) are skipped. Headers, footers and
// footnotes are not read: they repeat on every page or sit outside the
// reading order.
func readDOCX(b []byte, lim Limits) ([]string, error) {
	a, err := openArchive(b, lim)
	if err != nil {
		return nil, err
	}
	const part = "word/document.xml"
	if !a.has(part) {
		return nil, pipeline.Permanent(errors.New("not a DOCX: the zip container has no " + part))
	}
	data, err := a.read(part)
	if err != nil {
		return nil, err
	}
	t := &textBuilder{max: lim.MaxTextBytes}
	w := &tableWriter{t: t}
	x := newXMLReader(part, data)
	var stack []string // local names of the open elements
	for t.err == nil {
		tok, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			switch name {
			case "Fallback", "delText", "instrText":
				if err := x.skip(); err != nil {
					return nil, err
				}
				continue
			case "tbl":
				w.tableStart()
			case "tr":
				w.rowStart()
			case "tc":
				w.cellStart()
			case "pageBreakBefore":
				if parent == "pPr" && onOff(tok) {
					t.WriteString(pageBreak)
				}
			case "br":
				if v, _ := attr(tok, "type"); v == "page" {
					t.WriteString(pageBreak)
				} else {
					w.text("\n")
				}
			case "cr":
				w.text("\n")
			case "tab":
				// w:tab also defines tab stops inside w:pPr/w:tabs; only a
				// tab in a run is text.
				if parent == "r" {
					w.text("\t")
				}
			case "noBreakHyphen":
				w.text("-")
			}
			stack = append(stack, name)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			switch tok.Name.Local {
			case "p":
				w.paragraphEnd()
			case "tr":
				w.rowEnd()
			case "tbl":
				w.tableEnd()
			}
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] == "t" {
				w.text(string(tok))
			}
		}
	}
	if t.err != nil {
		return nil, t.err
	}
	return splitPages(t.String()), nil
}

// readODT reads content.xml of an OpenDocument text: paragraphs and
// headings, spaces (text:s), tabs, line breaks and tables. A page break
// is a paragraph whose automatic style breaks the page before or after it
// (fo:break-before/after="page", as LibreOffice writes Ctrl+Enter).
// Notes, annotations and tracked deletions are skipped.
func readODT(b []byte, lim Limits) ([]string, error) {
	a, err := openArchive(b, lim)
	if err != nil {
		return nil, err
	}
	if !a.has("mimetype") || !a.has("content.xml") {
		return nil, pipeline.Permanent(errors.New("not an ODT: the zip container has no mimetype or content.xml"))
	}
	const part = "content.xml"
	data, err := a.read(part)
	if err != nil {
		return nil, err
	}
	t := &textBuilder{max: lim.MaxTextBytes}
	w := &tableWriter{t: t}
	x := newXMLReader(part, data)
	before := map[string]bool{}
	after := map[string]bool{}
	var (
		style     string   // style:style being read in the automatic styles
		paraStyle []string // style names of the open paragraphs
		inPara    int
	)
	for t.err == nil {
		tok, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "style":
				style, _ = attr(tok, "name")
			case "paragraph-properties":
				if v, _ := attr(tok, "break-before"); v == "page" && style != "" {
					before[style] = true
				}
				if v, _ := attr(tok, "break-after"); v == "page" && style != "" {
					after[style] = true
				}
			case "note", "annotation", "tracked-changes":
				if err := x.skip(); err != nil {
					return nil, err
				}
			case "p", "h":
				s, _ := attr(tok, "style-name")
				if before[s] {
					t.WriteString(pageBreak)
				}
				paraStyle = append(paraStyle, s)
				inPara++
			case "s":
				n := 1
				if v, ok := attr(tok, "c"); ok {
					if c, err := strconv.Atoi(v); err == nil && c > 0 {
						n = min(c, 100)
					}
				}
				w.text(strings.Repeat(" ", n))
			case "tab":
				w.text("\t")
			case "line-break":
				w.text("\n")
			case "table":
				w.tableStart()
			case "table-row":
				w.rowStart()
			case "table-cell", "covered-table-cell":
				w.cellStart()
			}
		case xml.EndElement:
			switch tok.Name.Local {
			case "style":
				style = ""
			case "p", "h":
				w.paragraphEnd()
				if n := len(paraStyle); n > 0 {
					if after[paraStyle[n-1]] {
						t.WriteString(pageBreak)
					}
					paraStyle = paraStyle[:n-1]
				}
				inPara--
			case "table-row":
				w.rowEnd()
			case "table":
				w.tableEnd()
			}
		case xml.CharData:
			if inPara > 0 {
				// ODF collapses white space in text content like HTML:
				// spaces that matter are written as text:s.
				w.text(collapseSpace(string(tok)))
			}
		}
	}
	if t.err != nil {
		return nil, t.err
	}
	return splitPages(t.String()), nil
}

// collapseSpace replaces each run of white space by one space.
func collapseSpace(s string) string {
	if !strings.ContainsAny(s, " \t\n\r") {
		return s
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if space {
		b.WriteByte(' ')
	}
	return b.String()
}
