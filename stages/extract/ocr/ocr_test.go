package ocr

import (
	"context"
	"image"
	"strings"
	"testing"
)

func TestParseHOCR(t *testing.T) {
	line := func(attrs string, words ...string) string {
		return `<span class='ocr_line' id='l' title="bbox 0 0 10 10; baseline 0 0` + attrs + `">` + strings.Join(words, "") + `</span>`
	}
	wide := func(conf, text string) string {
		return `<span class='ocrx_word' id='w' title='bbox 0 0 300 40; x_wconf ` + conf + `'>` + text + `</span>`
	}
	tall := func(conf, text string) string {
		return `<span class='ocrx_word' id='w' title='bbox 0 0 40 300; x_wconf ` + conf + `'>` + text + `</span>`
	}
	for _, tc := range []struct {
		name     string
		hocr     string
		want     hocrSummary
		wantConf float64
	}{
		{"empty", "", hocrSummary{}, 0},
		{"upright", line("", wide("90", "Polizza"), wide("80", "auto")), hocrSummary{rotation: 0}, 0.85},
		{"turned", line("; textangle 270", tall("96", "QUESTIONARIO"), tall("94", "FLOTTE")) + line("", wide("50", "x")),
			hocrSummary{rotation: 270, vertical: true}, 0.80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseHOCR([]byte(tc.hocr))
			if got.rotation != tc.want.rotation || got.vertical != tc.want.vertical || abs(got.confidence-tc.wantConf) > 1e-9 {
				t.Errorf("parseHOCR = %+v, want rotation %d vertical %v confidence %v", got, tc.want.rotation, tc.want.vertical, tc.wantConf)
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestRecognizeTimeout: a page that outlives its context is stopped, not
// waited for.
func TestRecognizeCanceled(t *testing.T) {
	e, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatalf("needs tesseract (Debian packages tesseract-ocr tesseract-ocr-ita tesseract-ocr-eng tesseract-ocr-osd): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Recognize(ctx, image.NewGray(image.Rect(0, 0, 2000, 2000)), 300); err == nil {
		t.Fatal("Recognize with a canceled context succeeded")
	}
}

func TestNewMissing(t *testing.T) {
	for _, cfg := range []Config{{Command: "no-such-tesseract"}, {Languages: "xxx"}} {
		_, err := New(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "install the Debian package tesseract-ocr") {
			t.Errorf("New(%+v) = %v, want an error naming the package", cfg, err)
		}
	}
}
