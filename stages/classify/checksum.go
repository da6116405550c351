package classify

import "regexp"

// ValidPartitaIVA reports whether s is 11 digits whose last digit is the
// check digit of the Italian partita IVA: the digits in odd positions are
// summed, those in even positions are doubled (minus 9 when over 9) and
// summed, and the check digit brings the total to a multiple of 10.
func ValidPartitaIVA(s string) bool {
	if len(s) != 11 {
		return false
	}
	sum := 0
	for i := 0; i < 10; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	last := s[10]
	if last < '0' || last > '9' {
		return false
	}
	if s == "00000000000" { // passes the arithmetic, never issued
		return false
	}
	return (10-sum%10)%10 == int(last-'0')
}

// cfOdd is the value of each character in an odd (1-based) position of a
// codice fiscale, indexed by digit value or letter offset.
var cfOdd = [26]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23}

// cfShape is the layout of a personal codice fiscale: 6 letters (surname,
// name), 2 year digits, month letter, 2 day digits, 4 chars of the birth
// place and the check letter. Digits may be replaced by LMNPQRSTUV when
// two people would otherwise share a code (omocodia).
var cfShape = regexp.MustCompile(`^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$`)

// ValidCodiceFiscale reports whether s (uppercase) is a personal codice
// fiscale with the right shape and check character.
func ValidCodiceFiscale(s string) bool {
	if !cfShape.MatchString(s) {
		return false
	}
	sum := 0
	for i := 0; i < 15; i++ {
		c := s[i]
		v := 0
		if c >= '0' && c <= '9' {
			v = int(c - '0')
		} else {
			v = int(c - 'A')
		}
		if i%2 == 0 { // 1-based odd position
			sum += cfOdd[v]
		} else {
			sum += v
		}
	}
	return s[15] == byte('A'+sum%26)
}
