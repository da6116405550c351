package main

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"prismflow/pipeline/testenv"
	"prismflow/pipeline/topology"
)

// TestHostileCorpusEndsCleanly uploads a generated corpus of hostile files
// (truncated and corrupt PDFs, bombs, polyglots, junk) plus the real
// corpus to one prismflow process, and checks that each file is either
// refused at the API with a JSON error or finishes done or failed with an
// error, that failed documents have exactly one dead letter each, and that
// the process survives with bounded memory.
func TestHostileCorpusEndsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile corpus end-to-end runs the whole pipeline")
	}
	shared := sharedDir(t)
	dir := t.TempDir()
	files := hostileCorpus(t, shared)
	if len(files) < 50 {
		t.Fatalf("hostile corpus has %d files, want at least 50", len(files))
	}
	var paths []string
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// The real corpus's readable PDFs must still come through as done:
	// a guard that refuses good files too would pass everything else.
	mustBeDone := map[string]bool{}
	for _, f := range realCorpus(t) {
		paths = append(paths, f.Path)
		mustBeDone[filepath.Base(f.Path)] = f.HasText && !f.Encrypted
	}

	p := startPrismflow(t, testenv.Postgres(t))
	pid := p.cmd.Process.Pid

	ids := map[string]string{} // document id -> file
	refused := 0
	for _, path := range paths {
		id, status, msg := rawUpload(t, p.api, path)
		switch {
		case status == http.StatusAccepted:
			ids[id] = filepath.Base(path)
		case status >= 400 && status < 500 && msg != "":
			refused++
			t.Logf("refused %s: %d %s", filepath.Base(path), status, msg)
		default:
			t.Errorf("upload %s: status %d body %q, want 202 or a 4xx JSON error", filepath.Base(path), status, msg)
		}
	}

	// Poll rather than waitFinished so that a crash is reported as such,
	// naming the documents still in flight.
	finished := map[string]docJSON{}
	deadline := time.Now().Add(6 * time.Minute)
	for len(finished) < len(ids) && time.Now().Before(deadline) {
		select {
		case err := <-p.waited:
			p.cmd = nil
			var open []string
			for id, name := range ids {
				if _, ok := finished[id]; !ok {
					open = append(open, name)
				}
			}
			t.Fatalf("prismflow exited (%v) with these documents unfinished: %v", err, open)
		default:
		}
		for id := range ids {
			if _, ok := finished[id]; ok {
				continue
			}
			if d, ok := p.document(id); ok && d.finished() {
				finished[id] = d
			}
		}
		if len(finished) < len(ids) {
			time.Sleep(300 * time.Millisecond)
		}
	}
	failed := map[string]bool{}
	for id, name := range ids {
		d, ok := finished[id]
		switch {
		case !ok:
			d, _ := p.document(id)
			t.Errorf("%s (%s) not finished within the deadline: status %q stages %v", name, id, d.Status, d.Stages)
		case mustBeDone[name] && d.Status != "done":
			t.Errorf("real corpus %s: status %q (%s), want done", name, d.Status, d.Error)
		case d.Status == "failed" && strings.TrimSpace(d.Error) == "":
			t.Errorf("%s failed without an error message", name)
		case d.Status == "failed":
			failed[id] = true
			t.Logf("failed %s: %s", name, d.Error)
		case d.Status != "done":
			t.Errorf("%s finished with status %q", name, d.Status)
		}
	}

	resp, err := http.Get(p.api + "/readyz")
	if err != nil {
		t.Fatalf("prismflow not reachable after the hostile corpus: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after the hostile corpus: %s", resp.Status)
	}
	hwm := peakRSS(t, pid)
	t.Logf("%d files: %d accepted (%d failed, %d done), %d refused at upload; peak RSS %d MiB",
		len(paths), len(ids), len(failed), len(ids)-len(failed), refused, hwm>>20)
	if hwm > 1536<<20 {
		t.Errorf("peak RSS %d MiB, want under 1.5 GiB", hwm>>20)
	}

	perDoc := map[string]int{}
	for _, r := range consumeAll(t, p.broker, topology.DeadLetter) {
		perDoc[string(r.Key)]++
	}
	for id, name := range ids {
		want := 0
		if failed[id] {
			want = 1
		}
		if perDoc[id] != want {
			t.Errorf("%s: %d dead letters, want %d", name, perDoc[id], want)
		}
	}
}

// rawUpload posts one file and returns the id on 202, else the status and
// the JSON error message (empty when the body is not a JSON error).
func rawUpload(t *testing.T, api, path string) (id string, status int, msg string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("file", filepath.Base(path))
	if err == nil {
		_, err = part.Write(b)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(api+"/v1/documents", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode == http.StatusAccepted {
		if out.ID == "" {
			t.Fatalf("upload %s: 202 without an id: %s", path, raw)
		}
		return out.ID, resp.StatusCode, ""
	}
	return "", resp.StatusCode, out.Error
}

// peakRSS reads VmHWM, the process's resident-set high-water mark.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read peak RSS: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse VmHWM %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// hostileCorpus generates the hostile files, keyed by file name.
func hostileCorpus(t *testing.T, shared string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(shared, "corpus/real", rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fourPages := read("004-pdflatex-4-pages/pdflatex-4-pages.pdf")
	trivial := read("001-trivial/minimal-document.pdf")
	image := read("003-pdflatex-image/pdflatex-image.pdf")

	// Truncated at several points, with and without a %%EOF put back so
	// that the cheap tail check does not catch them all.
	for _, src := range []struct {
		name string
		b    []byte
	}{{"4pages", fourPages}, {"trivial", trivial}, {"image", image}} {
		for _, frac := range []float64{0.01, 0.1, 0.5, 0.9, 0.99} {
			cut := src.b[:int(float64(len(src.b))*frac)]
			out[fmt.Sprintf("trunc-%s-%02.0f.pdf", src.name, frac*100)] = cut
			out[fmt.Sprintf("trunc-eof-%s-%02.0f.pdf", src.name, frac*100)] = append(bytes.Clone(cut), "\n%%EOF\n"...)
		}
	}

	// Corrupt cross-reference data.
	out["xref-past-end.pdf"] = setStartXref(fourPages, "99999999")
	out["xref-zero.pdf"] = setStartXref(fourPages, "0")
	out["xref-negative.pdf"] = setStartXref(fourPages, "-5")
	out["xref-garbage.pdf"] = bytes.ReplaceAll(fourPages, []byte(" 00000 n"), []byte(" 0000x n"))
	out["xref-shifted.pdf"] = bytes.ReplaceAll(fourPages, []byte(" 00000 n"), []byte("9 00000 n"))
	out["no-xref.pdf"] = bytes.ReplaceAll(fourPages, []byte("xref"), []byte("xxxx"))
	flipped := bytes.Clone(fourPages)
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		flipped[9+rng.IntN(len(flipped)-40)] ^= byte(1 + rng.IntN(255))
	}
	out["bitflips.pdf"] = flipped

	// Structural attacks on the page tree and objects.
	out["nested-arrays.pdf"] = hostilePDF("<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /X " +
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + ">>")
	out["nested-dicts.pdf"] = hostilePDF("<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /X " +
		strings.Repeat("<</A ", 50000) + "1" + strings.Repeat(">>", 50000) + ">>")
	out["unclosed-arrays.pdf"] = hostilePDF("<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /X " +
		strings.Repeat("[", 200000) + ">>")
	out["huge-mediabox.pdf"] = hostilePDF("<</Type /Page /Parent 2 0 R /MediaBox [0 0 1e30 1e30]>>")
	out["inverted-mediabox.pdf"] = hostilePDF("<</Type /Page /Parent 2 0 R /MediaBox [1e9 1e9 -1e9 -1e9]>>")
	out["nan-mediabox.pdf"] = hostilePDF("<</Type /Page /Parent 2 0 R /MediaBox [0 0 /a (b)]>>")
	out["page-tree-loop.pdf"] = pdfFromObjects(
		"<</Type /Catalog /Pages 2 0 R>>",
		"<</Type /Pages /Count 1 /Kids [2 0 R 3 0 R]>>",
		"<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>>")
	out["page-count-huge.pdf"] = pdfFromObjects(
		"<</Type /Catalog /Pages 2 0 R>>",
		"<</Type /Pages /Count 2147483647 /Kids [3 0 R]>>",
		"<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>>")
	out["page-count-negative.pdf"] = pdfFromObjects(
		"<</Type /Catalog /Pages 2 0 R>>",
		"<</Type /Pages /Count -1 /Kids [3 0 R]>>",
		"<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>>")
	out["no-pages.pdf"] = pdfFromObjects("<</Type /Catalog>>")
	out["self-referencing-kid.pdf"] = pdfFromObjects(
		"<</Type /Catalog /Pages 2 0 R>>",
		"<</Type /Pages /Count 1 /Kids [3 0 R]>>",
		"<</Type /Pages /Parent 2 0 R /Count 1 /Kids [3 0 R]>>")
	var zeros bytes.Buffer
	fw, _ := flate.NewWriter(&zeros, flate.BestCompression)
	chunk := make([]byte, 1<<20)
	for range 512 {
		_, _ = fw.Write(chunk)
	}
	_ = fw.Close()
	deflated := zeros.Bytes()
	// A content stream that inflates to 512 MiB (zlib header + raw deflate).
	stream := append([]byte{0x78, 0xda}, deflated...)
	out["flate-bomb.pdf"] = pdfFromObjects(
		"<</Type /Catalog /Pages 2 0 R>>",
		"<</Type /Pages /Count 1 /Kids [3 0 R]>>",
		"<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R>>",
		fmt.Sprintf("<</Length %d /Filter /FlateDecode>>\nstream\n%s\nendstream", len(stream), stream))
	out["stream-length-lies.pdf"] = pdfFromObjects(
		"<</Type /Catalog /Pages 2 0 R>>",
		"<</Type /Pages /Count 1 /Kids [3 0 R]>>",
		"<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R>>",
		"<</Length 999999999>>\nstream\nBT /F1 12 Tf (hi) Tj ET\nendstream")
	out["encrypt-dict-bogus.pdf"] = bytes.Replace(trivial, []byte("trailer"), []byte("trailer <</Encrypt <</Filter /Standard /V 9 /R 9>>>>"), 1)

	// Images claiming huge dimensions.
	out["bomb.png"] = testenv.BombPNG(100000, 100000)
	out["bomb-wide.png"] = testenv.BombPNG(0x7fffffff, 1)
	out["bomb.jpg"] = bombJPEG(65535, 65535)
	out["bomb.tiff"] = bombTIFF(1<<30, 1<<30)

	// Zip bombs wearing office clothes, and an entity bomb.
	out["zipbomb.docx"] = zipOf(t, map[string][]byte{"[Content_Types].xml": []byte(`<Types/>`)}, "word/document.xml", 256<<20)
	out["zipbomb.xlsx"] = zipOf(t, map[string][]byte{"[Content_Types].xml": []byte(`<Types/>`),
		"xl/workbook.xml": []byte(`<workbook><sheets><sheet name="a" r:id="rId1"/></sheets></workbook>`)}, "xl/sharedStrings.xml", 256<<20)
	out["zipbomb.odt"] = zipOf(t, map[string][]byte{"mimetype": []byte("application/vnd.oasis.opendocument.text")}, "content.xml", 256<<20)
	lol := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
		`<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">` +
		`<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>` +
		`<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&lol4;</w:t></w:r></w:p></w:body></w:document>`
	out["entity-bomb.docx"] = zipOf(t, map[string][]byte{"[Content_Types].xml": []byte(`<Types/>`), "word/document.xml": []byte(lol)}, "", 0)
	out["deep-xml.docx"] = zipOf(t, map[string][]byte{"[Content_Types].xml": []byte(`<Types/>`),
		"word/document.xml": []byte(strings.Repeat("<a>", 200000) + strings.Repeat("</a>", 200000))}, "", 0)
	out["docx-without-document.docx"] = zipOf(t, map[string][]byte{"[Content_Types].xml": []byte(`<Types/>`)}, "", 0)

	// E-mail: many attachments, deep nesting, broken MIME.
	var many strings.Builder
	many.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: many\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
	for i := range 1000 {
		fmt.Fprintf(&many, "--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a%d.pdf\"\r\n\r\n%%PDF-1.4 junk\r\n", i)
	}
	many.WriteString("--XX--\r\n")
	out["1000-attachments.eml"] = []byte(many.String())
	msg := "From: a@example.com\r\nTo: b@example.com\r\nSubject: deepest\r\n\r\nbottom\r\n"
	for i := range 50 {
		msg = fmt.Sprintf("From: a@example.com\r\nTo: b@example.com\r\nSubject: level %d\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n%s", i, msg)
	}
	out["nested-50.eml"] = []byte(msg)
	out["unterminated-mime.eml"] = []byte("From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=YY\r\n\r\n--YY\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", 1<<20))

	// Junk, empties and lies about the type.
	out["empty.pdf"] = nil
	out["empty.txt"] = nil
	for _, n := range []int{1, 17, 1 << 10, 64 << 10, 1 << 20} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		out[fmt.Sprintf("random-%d.bin", n)] = b
		out[fmt.Sprintf("random-%d.pdf", n)] = b
	}
	out["pdf-header-then-random.pdf"] = append([]byte("%PDF-1.7\n"), out["random-65536.bin"]...)
	docx := zipOf(t, map[string][]byte{"[Content_Types].xml": []byte(`<Types/>`),
		"word/document.xml": []byte(`<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello polyglot</w:t></w:r></w:p></w:body></w:document>`)}, "", 0)
	out["pdf-renamed.docx"] = fourPages
	out["docx-renamed.pdf"] = docx
	out["pdf-zip-polyglot.pdf"] = append(bytes.Clone(fourPages), docx...)
	out["zip-pdf-polyglot.docx"] = append(bytes.Clone(docx), fourPages...)
	out["pdf-html-polyglot.html"] = append([]byte("<html><body><p>hello</p><!--\n"), append(bytes.Clone(trivial), "\n--></body></html>"...)...)
	out["html-100k-divs.html"] = []byte("<html><body>" + strings.Repeat("<div>", 100000) + "deep" + strings.Repeat("</div>", 100000) + "</body></html>")
	out["html-unclosed.html"] = []byte("<html><body>" + strings.Repeat("<table><tr><td>", 30000))
	out["one-line.txt"] = bytes.Repeat([]byte("a"), 16<<20)
	out["invalid-utf8.txt"] = bytes.Repeat([]byte{0xff, 0xfe, 0xc3, 0x28, 'a', ' '}, 10000)
	out["nul-bytes.txt"] = make([]byte, 4096)
	return out
}

func setStartXref(pdf []byte, v string) []byte {
	i := bytes.LastIndex(pdf, []byte("startxref"))
	if i < 0 {
		return pdf
	}
	j := i + len("startxref")
	for j < len(pdf) && (pdf[j] == '\r' || pdf[j] == '\n' || pdf[j] == ' ') {
		j++
	}
	k := j
	for k < len(pdf) && pdf[k] >= '0' && pdf[k] <= '9' {
		k++
	}
	return append(append(bytes.Clone(pdf[:j]), v...), pdf[k:]...)
}

// hostilePDF is a one-page PDF whose page object is page.
func hostilePDF(page string) []byte {
	return pdfFromObjects("<</Type /Catalog /Pages 2 0 R>>", "<</Type /Pages /Count 1 /Kids [3 0 R]>>", page)
}

// pdfFromObjects writes objects 1..n with a correct xref table, so that
// only the hostile content is wrong.
func pdfFromObjects(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer <</Size %d /Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// bombJPEG is a baseline JPEG header claiming w x h with no image data.
func bombJPEG(w, h uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xc0, 0, 11, 8}
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 1, 1, 0x11, 0)
	return append(b, 0xff, 0xd9)
}

// bombTIFF is a little-endian TIFF whose only IFD claims w x h pixels.
func bombTIFF(w, h uint32) []byte {
	b := []byte{'I', 'I', 42, 0, 8, 0, 0, 0}
	entries := [][3]uint32{{256, 4, w}, {257, 4, h}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, 200}, {277, 3, 1}, {278, 4, h}, {279, 4, 1}}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, 1)
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	b = binary.LittleEndian.AppendUint32(b, 0)
	for len(b) < 201 {
		b = append(b, 0)
	}
	return b
}

// zipOf builds a zip with files and, when bomb is not empty, an entry of
// that name inflating to size bytes of spaces.
func zipOf(t *testing.T, files map[string][]byte, bomb string, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for name, b := range files {
		w, err := zw.Create(name)
		if err == nil {
			_, err = w.Write(b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if bomb != "" {
		w, err := zw.Create(bomb)
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte(" "), 1<<20)
		for range size >> 20 {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
