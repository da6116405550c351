// Package itparse finds and parses the Italian ways of writing dates and
// amounts that broker requests use ("01/01/2027", "1° febbraio 2027",
// "1.250.000,00 €", "2,5 milioni"). The analyze and classify stages share
// it so that a date one stage flags is the date the other extracts.
//
// Every Find function returns byte offsets into the text it was given, so
// callers can quote the exact span; nothing is normalised before matching.
package itparse

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Date is a calendar date found in a text at Start:End (byte offsets).
type Date struct {
	Start, End int
	Time       time.Time // midnight UTC of the date
}

// ISO returns the date as yyyy-mm-dd.
func (d Date) ISO() string { return d.Time.Format("2006-01-02") }

var months = map[string]time.Month{
	"gennaio": 1, "febbraio": 2, "marzo": 3, "aprile": 4, "maggio": 5, "giugno": 6,
	"luglio": 7, "agosto": 8, "settembre": 9, "ottobre": 10, "novembre": 11, "dicembre": 12,
	"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
	"july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}

var (
	numericDate = regexp.MustCompile(`\b(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})\b`)
	isoDate     = regexp.MustCompile(`\b(\d{4})-(\d{2})-(\d{2})\b`)
	wordDate    = regexp.MustCompile(`(?i)\b(\d{1,2})(?:°|º|\s?st|\s?nd|\s?rd|\s?th)?\s+(gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|novembre|dicembre|january|february|march|april|may|june|july|august|september|october|november|december)\s+(\d{4})\b`)
)

// FindDates returns every valid date in text, in text order. Impossible
// dates (31/02/2027) are not dates and are left out.
func FindDates(text string) []Date {
	var out []Date
	add := func(start, end, y, m, d int) {
		t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
		if t.Year() != y || int(t.Month()) != m || t.Day() != d || y < 1900 || y > 2200 {
			return
		}
		for _, o := range out { // an ISO date is also a numeric-looking run; keep the first parse
			if start < o.End && o.Start < end {
				return
			}
		}
		out = append(out, Date{Start: start, End: end, Time: t})
	}
	for _, m := range isoDate.FindAllStringSubmatchIndex(text, -1) {
		add(m[0], m[1], atoi(text[m[2]:m[3]]), atoi(text[m[4]:m[5]]), atoi(text[m[6]:m[7]]))
	}
	for _, m := range numericDate.FindAllStringSubmatchIndex(text, -1) {
		add(m[0], m[1], atoi(text[m[6]:m[7]]), atoi(text[m[4]:m[5]]), atoi(text[m[2]:m[3]]))
	}
	for _, m := range wordDate.FindAllStringSubmatchIndex(text, -1) {
		add(m[0], m[1], atoi(text[m[6]:m[7]]), int(months[strings.ToLower(text[m[4]:m[5]])]), atoi(text[m[2]:m[3]]))
	}
	sortByStart(out, func(d Date) int { return d.Start })
	return out
}

// Amount is a number found in a text at Start:End (byte offsets), with
// whether a currency (€, EUR, euro) is written right next to it.
type Amount struct {
	Start, End int
	Value      float64
	Currency   bool
}

var (
	// The number forms: Italian thousands with dots and decimal comma,
	// plain digits, and "1,5 milioni"/"2 mln"/"500 mila".
	amountRE = regexp.MustCompile(`(?i)(€|eur\b|euro\b)?\s*(\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?)(?:\s*(milioni|milione|mln|mila|k)\b)?(\s*(?:€|eur\b|euro\b|di\s+euro\b))?`)
	// Amounts in words, as brokers write round limits: "un milione",
	// "mezzo milione", "due milioni di euro", "cinquecentomila euro".
	wordAmountRE = regexp.MustCompile(`(?i)(€|eur\b|euro\b)?\s*\b(un|uno|mezzo|due|tre|quattro|cinque|sei|sette|otto|nove|dieci|venti|trenta|cinquanta|cento|duecento|trecento|quattrocento|cinquecento|seicento|settecento|ottocento|novecento)\s*(milioni|milione|mila)\b(\s*(?:€|eur\b|euro\b|di\s+euro\b))?`)
	numberWords  = map[string]float64{
		"un": 1, "uno": 1, "mezzo": 0.5, "due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6, "sette": 7,
		"otto": 8, "nove": 9, "dieci": 10, "venti": 20, "trenta": 30, "cinquanta": 50, "cento": 100,
		"duecento": 200, "trecento": 300, "quattrocento": 400, "cinquecento": 500, "seicento": 600,
		"settecento": 700, "ottocento": 800, "novecento": 900,
	}
)

// FindAmounts returns the numbers in text that read as amounts, in text
// order. Numbers glued to letters or slashes (codes, dates) are skipped.
func FindAmounts(text string) []Amount {
	var out []Amount
	for _, m := range amountRE.FindAllStringSubmatchIndex(text, -1) {
		ns, ne := m[4], m[5]
		if ns > 0 {
			r, _ := utf8.DecodeLastRuneInString(text[:ns])
			if isWordRune(r) || r == '/' || r == '.' || r == ',' || r == '-' {
				continue
			}
		}
		if ne < len(text) {
			r, _ := utf8.DecodeRuneInString(text[ne:])
			if isWordRune(r) && m[6] < 0 || r == '/' {
				continue
			}
		}
		v, ok := ParseNumber(text[ns:ne])
		if !ok {
			continue
		}
		if m[6] >= 0 {
			switch strings.ToLower(text[m[6]:m[7]]) {
			case "milioni", "milione", "mln":
				v *= 1e6
			case "mila", "k":
				v *= 1e3
			}
		}
		start, end := m[0], m[1]
		if m[2] < 0 {
			start = ns
		}
		cur := m[2] >= 0 || m[8] >= 0
		if m[8] >= 0 && strings.TrimSpace(text[m[8]:m[9]]) == "" {
			cur = false
		}
		// Trim the whitespace the optional groups may have swallowed.
		for start < end && (text[start] == ' ' || text[start] == '\t' || text[start] == '\n') {
			start++
		}
		end = start + len(strings.TrimRight(text[start:end], " \t\n"))
		out = append(out, Amount{Start: start, End: end, Value: v, Currency: cur})
	}
	for _, m := range wordAmountRE.FindAllStringSubmatchIndex(text, -1) {
		v := numberWords[strings.ToLower(text[m[4]:m[5]])]
		if strings.EqualFold(text[m[6]:m[7]], "mila") {
			if v < 1 {
				continue // "mezzo mila" is not Italian
			}
			v *= 1e3
		} else {
			v *= 1e6
		}
		start, end := m[4], m[7]
		if m[2] >= 0 {
			start = m[2]
		}
		cur := m[2] >= 0 || m[8] >= 0
		if m[8] >= 0 {
			end = m[9]
		}
		out = append(out, Amount{Start: start, End: end, Value: v, Currency: cur})
	}
	sortByStart(out, func(a Amount) int { return a.Start })
	return out
}

// ParseNumber parses a number written the Italian way: "1.250.000,00",
// "1250000", "2,5". A lone dot followed by exactly three digits is a
// thousands separator ("15.000"), as Italians write it.
func ParseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	intPart, frac, hasFrac := strings.Cut(s, ",")
	groups := strings.Split(intPart, ".")
	for i, g := range groups {
		if g == "" || (i > 0 && len(g) != 3) || (i == 0 && len(groups) > 1 && len(g) > 3) {
			return 0, false
		}
	}
	digits := strings.Join(groups, "")
	if hasFrac {
		if frac == "" {
			return 0, false
		}
		digits += "." + frac
	}
	// strconv alone would also take "NaN", "Inf", "1e9" and "1_000",
	// which no Italian document writes as a number.
	for _, r := range digits {
		if (r < '0' || r > '9') && r != '.' {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(digits, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// FormatInt writes v as a plain integer string ("1250000"), the form
// truth files and forms use for euro amounts.
func FormatInt(v float64) string { return strconv.FormatInt(int64(v+0.5), 10) }

// RuneOffset converts a byte offset in s to a rune offset.
func RuneOffset(s string, byteOff int) int {
	if byteOff > len(s) {
		byteOff = len(s)
	}
	return utf8.RuneCountInString(s[:byteOff])
}

func isWordRune(r rune) bool {
	return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || r > 127 && r != '€' && r != '°' && r != '\u00a0'
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func sortByStart[T any](xs []T, key func(T) int) {
	// insertion sort: the lists are short and mostly sorted already
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && key(xs[j]) < key(xs[j-1]); j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// startCue matches the end of a text that introduces a requested start
// date: "Decorrenza richiesta:", "a partire dal", "Inizio lavori\n\n",
// "la nuova dal". The gap may cross a line break because forms put the
// label and its value on separate lines.
var startCue = regexp.MustCompile(`(?i)(decorrenza|decorrere|decorra|a partire dal|con effetto dal|data di effetto|inizio (?:lavori|copertura|polizza)|consegna (?:dei )?lavori|effective(?: date)?|start date|starting)[^\d]{0,30}$|\bdal\s*$`)

// StartContext reports whether prefix, the text right before a date,
// says that the date is a requested start date.
func StartContext(prefix string) bool { return startCue.MatchString(prefix) }
