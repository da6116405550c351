// Package mupdf opens PDFs with MuPDF (go-fitz) safely, for every
// prismflow package that reads them: the extract stage and the console's
// page renderer.
//
// Safely means two things go-fitz does not do by itself:
//
//   - Files that would abort the whole process are refused before MuPDF
//     sees them. go-fitz counts pages (NumPage, and Text through it)
//     outside MuPDF's fz_try, and pdf_count_pages throws "Invalid number
//     of pages" on a negative /Count in the page tree; a throw outside
//     fz_try ends the process, not the call.
//   - An encrypted PDF is opened with its password. go-fitz has no call
//     for MuPDF's fz_authenticate_password, so pdfcpu decrypts it in
//     memory first, with the configuration of stages/internal/pdfconf
//     (no configuration folder in the user's home).
//
// Every error OpenPDF returns is caused by the file, so it is marked
// pipeline.Permanent; it is an *Error whose Reason lets callers word it
// for their users.
package mupdf

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"

	fitz "github.com/gen2brain/go-fitz"
	"github.com/pdfcpu/pdfcpu/pkg/api"

	"prismflow/pipeline"
	"prismflow/stages/internal/pdfconf"
)

// Reason says why OpenPDF refused or could not open a PDF.
type Reason int

const (
	// NegativeCount: the page tree has a negative /Count, which would
	// abort the process inside MuPDF.
	NegativeCount Reason = iota + 1
	// NeedsPassword: the PDF is encrypted and no password was given.
	NeedsPassword
	// WrongPassword: the PDF is encrypted and pdfcpu cannot decrypt it
	// with the password given.
	WrongPassword
	// Corrupt: MuPDF cannot open the PDF.
	Corrupt
)

// Error is the error of OpenPDF.
type Error struct {
	Reason Reason
	// Err is the cause reported by MuPDF or pdfcpu; nil for
	// NegativeCount and NeedsPassword.
	Err error
}

func (e *Error) Error() string {
	switch e.Reason {
	case NegativeCount:
		return "corrupt PDF: its page tree has a negative /Count"
	case NeedsPassword:
		return "encrypted PDF: no password to open it"
	case WrongPassword:
		return fmt.Sprintf("encrypted PDF: the password does not open it: %v", e.Err)
	default:
		return fmt.Sprintf("corrupt PDF: %v", e.Err)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// OpenPDF opens the PDF b with MuPDF, after refusing a page tree with a
// negative /Count (see NegativePageCount). An encrypted PDF is decrypted
// with password first. It returns the bytes the document was opened
// from: b, or its decrypted copy. The caller closes the document.
func OpenPDF(b []byte, password string) (*fitz.Document, []byte, error) {
	if NegativePageCount(b) {
		return nil, nil, pipeline.Permanent(&Error{Reason: NegativeCount})
	}
	fd, err := fitz.NewFromMemory(b)
	if errors.Is(err, fitz.ErrNeedsPassword) && password != "" {
		fd.Close()
		plain, derr := Decrypt(b, password)
		if derr != nil {
			return nil, nil, pipeline.Permanent(&Error{Reason: WrongPassword, Err: derr})
		}
		b = plain
		fd, err = fitz.NewFromMemory(b)
	}
	switch {
	case errors.Is(err, fitz.ErrNeedsPassword):
		fd.Close()
		return nil, nil, pipeline.Permanent(&Error{Reason: NeedsPassword})
	case err != nil:
		if fd != nil {
			// go-fitz returns a half-built document with its errors;
			// closing it frees the MuPDF context.
			fd.Close()
		}
		return nil, nil, pipeline.Permanent(&Error{Reason: Corrupt, Err: err})
	}
	return fd, b, nil
}

// Decrypt returns the encrypted PDF b decrypted with password, which may
// be its user or its owner password.
func Decrypt(b []byte, password string) ([]byte, error) {
	conf := pdfconf.New()
	conf.UserPW = password
	conf.OwnerPW = password
	var out bytes.Buffer
	if err := api.Decrypt(bytes.NewReader(b), &out, conf); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// negativeCount finds a negative /Count. PDF allows white space between
// a name and its value.
var negativeCount = regexp.MustCompile(`/Count[\x00\t\n\f\r ]*-[0-9]*[1-9]`)

// pageTreeNode tells a page-tree node (it has /Kids or /Type /Pages) from
// an outline item, whose negative /Count is legal: it marks the item
// closed.
var pageTreeNode = regexp.MustCompile(`/Kids\b|/Type[\x00\t\n\f\r ]*/Pages\b`)

// NegativePageCount reports whether an object of b that looks like a
// page-tree node has a negative /Count, on which MuPDF aborts the
// process. It reads the objects as written, so a node inside a
// compressed object stream escapes it.
func NegativePageCount(b []byte) bool {
	for _, m := range negativeCount.FindAllIndex(b, -1) {
		start := bytes.LastIndex(b[:m[0]], []byte(" obj"))
		end := bytes.Index(b[m[1]:], []byte("endobj"))
		if start < 0 {
			start = 0
		}
		if end < 0 {
			end = len(b)
		} else {
			end += m[1]
		}
		if pageTreeNode.Match(b[start:end]) {
			return true
		}
	}
	return false
}
