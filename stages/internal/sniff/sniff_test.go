package sniff

import (
	"archive/zip"
	"bytes"
	"os"
	"testing"
)

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

func TestDetect(t *testing.T) {
	msg := append([]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), make([]byte, 600)...)
	for _, c := range "__properties_version1.0" {
		msg = append(msg, byte(c), 0)
	}
	doc97 := append([]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), []byte("W\x00o\x00r\x00d\x00D\x00o\x00c\x00")...)
	eml, err := os.ReadFile("../../../../shared/corpus/insurance-dev/0014/message.eml")
	if err != nil {
		t.Fatalf("shared corpus expected at /work/shared/corpus: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
		want string
		ok   bool
	}{
		{"e-mail", eml, EML, true},
		{"outlook msg", msg, MSG, true},
		{"word 97", doc97, CFB, false},
		{"pdf", []byte("%PDF-1.7\n%âãÏÓ\n1 0 obj"), PDF, true},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), PNG, true},
		{"html", []byte("\n<!DOCTYPE html><html><body><p>Spett.le compagnia</p></body></html>"), HTML, true},
		{"xhtml", []byte(`<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><body>x</body></html>`), XHTML, true},
		{"text", []byte("DATI CATASTALI - Via Triumplina 98, Brescia\nFoglio 112"), Text, true},
		{"key value note is not mail", []byte("Nome: Mario Rossi\nData: 2026-10-01\nOggetto: polizza\n\ntesto"), Text, true},
		{"http response is not mail", []byte("Content-Type: text/html\nDate: Mon, 23 Nov 2026\n\n<html>"), Text, true},
		{"plain zip", zipOf(t, [2]string{"a.txt", "a"}), Zip, false},
		{"odf spreadsheet", zipOf(t, [2]string{"mimetype", "application/vnd.oasis.opendocument.spreadsheet"}, [2]string{"content.xml", "<x/>"}), "application/vnd.oasis.opendocument.spreadsheet", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, ok := Detect(bytes.NewReader(tt.b), int64(len(tt.b)))
			if ok != tt.ok || ct != tt.want {
				t.Errorf("Detect = %q, %v; want %q, %v", ct, ok, tt.want, tt.ok)
			}
		})
	}
}
