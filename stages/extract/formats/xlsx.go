package formats

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"prismflow/pipeline"
)

// maxColumns is Excel's column limit (XFD); a cell reference past it is
// corrupt, and capping it bounds the row a reference can make us build.
const maxColumns = 16384

type sheetRef struct{ name, part string }

// readXLSX reads each worksheet listed in xl/workbook.xml in workbook
// order as one page: the sheet name, then each non-empty row as a line of
// tab-separated cell values. Shared and inline strings are resolved;
// numbers in a date format are written as ISO dates, since a serial
// number like 46023 means nothing to a reader of the text.
func readXLSX(b []byte, lim Limits) ([]string, error) {
	a, err := openArchive(b, lim)
	if err != nil {
		return nil, err
	}
	if !a.has("xl/workbook.xml") {
		return nil, pipeline.Permanent(errors.New("not an XLSX: the zip container has no xl/workbook.xml"))
	}
	sheets, date1904, err := readWorkbook(a)
	if err != nil {
		return nil, err
	}
	shared, err := readSharedStrings(a)
	if err != nil {
		return nil, err
	}
	dateStyles, err := readDateStyles(a)
	if err != nil {
		return nil, err
	}
	t := &textBuilder{max: lim.MaxTextBytes}
	pages := make([]string, 0, len(sheets))
	for _, s := range sheets {
		start := t.Len()
		t.WriteString(s.name)
		t.WriteString("\n")
		if err := readSheet(a, s.part, shared, dateStyles, date1904, t); err != nil {
			return nil, err
		}
		if t.err != nil {
			return nil, t.err
		}
		pages = append(pages, t.String()[start:])
	}
	if len(pages) == 0 {
		return nil, pipeline.Permanent(errors.New("XLSX workbook lists no sheets"))
	}
	return pages, nil
}

// readWorkbook returns the sheets in workbook order with the zip part of
// each, resolved through xl/_rels/workbook.xml.rels.
func readWorkbook(a *archive) ([]sheetRef, bool, error) {
	const relsPart = "xl/_rels/workbook.xml.rels"
	targets := map[string]string{}
	if a.has(relsPart) {
		data, err := a.read(relsPart)
		if err != nil {
			return nil, false, err
		}
		x := newXMLReader(relsPart, data)
		for {
			tok, err := x.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, false, err
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "Relationship" {
				id, _ := attr(se, "Id")
				target, _ := attr(se, "Target")
				if strings.HasPrefix(target, "/") {
					target = strings.TrimPrefix(target, "/")
				} else {
					target = path.Join("xl", target)
				}
				targets[id] = target
			}
		}
	}
	const part = "xl/workbook.xml"
	data, err := a.read(part)
	if err != nil {
		return nil, false, err
	}
	x := newXMLReader(part, data)
	var (
		sheets   []sheetRef
		date1904 bool
	)
	for {
		tok, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "workbookPr":
			if v, ok := attr(se, "date1904"); ok {
				date1904 = v == "1" || v == "true"
			}
		case "sheet":
			name, _ := attr(se, "name")
			var id string
			for _, at := range se.Attr {
				// r:id, in the relationships namespace (not sheetId).
				if at.Name.Local == "id" && strings.Contains(at.Name.Space, "relationships") {
					id = at.Value
				}
			}
			target, ok := targets[id]
			if !ok {
				// Without relationships every writer uses this layout.
				target = fmt.Sprintf("xl/worksheets/sheet%d.xml", len(sheets)+1)
			}
			sheets = append(sheets, sheetRef{name: name, part: target})
		}
	}
	return sheets, date1904, nil
}

// readSharedStrings returns the shared string table; phonetic runs
// (rPh) are not part of the text.
func readSharedStrings(a *archive) ([]string, error) {
	const part = "xl/sharedStrings.xml"
	if !a.has(part) {
		return nil, nil
	}
	data, err := a.read(part)
	if err != nil {
		return nil, err
	}
	x := newXMLReader(part, data)
	var (
		out  []string
		cur  strings.Builder
		inT  bool
		inSI bool
	)
	for {
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
			case "si":
				inSI = true
				cur.Reset()
			case "t":
				inT = inSI
			case "rPh":
				if err := x.skip(); err != nil {
					return nil, err
				}
			}
		case xml.EndElement:
			switch tok.Name.Local {
			case "si":
				out = append(out, cur.String())
				inSI = false
			case "t":
				inT = false
			}
		case xml.CharData:
			if inT {
				cur.Write(tok)
			}
		}
	}
	return out, nil
}

// readDateStyles returns, for each cell style index (the s attribute of a
// cell), whether its number format shows a date.
func readDateStyles(a *archive) ([]bool, error) {
	const part = "xl/styles.xml"
	if !a.has(part) {
		return nil, nil
	}
	data, err := a.read(part)
	if err != nil {
		return nil, err
	}
	x := newXMLReader(part, data)
	custom := map[int]bool{}
	var (
		out   []bool
		inXfs bool
	)
	for {
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
			case "numFmt":
				id, _ := attr(tok, "numFmtId")
				code, _ := attr(tok, "formatCode")
				if n, err := strconv.Atoi(id); err == nil {
					custom[n] = isDateFormat(code)
				}
			case "cellXfs":
				inXfs = true
			case "xf":
				if inXfs {
					id, _ := attr(tok, "numFmtId")
					n, _ := strconv.Atoi(id)
					date, ok := custom[n]
					if !ok {
						// Built-in date and time formats (ECMA-376 18.8.30).
						date = (n >= 14 && n <= 22) || (n >= 45 && n <= 47)
					}
					out = append(out, date)
				}
			}
		case xml.EndElement:
			if tok.Name.Local == "cellXfs" {
				inXfs = false
			}
		}
	}
	return out, nil
}

// isDateFormat reports whether an Excel number format code shows a date:
// it has a day, month or year token outside quoted text, escapes and
// [brackets] (colours, locales, elapsed time).
func isDateFormat(code string) bool {
	quoted, bracket := false, false
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case quoted:
			quoted = c != '"'
		case bracket:
			bracket = c != ']'
		case c == '"':
			quoted = true
		case c == '[':
			bracket = true
		case c == '\\' || c == '_' || c == '*':
			i++ // the next character is literal or padding
		case c == 'd' || c == 'D' || c == 'y' || c == 'Y' || c == 'm' || c == 'M':
			return true
		}
	}
	return false
}

// readSheet writes the non-empty rows of one worksheet to t.
func readSheet(a *archive, part string, shared []string, dateStyles []bool, date1904 bool, t *textBuilder) error {
	if !a.has(part) {
		return pipeline.Permanent(fmt.Errorf("XLSX workbook lists sheet part %s, which is missing", part))
	}
	data, err := a.read(part)
	if err != nil {
		return err
	}
	x := newXMLReader(part, data)
	var (
		row      []string
		col      int // next column when a cell has no reference
		cellType string
		cellCol  int
		date     bool
		val      strings.Builder
		inVal    bool
	)
	for t.err == nil {
		tok, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "row":
				row = row[:0]
				col = 0
			case "c":
				cellType, _ = attr(tok, "t")
				cellCol = col
				if ref, ok := attr(tok, "r"); ok {
					if c, ok := columnIndex(ref); ok {
						cellCol = c
					}
				}
				if cellCol >= maxColumns {
					return pipeline.Permanent(fmt.Errorf("%s: cell column %d is past Excel's %d columns", part, cellCol+1, maxColumns))
				}
				date = false
				if s, ok := attr(tok, "s"); ok {
					if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(dateStyles) {
						date = dateStyles[n]
					}
				}
				val.Reset()
			case "v", "t":
				inVal = true
			case "f", "rPh":
				// The formula's cached result is in v; the formula itself
				// is not text a reader sees.
				if err := x.skip(); err != nil {
					return err
				}
			}
		case xml.EndElement:
			switch tok.Name.Local {
			case "v", "t":
				inVal = false
			case "c":
				s := cellValue(cellType, val.String(), shared, date, date1904)
				for len(row) <= cellCol {
					row = append(row, "")
				}
				row[cellCol] = s
				col = cellCol + 1
			case "row":
				writeRow(t, row)
			}
		case xml.CharData:
			if inVal {
				val.Write(tok)
			}
		}
	}
	return t.err
}

func writeRow(t *textBuilder, row []string) {
	last := -1
	for i, c := range row {
		// Tabs or line ends inside a cell would break the row's shape.
		row[i] = strings.Join(strings.Fields(c), " ")
		if row[i] != "" {
			last = i
		}
	}
	if last < 0 {
		return
	}
	t.WriteString(strings.Join(row[:last+1], "\t"))
	t.WriteString("\n")
}

// columnIndex returns the 0-based column of a cell reference like "AB12".
func columnIndex(ref string) (int, bool) {
	n := 0
	i := 0
	for ; i < len(ref); i++ {
		c := ref[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			break
		}
		n = n*26 + int(c-'A'+1)
		if n > maxColumns {
			return maxColumns, true
		}
	}
	if i == 0 {
		return 0, false
	}
	return n - 1, true
}

func cellValue(typ, v string, shared []string, date, date1904 bool) string {
	switch typ {
	case "s":
		i, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || i < 0 || i >= len(shared) {
			return ""
		}
		return shared[i]
	case "b":
		if strings.TrimSpace(v) == "1" {
			return "TRUE"
		}
		return "FALSE"
	case "str", "inlineStr", "e":
		return v
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return v
	}
	if date {
		if s, ok := excelDate(f, date1904); ok {
			return s
		}
	}
	// The shortest form that reads back the same value: 0.1, not
	// 0.10000000000000001 as Excel stores it.
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// excelDate converts an Excel serial date to ISO 8601. Serials count days
// from 1899-12-30 (which absorbs Lotus 1-2-3's fictitious 1900-02-29), or
// from 1904-01-01 in the 1904 date system.
func excelDate(serial float64, date1904 bool) (string, bool) {
	if serial < 0 || serial > 2958465 || math.IsNaN(serial) { // 9999-12-31
		return "", false
	}
	base := time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	if date1904 {
		base = time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	days := math.Floor(serial)
	secs := math.Round((serial - days) * 86400)
	tm := base.AddDate(0, 0, int(days)).Add(time.Duration(secs) * time.Second)
	if secs == 0 {
		return tm.Format("2006-01-02"), true
	}
	return tm.Format("2006-01-02 15:04:05"), true
}
