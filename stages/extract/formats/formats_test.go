package formats

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"prismflow/stages/internal/sniff"
	"strings"
	"testing"

	"prismflow/pipeline"
)

// readTestdata reads a fixture. The Office fixtures were made from
// testdata/polizza.html and testdata/premi.fods with LibreOffice
// (soffice --headless --convert-to docx|odt|xlsx); the tests need only
// the committed files.
func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The text of polizza.html, which the DOCX and ODT were converted from.
var (
	polizzaPage1 = []string{
		"Proposta di polizza RC Professionale",
		"Contraente: Studio Tecnico Bianchi & Associati S.r.l., con sede in Via Po 12, Torino.",
		"La presente proposta è valida per il periodo di assicurazione indicato e si intende accettata con la firma del contraente. Le garanzie operano per i sinistri denunciati durante il periodo di validità.",
		"Garanzia\tMassimale\tFranchigia",
		"Responsabilità civile professionale\t1.500.000 €\t2.500 €",
		// The empty Franchigia cell keeps its tab, so columns line up.
		"Tutela legale\t50.000 €\t",
	}
	polizzaPage2 = []string{
		"Seconda pagina: dichiarazioni del contraente.",
		"Il contraente dichiara di non aver ricevuto richieste di risarcimento negli ultimi cinque anni.",
	}
)

func TestReadDocuments(t *testing.T) {
	tests := []struct {
		file, contentType string
		pages             [][]string // lines each page must contain
		absent            []string
	}{
		{"polizza.docx", TypeDOCX, [][]string{polizzaPage1, polizzaPage2}, nil},
		{"polizza.odt", TypeODT, [][]string{polizzaPage1, polizzaPage2}, nil},
		// A browser shows HTML on one page: the CSS page break is print only.
		{"polizza.html", TypeHTML, [][]string{append(append([]string{}, polizzaPage1...), polizzaPage2...)},
			[]string{"nonDeveComparire", "font-family", "Proposta di polizza\n"}},
		{"premi.xlsx", TypeXLSX, [][]string{
			{"Veicoli", "Targa\tModello\tValore assicurato\tDecorrenza", "GH461XW\tFiat Ducato\t28500.5\t2027-01-01", "FY682SR\t\t31000"},
			{"Sinistri", "Anno\tNumero sinistri\tImporto liquidato", "2025\t2\t4350"},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := readTestdata(t, tt.file)
			if ct, ok := sniff.Detect(bytes.NewReader(b), int64(len(b))); !ok || ct != tt.contentType {
				t.Errorf("Detect = %q, %v; want %q", ct, ok, tt.contentType)
			}
			var r Reader
			res, err := r.Read(context.Background(), tt.contentType, tt.file, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Pages) != len(tt.pages) {
				t.Fatalf("%d pages, want %d:\n%q", len(res.Pages), len(tt.pages), res.Pages)
			}
			for i, want := range tt.pages {
				got := lines(res.Pages[i])
				for _, w := range want {
					if !got[w] {
						t.Errorf("page %d lacks line %q; text:\n%s", i+1, w, res.Pages[i])
					}
				}
			}
			all := strings.Join(res.Pages, "\n")
			for _, a := range tt.absent {
				if strings.Contains(all, a) {
					t.Errorf("text contains %q; text:\n%s", a, all)
				}
			}
			if res.Sender != "" || res.Subject != "" || len(res.Attachments) != 0 {
				t.Errorf("a %s has sender %q, subject %q, %d attachments", tt.contentType, res.Sender, res.Subject, len(res.Attachments))
			}
		})
	}
}

// lines returns the set of lines of s, each trimmed of spaces at its
// ends (tabs between cells are kept).
func lines(s string) map[string]bool {
	m := map[string]bool{}
	for l := range strings.Lines(s) {
		m[strings.Trim(l, " \n\r")] = true
	}
	return m
}

// zipOf builds a zip archive of name → content.
func zipOf(tb testing.TB, entries ...[2]string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write([]byte(e[1])); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// bombZip is a real zip bomb: an entry of n zero bytes, deflated to a
// few KiB per MiB.
func bombZip(tb testing.TB, name string, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(zero))
		if _, err := w.Write(zero[:k]); err != nil {
			tb.Fatal(err)
		}
		n -= k
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// lyingZip has an entry whose header declares 100 bytes but which
// inflates to 1 MiB: the kind of bomb that passes a size check on the
// central directory alone.
func lyingZip(tb testing.TB, name string) []byte {
	tb.Helper()
	// Deflate 1 MiB with the standard writer, then copy the compressed
	// bytes under a header that lies about the size.
	honest := zipOf(tb, [2]string{name, strings.Repeat("a", 1<<20)})
	zr, err := zip.NewReader(bytes.NewReader(honest), int64(len(honest)))
	if err != nil {
		tb.Fatal(err)
	}
	f := zr.File[0]
	raw, err := f.OpenRaw()
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := f.FileHeader
	h.UncompressedSize64 = 100
	w, err := zw.CreateRaw(&h)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(w, raw); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&lol3;</w:t></w:r></w:p></w:body></w:document>`

func TestReadBadInput(t *testing.T) {
	docx := readTestdata(t, "polizza.docx")
	hugeText := `<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>` + strings.Repeat("polizza ", 300<<10) + `</w:t></w:r></w:p></w:body></w:document>`
	tests := []struct {
		name, contentType string
		b                 []byte
		lim               Limits
		want              string // in the error message
	}{
		{"zip bomb docx", TypeDOCX, bombZip(t, "word/document.xml", 65<<20), Limits{}, "over the 67108864 byte limit"},
		{"zip bomb total", TypeXLSX, zipOf(t, [2]string{"xl/workbook.xml", `<workbook><sheets><sheet name="a"/></sheets></workbook>`}, [2]string{"xl/worksheets/sheet1.xml", strings.Repeat(" ", 2<<20)}), Limits{MaxUnzippedBytes: 1 << 20}, "over 1048576 uncompressed bytes"},
		{"zip entry lies about its size", TypeDOCX, lyingZip(t, "word/document.xml"), Limits{}, "corrupt zip entry word/document.xml"},
		{"corrupt zip", TypeDOCX, docx[:len(docx)/2], Limits{}, "corrupt zip container"},
		{"not a zip", TypeODT, []byte("questo non è un file OpenDocument"), Limits{}, "corrupt zip container"},
		{"zip without document", TypeDOCX, zipOf(t, [2]string{"readme.txt", "ciao"}), Limits{}, "no word/document.xml"},
		{"xml entity bomb", TypeDOCX, zipOf(t, [2]string{"word/document.xml", billionLaughs}), Limits{}, "malformed XML in word/document.xml"},
		{"malformed xml", TypeDOCX, zipOf(t, [2]string{"word/document.xml", "<w:document><w:body><w:p>"}), Limits{}, "malformed XML"},
		{"huge xml text", TypeDOCX, zipOf(t, [2]string{"word/document.xml", hugeText}), Limits{MaxTextBytes: 1 << 20}, "text over the size limit"},
		{"huge html", TypeHTML, []byte("<p>" + strings.Repeat("polizza ", 300<<10)), Limits{MaxTextBytes: 1 << 20}, "limit"},
		{"outlook msg", TypeMSG, []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), Limits{}, "application/vnd.ms-outlook"},
		{"unknown type", "application/x-unknown", []byte("x"), Limits{}, "unsupported content type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Reader{Limits: tt.lim}
			_, err := r.Read(context.Background(), tt.contentType, "file", tt.b)
			if err == nil {
				t.Fatal("no error")
			}
			if !pipeline.IsPermanent(err) {
				t.Errorf("error is not permanent: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestExcelDate(t *testing.T) {
	tests := []struct {
		serial   float64
		date1904 bool
		want     string
	}{
		{46388, false, "2027-01-01"},
		{1, false, "1899-12-31"},
		{61, false, "1900-03-01"},
		{46388.5, false, "2027-01-01 12:00:00"},
		{0, true, "1904-01-01"},
	}
	for _, tt := range tests {
		got, ok := excelDate(tt.serial, tt.date1904)
		if !ok || got != tt.want {
			t.Errorf("excelDate(%v, %v) = %q, %v; want %q", tt.serial, tt.date1904, got, ok, tt.want)
		}
	}
	if _, ok := excelDate(-1, false); ok {
		t.Error("negative serial accepted")
	}
}
