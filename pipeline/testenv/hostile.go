package testenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
)

// BombPNG is a valid PNG whose header claims a w x h image while holding
// one pixel: a decompression bomb that a reader must refuse from the
// header, before it allocates w*h bytes.
func BombPNG(w, h uint32) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		panic(err) // encoding an in-memory 1x1 image cannot fail
	}
	p := b.Bytes()
	// IHDR starts after the 8-byte signature, 4-byte length and 4-byte type.
	binary.BigEndian.PutUint32(p[16:], w)
	binary.BigEndian.PutUint32(p[20:], h)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}

// ManyPagesPDF is a minimal valid PDF with n empty A4 pages.
func ManyPagesPDF(n int) []byte {
	var b bytes.Buffer
	offsets := make([]int, n+3)
	b.WriteString("%PDF-1.4\n")
	offsets[1] = b.Len()
	b.WriteString("1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n")
	offsets[2] = b.Len()
	fmt.Fprintf(&b, "2 0 obj <</Type /Pages /Count %d /Kids [", n)
	for i := range n {
		fmt.Fprintf(&b, "%d 0 R ", i+3)
	}
	b.WriteString("]>> endobj\n")
	for i := range n {
		offsets[i+3] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n", i+3)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", n+3)
	for _, o := range offsets[1:] {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer <</Size %d /Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n", n+3, xref)
	return b.Bytes()
}
