package ocr

import "strings"

// Errors measures OCR output against the true text: the Levenshtein
// distance over runes of the whitespace-normalised texts, and the length
// of the normalised truth. Their ratio is the character error rate; the
// tests and make bench-extract judge OCR by it, summed over pages where
// several are compared.
func Errors(truth, got string) (distance, truthLen int) {
	a := []rune(strings.Join(strings.Fields(truth), " "))
	b := []rune(strings.Join(strings.Fields(got), " "))
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)], len(a)
}

// CER is the character error rate of got against truth (see Errors); with
// an empty truth it is the length of got.
func CER(truth, got string) float64 {
	d, n := Errors(truth, got)
	if n == 0 {
		return float64(d)
	}
	return float64(d) / float64(n)
}
