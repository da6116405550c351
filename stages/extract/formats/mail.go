package formats

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"prismflow/stages/internal/sniff"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	// Importing it registers the IANA charsets with go-message, so bodies
	// and headers in ISO-8859-x, Windows-125x and the like decode to
	// UTF-8: it sets go-message's package-level CharsetReader once at
	// init, which is how the library is configured.
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"prismflow/connectors/blob"
	"prismflow/pipeline"
	"prismflow/schemas/events"
)

// mailAttachment is an attachment held in memory until the whole message
// has passed its limits.
type mailAttachment struct {
	filename    string
	contentType string
	data        []byte
}

// mailWalk collects the body and attachments of one message.
type mailWalk struct {
	lim         Limits
	parts       int
	plain       strings.Builder
	html        strings.Builder
	attachments []mailAttachment
	attBytes    int64
}

// readMail reads an RFC 5322 message: see the package documentation.
func (r *Reader) readMail(ctx context.Context, b []byte, lim Limits) (Result, error) {
	if r.Blobs == nil {
		return Result{}, errors.New("read e-mail: formats.Reader has no blob store for the attachments")
	}
	br := bufio.NewReader(bytes.NewReader(b))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return Result{}, pipeline.Permanent(fmt.Errorf("malformed e-mail header: %w", err))
	}
	if h.Len() == 0 {
		return Result{}, pipeline.Permanent(errors.New("not an e-mail: no header"))
	}
	w := &mailWalk{lim: lim}
	if err := w.walk(h, br, 0); err != nil {
		return Result{}, err
	}

	mh := mail.Header{Header: message.Header{Header: h}}
	var res Result
	res.Subject = headerText(mh, "Subject")
	if from, err := mh.AddressList("From"); err == nil && len(from) > 0 {
		res.Sender = displayAddress(from[0].Name, from[0].Address)
	}

	var text strings.Builder
	for _, k := range []string{"From", "To", "Cc", "Date", "Subject"} {
		var v string
		switch k {
		case "From", "To", "Cc":
			v = addresses(mh, k)
		default:
			v = headerText(mh, k)
		}
		if v != "" {
			fmt.Fprintf(&text, "%s: %s\n", k, v)
		}
	}
	body := w.plain.String()
	if strings.TrimSpace(body) == "" && w.html.Len() > 0 {
		body, err = htmlText(strings.NewReader(w.html.String()), lim)
		if err != nil {
			return Result{}, fmt.Errorf("e-mail HTML body: %w", err)
		}
	}
	if !utf8.ValidString(body) {
		// A part without a usable charset: read its bytes the way a plain
		// text file is read (Windows-1252 when not UTF-8).
		if body, err = decodeText([]byte(body)); err != nil {
			return Result{}, fmt.Errorf("e-mail body: %w", err)
		}
	}
	if body != "" {
		text.WriteString("\n")
		text.WriteString(body)
	}
	// Raw 8-bit bytes in headers have no charset to decode them with.
	res.Pages = []string{strings.ToValidUTF8(text.String(), "\uFFFD")}

	// Stored only now: a message refused above leaves no blobs behind.
	for _, a := range w.attachments {
		key, sum, size, err := blob.PutContent(ctx, r.Blobs, bytes.NewReader(a.data))
		if err != nil {
			return Result{}, fmt.Errorf("store attachment %s: %w", a.filename, err)
		}
		res.Attachments = append(res.Attachments, events.Attachment{
			Filename:    a.filename,
			ContentType: a.contentType,
			Blob:        key,
			SHA256:      sum,
			SizeBytes:   size,
		})
	}
	return res, nil
}

// walk visits one MIME entity and, for a multipart, its parts depth
// first in order, so attachments keep the order the message carries them.
func (w *mailWalk) walk(h textproto.Header, body io.Reader, depth int) error {
	w.parts++
	switch {
	case w.parts > w.lim.MaxParts:
		return pipeline.Permanent(fmt.Errorf("e-mail has more than %d MIME parts", w.lim.MaxParts))
	case depth > w.lim.MaxDepth:
		return pipeline.Permanent(fmt.Errorf("e-mail nests multiparts more than %d deep", w.lim.MaxDepth))
	}
	mh := message.Header{Header: h}
	mt, params, _ := mh.ContentType()
	if mt == "" {
		mt = "text/plain" // RFC 2045 5.2
	}
	if strings.HasPrefix(mt, "multipart/") {
		boundary := params["boundary"]
		if boundary == "" {
			return pipeline.Permanent(fmt.Errorf("e-mail part %s has no boundary", mt))
		}
		mr := textproto.NewMultipartReader(body, boundary)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return pipeline.Permanent(fmt.Errorf("malformed multipart e-mail: %w", err))
			}
			if err := w.walk(p.Header, p, depth+1); err != nil {
				return err
			}
		}
	}

	disp, _, _ := mh.ContentDisposition()
	filename, _ := (&mail.AttachmentHeader{Header: mh}).Filename()
	if strings.Contains(filename, "=?") {
		// Outlook and Gmail write non-ASCII names as RFC 2047 encoded
		// words inside the quoted parameter, against RFC 2231 but common.
		dec := mime.WordDecoder{CharsetReader: charset.Reader}
		if d, err := dec.DecodeHeader(filename); err == nil {
			filename = d
		}
	}
	isBody := (mt == "text/plain" || mt == "text/html") && disp != "attachment" && filename == ""
	if isBody {
		return w.body(mh, mt, body)
	}
	if disp != "attachment" && filename == "" && mt != "message/rfc822" {
		// A nameless inline part (a signature logo referenced by cid:, a
		// calendar stub) is decoration, not a document the sender attached.
		return nil
	}
	return w.attachment(mh, mt, params, filename, body)
}

// body appends a text part, decoded to UTF-8, to the plain or HTML body.
func (w *mailWalk) body(mh message.Header, mt string, r io.Reader) error {
	e, newErr := message.New(mh, r)
	if e == nil {
		return pipeline.Permanent(fmt.Errorf("e-mail body: %w", newErr))
	}
	b, err := readCapped(e.Body, w.lim.MaxTextBytes)
	if err != nil {
		return fmt.Errorf("e-mail body: %w", err)
	}
	s := string(b)
	if message.IsUnknownCharset(newErr) {
		// The charset is not one go-message knows; the body came through
		// undecoded, so read it as UTF-8 or Windows-1252.
		if s, err = decodeText(b); err != nil {
			return err
		}
	}
	dst := &w.plain
	if mt == "text/html" {
		dst = &w.html
	}
	if int64(w.plain.Len()+w.html.Len()+len(s)) > w.lim.MaxTextBytes {
		return pipeline.Permanent(fmt.Errorf("e-mail body is over the %d byte text limit", w.lim.MaxTextBytes))
	}
	if dst.Len() > 0 {
		dst.WriteString("\n\n")
	}
	dst.WriteString(s)
	return nil
}

// attachment decodes a part's transfer encoding, and nothing else: the
// bytes kept are the file the sender attached, whose SHA-256 must match
// it, so a text attachment is not converted to UTF-8 (only its canonical
// line ends are undone).
func (w *mailWalk) attachment(mh message.Header, mt string, params map[string]string, filename string, r io.Reader) error {
	if len(w.attachments) >= w.lim.MaxAttachments {
		return pipeline.Permanent(fmt.Errorf("e-mail has more than %d attachments", w.lim.MaxAttachments))
	}
	raw := mh.Copy()
	if _, ok := params["charset"]; ok {
		p := make(map[string]string, len(params))
		for k, v := range params {
			if k != "charset" {
				p[k] = v
			}
		}
		raw.SetContentType(mt, p)
	}
	e, err := message.New(raw, r)
	if e == nil {
		return pipeline.Permanent(fmt.Errorf("e-mail attachment %q: %w", filename, err))
	}
	// An unknown transfer encoding leaves the body as sent; it is kept so.
	b, err := readCapped(e.Body, w.lim.MaxAttachmentBytes-w.attBytes)
	if errors.Is(err, errTooBig) {
		return pipeline.Permanent(fmt.Errorf("e-mail attachment %q: the attachments are over the %d byte limit together", filename, w.lim.MaxAttachmentBytes))
	}
	if err != nil {
		return fmt.Errorf("e-mail attachment %q: %w", filename, err)
	}
	if strings.HasPrefix(mt, "text/") && !strings.EqualFold(strings.TrimSpace(mh.Get("Content-Transfer-Encoding")), "base64") {
		// Text sent as 7bit, 8bit or quoted-printable is in MIME's
		// canonical form, every line ending CRLF (RFC 2046 4.1.1), whatever
		// the file had; the receiver converts to its convention, LF here.
		// Base64 carries the file's own bytes and is left alone.
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	}
	w.attBytes += int64(len(b))
	ct := attachmentType(b, mt)
	w.attachments = append(w.attachments, mailAttachment{
		filename:    attachmentName(filename, ct, b, len(w.attachments)+1),
		contentType: ct,
		data:        b,
	})
	return nil
}

// errTooBig is returned (marked permanent) by readCapped.
var errTooBig = errors.New("over the size limit")

// readCapped reads r whole, or fails permanently past max bytes.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		// A broken base64 or quoted-printable body is in the message.
		return nil, pipeline.Permanent(fmt.Errorf("decode: %w", err))
	}
	if int64(len(b)) > max {
		return nil, pipeline.Permanent(fmt.Errorf("%w of %d bytes", errTooBig, max))
	}
	return b, nil
}

// attachmentType names the type of an attachment from its bytes: what
// package sniff accepts, then net/http's sniffer (archives and other
// types prismflow does not read), then the declared type when the bytes
// say nothing more than octet-stream.
func attachmentType(b []byte, declared string) string {
	if ct, ok := sniff.Detect(bytes.NewReader(b), int64(len(b))); ok {
		return ct
	}
	ct, _, _ := mime.ParseMediaType(http.DetectContentType(b))
	if ct == "application/octet-stream" && declared != "" {
		return declared
	}
	return ct
}

// attachmentName returns a safe file name: the sender's, without any
// directory part or control characters, or one made up from the subject
// of a forwarded message or from the content type.
func attachmentName(name, contentType string, b []byte, n int) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == "/" || name == ".." {
		name = ""
	}
	if name == "" && contentType == TypeEML {
		if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b))); err == nil {
			s := headerText(mail.Header{Header: message.Header{Header: h}}, "Subject")
			s = strings.Map(func(r rune) rune {
				if unicode.IsControl(r) || strings.ContainsRune(`/\:*?"<>|`, r) {
					return -1
				}
				return r
			}, s)
			if s = strings.TrimSpace(s); s != "" {
				name = s + ".eml"
			}
		}
	}
	if name == "" {
		ext := ".bin"
		if exts, _ := mime.ExtensionsByType(contentType); len(exts) > 0 {
			ext = exts[0]
		}
		if contentType == TypeEML {
			ext = ".eml"
		}
		name = fmt.Sprintf("attachment-%d%s", n, ext)
	}
	if r := []rune(name); len(r) > 255 {
		name = string(r[:255])
	}
	return name
}

// headerText returns a header field decoded from RFC 2047 encoded words,
// or as written when it cannot be decoded.
func headerText(mh mail.Header, k string) string {
	v, err := mh.Text(k)
	if err != nil {
		v = mh.Get(k)
	}
	return strings.Join(strings.Fields(v), " ")
}

// addresses formats an address list header as "Name <addr>, ...",
// leaving names decoded (mail.Address.String would re-encode them).
func addresses(mh mail.Header, k string) string {
	list, err := mh.AddressList(k)
	if err != nil || len(list) == 0 {
		return headerText(mh, k)
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		if a.Name != "" {
			out = append(out, a.Name+" <"+a.Address+">")
		} else {
			out = append(out, a.Address)
		}
	}
	return strings.Join(out, ", ")
}

// displayAddress writes "Name <address>" in readable UTF-8 (not RFC 2047
// encoded), quoting the name only where RFC 5322 needs it, so that it both
// reads well and parses back with net/mail. The name is kept because it
// is often the only place a private customer's name appears, and the
// reply draft is addressed to it.
func displayAddress(name, addr string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return addr
	}
	if strings.ContainsAny(name, `()<>[]:;@\,."`) {
		name = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
	}
	return name + " <" + addr + ">"
}
