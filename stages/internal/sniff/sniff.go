// Package sniff names a file's content type from its bytes, never from
// its name or declared type. Every way a file enters prismflow (uploads,
// e-mail attachments) and the extract stage use it, so a type is named
// the same everywhere.
//
// Most types show in the first bytes (Head); Zip and OLE2 containers
// (DOCX, ODT, XLSX, Outlook .msg) only by their contents, which Detect
// reads from the whole file.
package sniff

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"unicode/utf16"
)

// The content types prismflow accepts.
const (
	PDF   = "application/pdf"
	Text  = "text/plain"
	HTML  = "text/html"
	XHTML = "application/xhtml+xml"
	PNG   = "image/png"
	JPEG  = "image/jpeg"
	TIFF  = "image/tiff"
	DOCX  = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	XLSX  = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	ODT   = "application/vnd.oasis.opendocument.text"
	EML   = "message/rfc822"
	MSG   = "application/vnd.ms-outlook"
)

// Containers whose type only their contents tell: the head of the file
// names the container, Detect looks inside it.
const (
	Zip = "application/zip"
	CFB = "application/x-cfb" // OLE2 compound file: .msg, but also .doc, .xls
)

// Accepted lists the content types prismflow reads.
var Accepted = []string{PDF, Text, HTML, XHTML, PNG, JPEG, TIFF, DOCX, ODT, XLSX, EML, MSG}

// HeadSize is how many leading bytes Head wants: enough for a PDF header
// after junk and for the header block of most e-mails.
const HeadSize = 8 << 10

var cfbMagic = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// Head names the content type of a file from its first bytes (up to
// HeadSize) and says whether prismflow accepts it. Zip and OLE2
// containers (DOCX, ODT, XLSX, Outlook .msg) cannot be told apart by
// their head: Head names the container and refuses it, NeedsWhole
// reports it, and Detect decides on the whole file.
func Head(head []byte) (string, bool) {
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return PDF, true
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, true
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, true
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return TIFF, true
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return Zip, false
	case bytes.HasPrefix(head, cfbMagic):
		return CFB, false
	case isMailHeader(head):
		// Before the looser PDF test: a forwarded message may quote a
		// PDF header in its first KiB.
		return EML, true
	case bytes.Contains(head[:min(len(head), 1024)], []byte("%PDF-")):
		// PDF readers accept the header anywhere in the first KiB; so do we.
		return PDF, true
	}
	ct, _, _ := strings.Cut(http.DetectContentType(head), ";")
	switch ct {
	case Text, HTML:
		return ct, true
	case "text/xml":
		if bytes.Contains(bytes.ToLower(head), []byte("<html")) {
			return XHTML, true
		}
	}
	return ct, false
}

// NeedsWhole reports whether the type Head named is a container that
// only Detect, reading the whole file, can resolve.
func NeedsWhole(sniffed string) bool { return sniffed == Zip || sniffed == CFB }

// Detect names the content type of the whole file r of size bytes and
// says whether prismflow accepts it. It reads the head like Head and,
// for containers, the zip central directory or the compound file's
// stream names.
func Detect(r io.ReaderAt, size int64) (string, bool) {
	head := make([]byte, min(size, HeadSize))
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "application/octet-stream", false
	}
	ct, ok := Head(head[:n])
	switch ct {
	case Zip:
		return zipType(r, size)
	case CFB:
		return cfbType(r, size)
	}
	return ct, ok
}

// zipType tells the Office Open XML and OpenDocument files apart by the
// parts their standards require.
func zipType(r io.ReaderAt, size int64) (string, bool) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return Zip, false
	}
	for _, f := range zr.File {
		switch f.Name {
		case "word/document.xml":
			return DOCX, true
		case "xl/workbook.xml":
			return XLSX, true
		case "mimetype":
			// ODF stores its type, uncompressed, as the first entry.
			rc, err := f.Open()
			if err != nil {
				return Zip, false
			}
			b, _ := io.ReadAll(io.LimitReader(rc, 128))
			rc.Close()
			if mt := strings.TrimSpace(string(b)); mt == ODT {
				return ODT, true
			} else if mt != "" {
				return mt, false // another ODF kind: spreadsheet, presentation...
			}
		}
	}
	return Zip, false
}

// msgStreams are names of streams every Outlook message holds (property
// streams and the property table), as they appear (UTF-16LE) in the
// compound file's directory; Word and Excel 97 files have neither.
var msgStreams = [][]byte{utf16le("__substg1.0_"), utf16le("__properties_version1.0")}

// cfbType tells an Outlook message from the other OLE2 compound files
// (Word 97 .doc, Excel 97 .xls) by the stream names in its directory.
// Reading the directory chain properly would need a compound-file parser;
// the names are stored verbatim, so a scan for one is as reliable and
// reads each byte once.
func cfbType(r io.ReaderAt, size int64) (string, bool) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)
	longest := 0
	for _, m := range msgStreams {
		longest = max(longest, len(m))
	}
	buf := make([]byte, 0, 64<<10+longest)
	chunk := make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(br, chunk)
		buf = append(buf, chunk[:n]...)
		for _, m := range msgStreams {
			if bytes.Contains(buf, m) {
				return MSG, true
			}
		}
		if err != nil {
			return CFB, false
		}
		// Keep the tail, in case a name straddles two chunks.
		buf = append(buf[:0], buf[max(0, len(buf)-longest+1):]...)
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

// mailHeaders are header fields of which an Internet message has at least
// two besides From; a text file beginning "From: ..." does not.
var mailHeaders = []string{"Date", "Subject", "To", "Message-Id", "Mime-Version", "Received", "Return-Path", "Content-Type"}

// isMailHeader reports whether head begins with an RFC 5322 header block:
// only header fields (and their folded continuation lines) up to the
// blank line or the end of head, From among them and at least two other
// fields that only messages carry.
func isMailHeader(head []byte) bool {
	seen := map[string]bool{}
	truncated := len(head) >= HeadSize
	for len(head) > 0 {
		line, rest, found := bytes.Cut(head, []byte("\n"))
		if !found && truncated {
			break // a line cut off by the end of head
		}
		head = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(seen) == 0 {
				return false
			}
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !isFieldName(name) {
			return false
		}
		seen[textproto.CanonicalMIMEHeaderKey(string(name))] = true
	}
	others := 0
	for _, h := range mailHeaders {
		if seen[h] {
			others++
		}
	}
	return (seen["From"] || seen["Sender"]) && others >= 2
}

// isFieldName reports whether b is an RFC 5322 field name: printable
// US-ASCII except colon and space.
func isFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}
