// Command gen writes the image and Outlook samples of this folder (the
// Office samples are LibreOffice's: soffice --headless --convert-to docx,
// odt, xlsx, ods, doc). It writes into the current directory:
//
//	cd stages/ingest/testdata && go run ./gen
package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"unicode/utf16"

	"golang.org/x/image/tiff"
)

func main() {
	img := image.NewGray(image.Rect(0, 0, 64, 32))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for y := 4; y < 20; y++ {
		for x := 4; x < 30; x++ {
			img.SetGray(x, y, color.Gray{0})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	os.WriteFile("sample.png", b.Bytes(), 0o644)
	b.Reset()
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 80})
	os.WriteFile("sample.jpg", b.Bytes(), 0o644)
	b.Reset()
	tiff.Encode(&b, img, &tiff.Options{Compression: tiff.Deflate})
	os.WriteFile("sample.tif", b.Bytes(), 0o644)
	os.WriteFile("sample.msg", cfb(), 0o644)
}

// cfb builds a minimal OLE2 compound file (v3, 512-byte sectors) whose
// directory holds the streams of an Outlook message with no content:
// sector 0 is the FAT, sector 1 the directory.
func cfb() []byte {
	const (
		free  = 0xFFFFFFFF
		end   = 0xFFFFFFFE
		fatSc = 0xFFFFFFFD
	)
	out := make([]byte, 512*3)
	le := binary.LittleEndian
	copy(out, []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1})
	le.PutUint16(out[0x18:], 0x3E)
	le.PutUint16(out[0x1A:], 3)
	le.PutUint16(out[0x1C:], 0xFFFE)
	le.PutUint16(out[0x1E:], 9)
	le.PutUint16(out[0x20:], 6)
	le.PutUint32(out[0x2C:], 1)    // FAT sectors
	le.PutUint32(out[0x30:], 1)    // first directory sector
	le.PutUint32(out[0x38:], 4096) // mini stream cutoff
	le.PutUint32(out[0x3C:], end)  // first mini FAT sector
	le.PutUint32(out[0x44:], end)  // first DIFAT sector
	le.PutUint32(out[0x4C:], 0)    // DIFAT[0]: the FAT is sector 0
	for i := 1; i < 109; i++ {
		le.PutUint32(out[0x4C+4*i:], free)
	}
	fat := out[512:1024]
	for i := 0; i < 128; i++ {
		le.PutUint32(fat[4*i:], free)
	}
	le.PutUint32(fat[0:], fatSc)
	le.PutUint32(fat[4:], end)
	dir := out[1024:1536]
	entry := func(i int, name string, typ byte, left, right, child uint32) {
		e := dir[128*i : 128*(i+1)]
		u := utf16.Encode([]rune(name))
		for j, c := range u {
			le.PutUint16(e[2*j:], c)
		}
		le.PutUint16(e[64:], uint16(2*(len(u)+1)))
		e[66] = typ
		e[67] = 1 // black
		le.PutUint32(e[68:], left)
		le.PutUint32(e[72:], right)
		le.PutUint32(e[76:], child)
		le.PutUint32(e[116:], end)
	}
	entry(0, "Root Entry", 5, free, free, 1)
	entry(1, "__properties_version1.0", 2, free, 2, free)
	entry(2, "__substg1.0_0037001F", 2, free, free, free) // PR_SUBJECT
	for i := 3; i < 4; i++ {
		e := dir[128*i : 128*(i+1)]
		le.PutUint32(e[68:], free)
		le.PutUint32(e[72:], free)
		le.PutUint32(e[76:], free)
	}
	return out
}
