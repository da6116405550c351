package sniff

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzDetect feeds arbitrary files to Head and Detect. Properties: no
// panic; Detect agrees with Head on every type Head settles by itself;
// only containers are left to Detect; an accepted type is one of
// Accepted; and the answer does not depend on trailing bytes past
// HeadSize for non-container types.
func FuzzDetect(f *testing.F) {
	for _, dir := range []string{"../../extract/testdata", "../../extract/formats/testdata"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil && len(b) < 256<<10 {
				f.Add(b)
			}
		}
	}
	for _, s := range []string{"", "%PDF-1.7\n", "PK\x03\x04", "From: a@b\r\nSubject: x\r\n\r\nhi", "<html><body>x", "II*\x00", "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		headCT, headOK := Head(b[:min(len(b), HeadSize)])
		ct, ok := Detect(bytes.NewReader(b), int64(len(b)))
		if ct == "" {
			t.Fatal("Detect named no type")
		}
		if ok && !slices.Contains(Accepted, ct) {
			t.Fatalf("Detect accepted %q, which is not in Accepted", ct)
		}
		if headOK && !slices.Contains(Accepted, headCT) {
			t.Fatalf("Head accepted %q, which is not in Accepted", headCT)
		}
		if NeedsWhole(headCT) {
			if headOK {
				t.Fatalf("Head accepted container %q", headCT)
			}
			return
		}
		if ct != headCT || ok != headOK {
			t.Fatalf("Detect = %q %v, Head = %q %v for a non-container", ct, ok, headCT, headOK)
		}
	})
}
