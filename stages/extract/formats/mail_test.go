package formats

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"prismflow/stages/internal/sniff"
	"strings"
	"testing"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
)

// insuranceDev is the shared corpus of broker e-mails, relative to this
// package.
const insuranceDev = "../../../../shared/corpus/insurance-dev"

// newStore returns a file blob store in a temporary directory.
func newStore(tb testing.TB) *blob.File {
	tb.Helper()
	s, err := blob.NewFile(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// storedFiles counts the files a file store holds.
func storedFiles(tb testing.TB, s *blob.File) int {
	tb.Helper()
	n := 0
	err := filepath.WalkDir(s.Dir(), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

type truthAttachment struct {
	File        string `json:"file"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
}

// TestReadCorpusMail reads every e-mail of the insurance-dev corpus and
// checks it against its truth.json and an independent decoding of the
// message with the standard library.
func TestReadCorpusMail(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(insuranceDev, "[0-9]*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("insurance-dev corpus expected at /work/shared/corpus/insurance-dev (%s from this package): %v", insuranceDev, err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			eml, err := os.ReadFile(filepath.Join(dir, "message.eml"))
			if err != nil {
				t.Fatal(err)
			}
			var truth struct {
				Attachments []truthAttachment `json:"attachments"`
			}
			tb, err := os.ReadFile(filepath.Join(dir, "truth.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(tb, &truth); err != nil {
				t.Fatal(err)
			}
			if ct, ok := sniff.Detect(bytes.NewReader(eml), int64(len(eml))); !ok || ct != TypeEML {
				t.Errorf("Detect = %q, %v; want %q", ct, ok, TypeEML)
			}

			store := newStore(t)
			r := Reader{Blobs: store}
			res, err := r.Read(context.Background(), TypeEML, "message.eml", eml)
			if err != nil {
				t.Fatal(err)
			}

			from, subject, body := stdlibMail(t, eml)
			if got, err := mail.ParseAddress(res.Sender); err != nil || got.Address != from.Address || got.Name != from.Name {
				t.Errorf("Sender = %q (%v), want %q", res.Sender, err, from)
			}
			if res.Subject != subject || subject == "" {
				t.Errorf("Subject = %q, want %q", res.Subject, subject)
			}
			if len(res.Pages) != 1 {
				t.Fatalf("%d pages, want 1", len(res.Pages))
			}
			text := res.Pages[0]
			fromLine := "From: " + from.Address
			if from.Name != "" {
				fromLine = "From: " + from.Name + " <" + from.Address + ">"
			}
			got := lines(text)
			for _, want := range []string{fromLine, "Subject: " + subject} {
				if !got[want] {
					t.Errorf("text lacks line %q:\n%s", want, text)
				}
			}
			if strings.TrimSpace(body) == "" {
				t.Fatal("the standard library finds no text/plain body")
			}
			for l := range strings.Lines(body) {
				if l = strings.TrimSpace(l); l != "" && !strings.Contains(text, l) {
					t.Errorf("text lacks body line %q", l)
				}
			}

			if len(res.Attachments) != len(truth.Attachments) {
				t.Fatalf("%d attachments, want %d: %+v", len(res.Attachments), len(truth.Attachments), res.Attachments)
			}
			for i, want := range truth.Attachments {
				got := res.Attachments[i]
				if got.Filename != want.Filename {
					t.Errorf("attachment %d: filename %q, want %q", i, got.Filename, want.Filename)
				}
				if got.ContentType != want.ContentType {
					t.Errorf("attachment %d: content type %q, want %q", i, got.ContentType, want.ContentType)
				}
				orig, err := os.ReadFile(filepath.Join(dir, want.File))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(orig)
				if got.SHA256 != hex.EncodeToString(sum[:]) || got.SizeBytes != int64(len(orig)) {
					t.Errorf("attachment %d: sha256 %s size %d, want those of %s", i, got.SHA256, got.SizeBytes, want.File)
				}
				if got.Blob != blob.ContentKey(got.SHA256) {
					t.Errorf("attachment %d: blob key %q is not its content address", i, got.Blob)
				}
				if stored := getBlob(t, store, got.Blob); !bytes.Equal(stored, orig) {
					t.Errorf("attachment %d: stored bytes differ from %s", i, want.File)
				}
			}
		})
	}
}

// stdlibMail decodes a message with net/mail and mime/multipart: the
// From address, the subject and the first text/plain part.
func stdlibMail(tb testing.TB, eml []byte) (*mail.Address, string, string) {
	tb.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(eml))
	if err != nil {
		tb.Fatal(err)
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		tb.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		tb.Fatal(err)
	}
	body, err := firstPlain(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return from, subject, body
}

func firstPlain(contentType, cte string, r io.Reader) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return "", nil
			}
			if err != nil {
				return "", err
			}
			// multipart.Part removes quoted-printable itself.
			s, err := firstPlain(p.Header.Get("Content-Type"), "", p)
			if s != "" || err != nil {
				return s, err
			}
		}
	}
	if mt != "text/plain" {
		return "", nil
	}
	if strings.EqualFold(cte, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

func getBlob(tb testing.TB, s blob.Store, key string) []byte {
	tb.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// part is one MIME part of a test message.
type part struct {
	header string // header lines, without the blank line
	body   string
}

// buildMail assembles a multipart/mixed message.
func buildMail(header string, parts ...part) []byte {
	const boundary = "==confine=="
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p.header + "\r\n\r\n" + p.body + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return []byte(b.String())
}

const testHeader = "From: =?utf-8?q?Nicol=C3=B2_Ferri?= <n.ferri@example.it>\r\n" +
	"To: preventivi@navigli-broker.it\r\n" +
	"Date: Mon, 23 Nov 2026 09:00:00 +0100\r\n" +
	"Subject: =?iso-8859-1?q?Polizza_fabbricato_-_propriet=E0?=\r\n"

func TestReadMail(t *testing.T) {
	forwarded := "From: Agenzia <agenzia@example.it>\r\nSubject: Polizza scaduta\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"in\"\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\nTesto inoltrato\r\n" +
		"--in\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"interno.pdf\"\r\n\r\n%PDF-1.4 interno\r\n--in--\r\n"
	tests := []struct {
		name        string
		eml         []byte
		body        []string // lines the text must contain
		absent      []string
		attachments []string // "filename content/type"
	}{
		{
			name: "latin-1 body and encoded headers",
			eml: buildMail(testHeader, part{"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable",
				"Il valore di ricostruzione =E8 di 1.200.000 euro."}),
			body: []string{"From: Nicolò Ferri <n.ferri@example.it>", "Subject: Polizza fabbricato - proprietà", "Il valore di ricostruzione è di 1.200.000 euro."},
		},
		{
			name: "html only body",
			eml: buildMail(testHeader, part{"Content-Type: text/html; charset=utf-8",
				"<html><head><style>p{color:red}</style></head><body><p>Richiesta di <b>quotazione</b></p><table><tr><td>Superficie</td><td>850 mq</td></tr></table></body></html>"}),
			body:   []string{"Richiesta di quotazione", "Superficie\t850 mq"},
			absent: []string{"color:red", "<b>"},
		},
		{
			name:   "plain preferred to html",
			eml:    buildMail(testHeader, part{"Content-Type: multipart/alternative; boundary=alt", "--alt\r\nContent-Type: text/plain\r\n\r\nVersione testo\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>Versione HTML</p>\r\n--alt--"}),
			body:   []string{"Versione testo"},
			absent: []string{"Versione HTML"},
		},
		{
			name: "nested message/rfc822 is one attachment",
			eml: buildMail(testHeader, part{"Content-Type: text/plain", "Vi inoltro la mail dell'agenzia."},
				part{"Content-Type: message/rfc822", forwarded}),
			body:        []string{"Vi inoltro la mail dell'agenzia."},
			absent:      []string{"Testo inoltrato"},
			attachments: []string{"Polizza scaduta.eml message/rfc822"},
		},
		{
			name: "attachment names: inline with a name, nameless inline skipped, RFC 2231, RFC 2047, unsafe",
			eml: buildMail(testHeader, part{"Content-Type: text/plain", "Vedi foto."},
				part{"Content-Type: image/png; name=\"danno.png\"\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNiAAAABgADNjd8qAAAAABJRU5ErkJggg=="},
				part{"Content-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNiAAAABgADNjd8qAAAAABJRU5ErkJggg=="},
				part{"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''polizza%20propriet%C3%A0.docx", string(zipOf(t, [2]string{"word/document.xml", "<w:document/>"}))},
				part{"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"=?utf-8?q?perizia_=C3=A8.pdf?=\"", "%PDF-1.4 perizia"},
				part{"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../\"", "%PDF-1.4 senza nome"}),
			body:        []string{"Vedi foto."},
			attachments: []string{"danno.png image/png", "polizza proprietà.docx " + TypeDOCX, "perizia è.pdf application/pdf", "attachment-4.pdf application/pdf"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newStore(t)
			r := Reader{Blobs: store}
			res, err := r.Read(context.Background(), TypeEML, "test.eml", tt.eml)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sender != "Nicolò Ferri <n.ferri@example.it>" || res.Subject != "Polizza fabbricato - proprietà" {
				t.Errorf("Sender %q, Subject %q", res.Sender, res.Subject)
			}
			got := lines(res.Pages[0])
			for _, w := range tt.body {
				if !got[w] {
					t.Errorf("text lacks line %q:\n%s", w, res.Pages[0])
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(res.Pages[0], a) {
					t.Errorf("text contains %q:\n%s", a, res.Pages[0])
				}
			}
			var atts []string
			for _, a := range res.Attachments {
				atts = append(atts, a.Filename+" "+a.ContentType)
				if b := getBlob(t, store, a.Blob); int64(len(b)) != a.SizeBytes {
					t.Errorf("%s: stored %d bytes, listed %d", a.Filename, len(b), a.SizeBytes)
				}
			}
			if fmt.Sprint(atts) != fmt.Sprint(tt.attachments) {
				t.Errorf("attachments %q, want %q", atts, tt.attachments)
			}
		})
	}
}

func TestReadMailForwardedBytes(t *testing.T) {
	inner := "From: Agenzia <agenzia@example.it>\r\nSubject: Polizza scaduta\r\n\r\nTesto inoltrato\r\n"
	eml := buildMail(testHeader, part{"Content-Type: text/plain", "Inoltro."}, part{"Content-Type: message/rfc822", inner})
	store := newStore(t)
	res, err := (&Reader{Blobs: store}).Read(context.Background(), TypeEML, "test.eml", eml)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1", len(res.Attachments))
	}
	// The forwarded message is stored as it was carried, so that reading
	// it as a document of its own gives its sender and text.
	stored := getBlob(t, store, res.Attachments[0].Blob)
	if string(stored) != inner {
		t.Errorf("stored %q, want %q", stored, inner)
	}
	child, err := (&Reader{Blobs: store}).Read(context.Background(), TypeEML, res.Attachments[0].Filename, stored)
	if err != nil {
		t.Fatal(err)
	}
	if child.Sender != "Agenzia <agenzia@example.it>" || !strings.Contains(child.Pages[0], "Testo inoltrato") {
		t.Errorf("forwarded message read as sender %q, text %q", child.Sender, child.Pages[0])
	}
}

// failingStore fails every write, as an unreachable S3 would.
type failingStore struct{ blob.Store }

func (failingStore) Put(context.Context, string, io.Reader) error {
	return errors.New("connection refused")
}

func (failingStore) Exists(context.Context, string) (bool, error) { return false, nil }

func TestReadMailErrors(t *testing.T) {
	many := make([]part, 0, 1001)
	many = append(many, part{"Content-Type: text/plain", "Mille allegati."})
	for i := range 1000 {
		many = append(many, part{fmt.Sprintf("Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"a%d.txt\"", i), fmt.Sprintf("allegato %d", i)})
	}
	big := buildMail(testHeader, part{"Content-Type: text/plain", "Allegati grandi."},
		part{"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"", "%PDF-" + strings.Repeat("x", 600<<10)},
		part{"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"b.pdf\"", "%PDF-" + strings.Repeat("y", 600<<10)})
	deep := testHeader + "MIME-Version: 1.0\r\n"
	for i := range 30 {
		deep += fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	deep += "Content-Type: text/plain\r\n\r\nfondo\r\n"
	tests := []struct {
		name      string
		eml       []byte
		lim       Limits
		store     blob.Store
		permanent bool
		want      string
	}{
		{"1000 attachments", buildMail(testHeader, many...), Limits{}, nil, true, "more than 100 attachments"},
		{"attachments too large together", big, Limits{MaxAttachmentBytes: 1 << 20}, nil, true, "over the 1048576 byte limit together"},
		{"nesting too deep", []byte(deep), Limits{}, nil, true, "more than 20 deep"},
		{"multipart without boundary", []byte(testHeader + "Content-Type: multipart/mixed\r\n\r\nx"), Limits{}, nil, true, "has no boundary"},
		{"not a header", []byte("\x00\x01binary junk without a header\r\n\r\n"), Limits{}, nil, true, "e-mail header"},
		{"store down", buildMail(testHeader, part{"Content-Type: text/plain", "x"}, part{"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"", "%PDF-1.4"}), Limits{}, failingStore{}, false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newStore(t)
			var store blob.Store = fs
			if tt.store != nil {
				store = tt.store
			}
			r := Reader{Blobs: store, Limits: tt.lim}
			_, err := r.Read(context.Background(), TypeEML, "test.eml", tt.eml)
			if err == nil {
				t.Fatal("no error")
			}
			if pipeline.IsPermanent(err) != tt.permanent {
				t.Errorf("permanent = %v, want %v: %v", pipeline.IsPermanent(err), tt.permanent, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if n := storedFiles(t, fs); n != 0 {
				t.Errorf("a refused e-mail left %d blobs behind", n)
			}
		})
	}
}
