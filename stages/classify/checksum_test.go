package classify

import "testing"

// pivaCheck computes the check digit independently of ValidPartitaIVA so
// that the test builds valid numbers instead of copying known ones.
func pivaCheck(first10 string) byte {
	sum := 0
	for i, c := range first10 {
		d := int(c - '0')
		if i%2 == 1 {
			d = d * 2
			d = d/10 + d%10
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

func TestValidPartitaIVA(t *testing.T) {
	for _, base := range []string{"0123456789", "1234567890", "9999999999", "0755346019"} {
		valid := base + string(pivaCheck(base))
		if !ValidPartitaIVA(valid) {
			t.Errorf("ValidPartitaIVA(%s) = false; want true", valid)
		}
		for d := byte('0'); d <= '9'; d++ {
			if d == pivaCheck(base) {
				continue
			}
			if bad := base + string(d); ValidPartitaIVA(bad) {
				t.Errorf("ValidPartitaIVA(%s) = true; want false", bad)
			}
		}
	}
	for _, s := range []string{"", "1234567890", "123456789012", "1234567890a", "00000000000", "12345 67890"} {
		if ValidPartitaIVA(s) {
			t.Errorf("ValidPartitaIVA(%q) = true; want false", s)
		}
	}
	// A transposition of two adjacent digits is caught.
	if ValidPartitaIVA("1023456789" + string(pivaCheck("0123456789"))) {
		t.Error("transposed digits accepted")
	}
}

func TestValidCodiceFiscale(t *testing.T) {
	tests := []struct {
		cf   string
		want bool
	}{
		// The Agenzia delle Entrate's textbook example (Mario Rossi, 1980-01-01, Roma).
		{"RSSMRA80A01H501U", true},
		{"RSSMRA80A01H501A", false}, // wrong check letter
		{"RSSMRA80A01H501", false},  // too short
		{"RSSMRA80Z01H501U", false}, // Z is no month
		{"rssmra80a01h501u", false}, // callers uppercase first
		{"RSSMRA8OA01H501U", false}, // letter O where a digit belongs
	}
	for _, tt := range tests {
		if got := ValidCodiceFiscale(tt.cf); got != tt.want {
			t.Errorf("ValidCodiceFiscale(%s) = %v; want %v", tt.cf, got, tt.want)
		}
	}
	// Every other check letter is refused for a valid body.
	body := "BNCLRA85M41F205"
	var valid int
	for c := byte('A'); c <= 'Z'; c++ {
		if ValidCodiceFiscale(body + string(c)) {
			valid++
		}
	}
	if valid != 1 {
		t.Errorf("%d check letters accepted for %s; want exactly 1", valid, body)
	}
}
