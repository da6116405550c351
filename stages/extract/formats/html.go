package formats

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	htmlcharset "golang.org/x/net/html/charset"
	"golang.org/x/text/encoding/charmap"

	"prismflow/pipeline"
)

// readHTMLFile decodes an HTML file to UTF-8 (BOM, then <meta charset>,
// then a guess, as browsers do) and returns its text.
func readHTMLFile(b []byte, contentType string, lim Limits) (string, error) {
	enc, name, _ := htmlcharset.DetermineEncoding(b, contentType)
	if name != "utf-8" {
		d, err := enc.NewDecoder().Bytes(b)
		if err != nil {
			return "", pipeline.Permanent(fmt.Errorf("decode HTML as %s: %w", name, err))
		}
		b = d
	}
	return htmlText(bytes.NewReader(b), lim)
}

// skipped are elements whose content is not text a reader sees.
var skipped = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true,
	atom.Title: true, atom.Svg: true, atom.Math: true, atom.Object: true,
	atom.Iframe: true, atom.Select: true, atom.Button: true,
}

// blocks are elements that start and end a line.
var blocks = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true,
	atom.Caption: true, atom.Dd: true, atom.Details: true, atom.Dialog: true,
	atom.Div: true, atom.Dl: true, atom.Dt: true, atom.Fieldset: true,
	atom.Figcaption: true, atom.Figure: true, atom.Footer: true, atom.Form: true,
	atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true,
	atom.H6: true, atom.Header: true, atom.Hr: true, atom.Li: true, atom.Main: true,
	atom.Nav: true, atom.Ol: true, atom.P: true, atom.Pre: true, atom.Section: true,
	atom.Summary: true, atom.Table: true, atom.Ul: true,
	atom.Body: true, atom.Html: true,
}

// paragraphs are blocks followed by a blank line, as a browser's margins
// set them apart.
var paragraphs = map[atom.Atom]bool{
	atom.P: true, atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true,
	atom.H5: true, atom.H6: true, atom.Table: true, atom.Blockquote: true,
	atom.Pre: true, atom.Ul: true, atom.Ol: true,
}

// htmlText returns the text of UTF-8 HTML as a browser would show it,
// roughly: script, style and the title are dropped, white space collapses
// outside <pre>, blocks and <br> break lines, and table rows become lines
// of tab-separated cells. It streams tokens, so memory is bounded by the
// text produced, which Limits.MaxTextBytes caps.
func htmlText(r io.Reader, lim Limits) (string, error) {
	z := html.NewTokenizer(r)
	// One token (a huge text run or attribute) may not exceed the text cap.
	z.SetMaxBuf(int(lim.MaxTextBytes))
	w := htmlWriter{t: &textBuilder{max: lim.MaxTextBytes}, lineStart: true}
	var (
		skip  atom.Atom // element being skipped, with its nesting depth
		skipN int
		pre   int
		cells []int // per open table, the cells begun in the current row
	)
	for w.t.err == nil {
		tt := z.Next()
		if tt == html.ErrorToken {
			err := z.Err()
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, html.ErrBufferExceeded) {
				return "", pipeline.Permanent(fmt.Errorf("HTML token over the %d byte limit", lim.MaxTextBytes))
			}
			return "", pipeline.Permanent(fmt.Errorf("read HTML: %w", err))
		}
		name, _ := z.TagName()
		a := atom.Lookup(name)
		if skipN > 0 {
			switch {
			case tt == html.StartTagToken && a == skip:
				skipN++
			case tt == html.EndTagToken && a == skip:
				skipN--
			}
			continue
		}
		switch tt {
		case html.TextToken:
			if pre > 0 {
				w.raw(string(z.Text()))
			} else {
				w.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			switch {
			case skipped[a]:
				if tt == html.StartTagToken {
					skip, skipN = a, 1
				}
			case a == atom.Br:
				w.newline()
			case a == atom.Tr:
				w.newline()
				if n := len(cells); n > 0 {
					cells[n-1] = 0
				}
			case a == atom.Td || a == atom.Th:
				if n := len(cells); n > 0 {
					if cells[n-1] > 0 {
						w.tab()
					}
					cells[n-1]++
				}
			case blocks[a]:
				w.newline()
				if a == atom.Table {
					cells = append(cells, 0)
				}
				if a == atom.Pre {
					pre++
				}
			}
		case html.EndTagToken:
			switch {
			case a == atom.Tr:
				w.newline()
			case blocks[a]:
				w.newline()
				if paragraphs[a] {
					w.blankLine()
				}
				if a == atom.Table && len(cells) > 0 {
					cells = cells[:len(cells)-1]
				}
				if a == atom.Pre && pre > 0 {
					pre--
				}
			}
		}
	}
	if w.t.err != nil {
		return "", w.t.err
	}
	return w.t.String(), nil
}

// htmlWriter collapses white space the way a browser renders it.
type htmlWriter struct {
	t         *textBuilder
	lineStart bool // nothing written since the last line end
	afterTab  bool // nothing written since the last cell separator
	space     bool // white space is due before the next word
	blank     bool // the last line end was a blank line
}

func (w *htmlWriter) text(s string) {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		if isHTMLSpace(r) {
			w.space = true
			continue
		}
		if w.space && !w.lineStart && !w.afterTab {
			w.t.WriteString(" ")
		}
		w.space = false
		w.lineStart, w.afterTab, w.blank = false, false, false
		w.t.WriteString(string(r))
	}
}

func (w *htmlWriter) raw(s string) {
	if s == "" {
		return
	}
	w.space = false
	w.t.WriteString(s)
	w.lineStart = strings.HasSuffix(s, "\n")
	w.afterTab, w.blank = false, false
}

func (w *htmlWriter) newline() {
	w.space, w.afterTab = false, false
	if !w.lineStart {
		w.t.WriteString("\n")
		w.lineStart = true
	}
}

func (w *htmlWriter) blankLine() {
	if w.lineStart && !w.blank && w.t.Len() > 0 {
		w.t.WriteString("\n")
		w.blank = true
	}
}

func (w *htmlWriter) tab() {
	w.space = false
	w.t.WriteString("\t")
	w.lineStart, w.afterTab, w.blank = false, true, false
}

func isHTMLSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f':
		return true
	}
	return false
}

// decodeText returns b as a string: UTF-8 (a BOM dropped) when it is
// valid UTF-8, else Windows-1252, which decodes every byte and is what
// Italian and English Windows programs write when they do not write UTF-8.
func decodeText(b []byte) (string, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if utf8.Valid(b) {
		return string(b), nil
	}
	d, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return "", pipeline.Permanent(fmt.Errorf("decode text: %w", err))
	}
	return string(d), nil
}
