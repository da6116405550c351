package formats

import (
	"fmt"
	"testing"
)

const wNS = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"`

func TestReadDOCXStructure(t *testing.T) {
	tests := []struct {
		name string
		body string // inside w:body
		want []string
	}{
		{"runs join, paragraphs break",
			`<w:p><w:r><w:t>Massi</w:t></w:r><w:r><w:t xml:space="preserve">male </w:t></w:r><w:r><w:t>unico</w:t></w:r></w:p><w:p><w:r><w:t>Franchigia</w:t></w:r></w:p>`,
			[]string{"Massimale unico\nFranchigia\n"}},
		{"tab stops are not text, run tabs are",
			`<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Premio</w:t><w:tab/><w:t>1.200 €</w:t></w:r></w:p>`,
			[]string{"Premio\t1.200 €\n"}},
		{"deleted text and field codes are skipped",
			`<w:p><w:r><w:t>Decorrenza </w:t></w:r><w:del><w:r><w:delText>2026</w:delText></w:r></w:del><w:r><w:instrText> DATE </w:instrText></w:r><w:r><w:t>2027</w:t></w:r></w:p>`,
			[]string{"Decorrenza 2027\n"}},
		{"text box fallback is not read twice",
			`<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:txbxContent><w:p><w:r><w:t>Nota</w:t></w:r></w:p></w:txbxContent></mc:Choice><mc:Fallback><w:txbxContent><w:p><w:r><w:t>Nota</w:t></w:r></w:p></w:txbxContent></mc:Fallback></mc:AlternateContent></w:r></w:p>`,
			[]string{"Nota\n\n"}},
		{"table rows are lines of cells, a cell's paragraphs one line",
			`<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Via Po</w:t></w:r></w:p><w:p><w:r><w:t>Torino</w:t></w:r></w:p></w:tc><w:tc><w:p/></w:tc><w:tc><w:p><w:r><w:t>TO</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:p><w:r><w:t>a</w:t></w:r></w:p></w:tc></w:tr></w:tbl>`,
			[]string{"Via Po Torino\t\tTO\na\n"}},
		{"explicit page breaks make pages, leading and trailing breaks do not",
			`<w:p><w:pPr><w:pageBreakBefore/></w:pPr><w:r><w:t>uno</w:t></w:r></w:p><w:p><w:r><w:br w:type="page"/><w:t>due</w:t></w:r></w:p><w:p><w:pPr><w:pageBreakBefore w:val="0"/></w:pPr><w:r><w:t>ancora due</w:t><w:br/><w:t>a capo</w:t></w:r></w:p><w:p><w:r><w:br w:type="page"/></w:r></w:p>`,
			[]string{"uno\n", "due\nancora due\na capo\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + wNS + `><w:body>` + tt.body + `</w:body></w:document>`
			pages, err := readDOCX(zipOf(t, [2]string{"word/document.xml", doc}), Limits{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", pages) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("pages %q, want %q", pages, tt.want)
			}
		})
	}
}

const odtNS = `xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"`

func TestReadODTStructure(t *testing.T) {
	styles := `<office:automatic-styles><style:style style:name="P1" style:family="paragraph"><style:paragraph-properties fo:break-before="page"/></style:style><style:style style:name="P2" style:family="paragraph"><style:paragraph-properties fo:break-after="page"/></style:style></office:automatic-styles>`
	tests := []struct {
		name string
		body string // inside office:text
		want []string
	}{
		{"spaces, tabs and line breaks",
			`<text:h>Titolo</text:h><text:p>Premio<text:tab/>1.200<text:s text:c="3"/>€ <text:span>annuo</text:span><text:line-break/>rata   unica</text:p>`,
			[]string{"Titolo\nPremio\t1.200   € annuo\nrata unica\n"}},
		{"notes and annotations are skipped",
			`<text:p>Massimale<text:note><text:note-citation>1</text:note-citation><text:note-body><text:p>nota</text:p></text:note-body></text:note> unico<office:annotation><text:p>commento</text:p></office:annotation></text:p>`,
			[]string{"Massimale unico\n"}},
		{"tables",
			`<table:table><table:table-row><table:table-cell><text:p>Targa</text:p></table:table-cell><table:table-cell/><table:table-cell><text:p>GH461XW</text:p></table:table-cell></table:table-row></table:table>`,
			[]string{"Targa\t\tGH461XW\n"}},
		{"page breaks from paragraph styles",
			`<text:p>uno</text:p><text:p text:style-name="P1">due</text:p><text:p text:style-name="P2">ancora due</text:p><text:p>tre</text:p>`,
			[]string{"uno\n", "due\nancora due\n", "tre\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `<?xml version="1.0" encoding="UTF-8"?><office:document-content ` + odtNS + `>` + styles + `<office:body><office:text>` + tt.body + `</office:text></office:body></office:document-content>`
			b := zipOf(t, [2]string{"mimetype", TypeODT}, [2]string{"content.xml", doc})
			pages, err := readODT(b, Limits{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", pages) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("pages %q, want %q", pages, tt.want)
			}
		})
	}
}
