package mupdf

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"prismflow/pipeline"
	"prismflow/pipeline/testenv"
)

// encrypted, the extract stage's sample, has the user password
// "openpassword" (LibreOffice Writer).
const encrypted = "../testdata/encrypted.pdf"

func TestNegativePageCount(t *testing.T) {
	tests := []struct {
		name string
		pdf  string
		want bool
	}{
		{"page tree", "3 0 obj <</Type /Pages /Kids [4 0 R] /Count -1>> endobj", true},
		{"white space before the value", "3 0 obj <</Type/Pages/Kids[4 0 R]/Count\n\t -12>> endobj", true},
		{"node with kids only", "3 0 obj <</Kids [4 0 R] /Count -3>> endobj", true},
		{"no object around it", "/Type /Pages /Count -1", true},
		{"closed outline item", "3 0 obj <</Title (Chapter) /Parent 2 0 R /Count -4>> endobj\n4 0 obj <</Type /Pages /Kids [5 0 R] /Count 1>> endobj", false},
		{"positive count", "3 0 obj <</Type /Pages /Kids [4 0 R] /Count 1>> endobj", false},
		{"minus zero", "3 0 obj <</Type /Pages /Kids [4 0 R] /Count -0>> endobj", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NegativePageCount([]byte(tt.pdf)); got != tt.want {
				t.Errorf("NegativePageCount(%q) = %v, want %v", tt.pdf, got, tt.want)
			}
		})
	}
}

func TestOpenPDF(t *testing.T) {
	fd, b, err := OpenPDF(testenv.ManyPagesPDF(3), "")
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if n := fd.NumPage(); n != 3 {
		t.Errorf("opened %d pages, want 3", n)
	}
	if !bytes.Equal(b, testenv.ManyPagesPDF(3)) {
		t.Error("an unencrypted PDF came back changed")
	}
}

func TestOpenPDFEncrypted(t *testing.T) {
	src, err := os.ReadFile(encrypted)
	if err != nil {
		t.Fatal(err)
	}
	fd, plain, err := OpenPDF(src, "openpassword")
	if err != nil {
		t.Fatalf("with its password: %v", err)
	}
	defer fd.Close()
	if fd.NumPage() < 1 {
		t.Error("decrypted document has no pages")
	}
	text, err := fd.Text(0)
	if err != nil || len(bytes.TrimSpace([]byte(text))) == 0 {
		t.Errorf("decrypted first page: text %q, err %v", text, err)
	}
	if bytes.Equal(plain, src) {
		t.Error("OpenPDF returned the encrypted bytes, want the decrypted ones")
	}
	if _, _, err := OpenPDF(plain, ""); err != nil {
		t.Errorf("the decrypted bytes do not open without a password: %v", err)
	}
}

// TestOpenPDFRefused: every refusal is permanent and says why.
func TestOpenPDFRefused(t *testing.T) {
	src, err := os.ReadFile(encrypted)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pdf      []byte
		password string
		want     Reason
		cause    bool // Err is set
	}{
		{"no password", src, "", NeedsPassword, false},
		{"wrong password", src, "wrong", WrongPassword, true},
		// MuPDF would abort the process counting these pages.
		{"negative page count", bytes.Replace(testenv.ManyPagesPDF(1), []byte("/Count 1"), []byte("/Count -1"), 1), "", NegativeCount, false},
		{"garbage after the header", append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0xfe, 0x01, 'x'}, 2000)...), "", Corrupt, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd, _, err := OpenPDF(tt.pdf, tt.password)
			if err == nil {
				fd.Close()
				t.Fatal("opened, want an error")
			}
			if !pipeline.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if me.Reason != tt.want || (me.Err != nil) != tt.cause {
				t.Errorf("got reason %d with cause %v, want reason %d (cause: %v)", me.Reason, me.Err, tt.want, tt.cause)
			}
		})
	}
}
